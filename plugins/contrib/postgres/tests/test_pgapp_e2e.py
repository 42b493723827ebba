"""End to end: examples/pgapp built by the python buildpack, run by the docker scheduler,
linked to a real postgres service; a row written through DATABASE_URL survives a
restart of the database and of the app.

The plugins are the installed ones (loaded from their entry points, as ``skiff``
does), with the source copied in by ``skiff.testing.DirReceiver``.
"""
import json
import shutil
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from skiff import lifecycle
from skiff.testing import DirReceiver, dir_source
from skiff.testing.docker import http_get, new_app_name

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "pgapp"
PLUGINS = {"apps", "config", "procfile", "stack", "buildpacks", "buildpack-python", "docker", "postgres"}


def web_port(h, app: str) -> int:
    r = h.invoke("ps:report", app, "--format", "json")
    assert r.exit_code == 0, r.output
    ports = [row["port"] for row in json.loads(r.stdout)["processes"]
             if row["process"] == "web" and row["status"] == "running" and row["port"]]
    assert ports, r.stdout
    return ports[0]


def post(port: int, path: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_pgapp_keeps_its_row_across_restarts(skiff, stack_image, pg_image, docker_cleanup, cleanup,
                                             service_name, tmp_path):
    others = tuple(sorted({ep.name for ep in metadata.entry_points(group="skiff")} - PLUGINS))
    h = skiff(("dir", DirReceiver()), entry_points=True, disabled=others)
    missing = PLUGINS - set(h.pm.infos)
    assert not missing, f"plugins not installed: {missing} (run make venv)"
    app = docker_cleanup.app(new_app_name("pg"))
    db = service_name
    src = tmp_path / "pgapp"
    shutil.copytree(EXAMPLE, src)

    h.create_app(app)
    lifecycle.deploy(h.context, app, dir_source(src, "0123456789abcdef"))
    assert http_get(f"http://127.0.0.1:{web_port(h, app)}/")[1] == "pgapp: no database linked\n"

    assert h.invoke("postgres:create", db).exit_code == 0
    r = h.invoke("postgres:link", db, app)
    assert r.exit_code == 0, r.output
    assert h.state.current_release(app).description == f"Link postgres {db}"
    port = web_port(h, app)
    assert http_get(f"http://127.0.0.1:{port}/")[1] == "pgapp: 0 notes\n"
    assert post(port, "/notes", "written before the restarts") == (201, "1\n")

    assert h.invoke("postgres:restart", db).exit_code == 0
    assert http_get(f"http://127.0.0.1:{port}/notes")[1] == "written before the restarts\n"
    assert h.invoke("ps:restart", app).exit_code == 0
    port = web_port(h, app)
    assert http_get(f"http://127.0.0.1:{port}/notes")[1] == "written before the restarts\n"
    assert http_get(f"http://127.0.0.1:{port}/")[1] == "pgapp: 1 notes\n"

    # destroying the app unlinks it, so the service can go
    assert h.invoke("postgres:destroy", db, "--force").exit_code == 1
    assert h.invoke("apps:destroy", app, "--force").exit_code == 0
    assert h.invoke("postgres:links", db).stdout == ""
    assert h.invoke("postgres:destroy", db, "--force").exit_code == 0
