"""The declared settings of ``registry:set [--global|APP] server|image-repo|push-on-release VALUE``."""

from __future__ import annotations

import re

from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, parse_bool

from . import PLUGIN

#: ``HOST[:PORT]``: a DNS name or an IPv4 address, as docker's reference grammar has it (no scheme, no path).
SERVER = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
)
#: path components of a repository: lower case, separated by ``.``, ``_``, ``__`` or ``-``, joined by ``/``.
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REPO = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*")


def server(value: str) -> str:
    """A registry address ``HOST[:PORT]`` (``docker.io`` for Docker Hub)."""
    port = value.rpartition(":")[2] if ":" in value else ""
    if len(value) > 253 or not SERVER.fullmatch(value) or (port and not 0 < int(port) < 65536):
        raise ValidationError(f"invalid registry server {value!r}: expected HOST or HOST:PORT")
    return value


def image_repo(value: str) -> str:
    """A repository path under the server (``team/catmeow``)."""
    if len(value) > 200 or not IMAGE_REPO.fullmatch(value):
        raise ValidationError(f"invalid image repository {value!r}: lower-case path components joined by /")
    return value


SETTINGS = Namespace(
    PLUGIN,
    (
        # where images go: an admin's choice (skiff connects there with stored credentials)
        Setting("server", type=server, scope="both", level="admin", help="the registry HOST[:PORT] to push to"),
        Setting(
            "push-server",
            type=server,
            scope="both",
            level="admin",
            help="where this host's engine pushes when not the server (registry:serve: 127.0.0.1:PORT)",
        ),
        Setting("image-repo", type=image_repo, scope="app", help="the repository under the server (default skiff/APP)"),
        Setting(
            "push-on-release",
            type=parse_bool,
            default=False,
            scope="both",
            help="push each new release image after its build (true/false)",
        ),
    ),
    commands=("set",),
)


def push_server(state: object, app: str, server: str) -> str:
    """Where this host's engine pushes ``app``'s images that nodes pull from ``server``."""
    return SETTINGS.get(state, "push-server", app) or server


def repository(state: object, app: str) -> str:
    """The repository path of ``app``'s images under its server."""
    return SETTINGS.get(state, "image-repo", app) or f"skiff/{app}"
