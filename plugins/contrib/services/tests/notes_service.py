"""A small test service on the toolkit: files served by the stack's python3 (no packages).

Everything but the description below (create, link, export, import, ...) comes from
skiff_services; the e2e test registers ``NotesPlugin()`` like an installed plugin.
"""

from __future__ import annotations

import click

from skiff import hookimpl
from skiff_services.commandset import command_set
from skiff_services.hooks import ServiceHooks
from skiff_services.kind import ServiceKind

DOCKERFILE = b"""ARG BASE=skiff/stack:trixie
FROM ${BASE}
RUN mkdir -p /data
CMD ["python3", "-m", "http.server", "-d", "/data", "8000"]
"""

KIND = ServiceKind(
    name="notes",
    title="Notes",
    port=8000,
    data_mount="/data",
    local_image="skiff/notes-test:trixie",
    image_files=lambda: {"Dockerfile": DOCKERFILE},
    packages="the stack's python3",
    url=lambda service, password: f"http://notes:{password}@{KIND.hostname(service.name)}:8000/",
    url_key="NOTES_URL",
    environment=lambda service: {"NOTES_PASSWORD": service.password},
    ready=["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"],
    connect=["sh", "-c", "ls -la /data"],
    export=["tar", "-C", "/data", "-cf", "-", "."],
    import_=["tar", "-C", "/data", "-xf", "-"],
    version=["python3", "--version"],
    dump_suffix="tar",
    stop_timeout=2,
)
COMMANDS = command_set(KIND, __name__)


class NotesPlugin(ServiceHooks):
    def __init__(self) -> None:
        super().__init__(KIND)

    @hookimpl
    def skiff_commands(self, cli: click.Group) -> None:
        for command in COMMANDS:
            cli.add_command(command)
