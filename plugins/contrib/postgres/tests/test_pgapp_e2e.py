"""End to end: examples/pgapp is pushed with git over SSH to a private sshd, built by the
python buildpack and run by the docker scheduler; a real postgres service is created and
linked over SSH; a row written through DATABASE_URL survives a restart of the database
and of the app; a dump exported over SSH restores into a new service.

The server side is the real ``skiff`` process with the installed plugins, less the ones
this test does not need (nginx: the test talks to the web container's loopback port).
"""

import json
import subprocess
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from skiff.testing.docker import http_get, new_app_name
from skiff.testing.sshd import init_repo

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "pgapp"
PLUGINS = {
    "apps",
    "config",
    "procfile",
    "stack",
    "buildpacks",
    "buildpack-python",
    "docker",
    "postgres",
    "git",
    "ssh-keys",
}
NOTE = "written before the restarts"


@pytest.fixture
def sshd_skiff_env():
    others = {ep.name for ep in metadata.entry_points(group="skiff")} - PLUGINS
    return {"SKIFF_DISABLED_PLUGINS": ",".join(sorted(others))}


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def web_port(sshd, app: str) -> int:
    report = json.loads(ok(sshd.ssh(["ps:report", app, "--format", "json"])).stdout)
    ports = [
        row["port"]
        for row in report["processes"]
        if row["process"] == "web" and row["status"] == "running" and row["port"]
    ]
    assert ports, report
    return ports[0]


def get(port: int, path: str = "/") -> str:
    status, body = http_get(f"http://127.0.0.1:{port}{path}")
    assert status == 200, body
    return body


def post(port: int, path: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def ssh_binary(sshd, command: str, **kwargs) -> subprocess.CompletedProcess:
    """``ssh skiff-test COMMAND`` with binary stdin/stdout (export and import)."""
    return subprocess.run(
        sshd.ssh_args() + [sshd.alias, "--", command], env=sshd.env, stderr=subprocess.PIPE, timeout=120, **kwargs
    )


def test_pushed_pgapp_keeps_its_row_across_restarts(
    sshd, stack_image, pg_image, docker_cleanup, cleanup, service_name, tmp_path
):
    app = docker_cleanup.app(new_app_name("pg"))
    db, copy = service_name, service_name + "-copy"
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / "pgapp", files)

    ok(sshd.git_push(repo, app))
    assert get(web_port(sshd, app)) == "pgapp: no database linked\n"

    ok(sshd.ssh(["postgres:create", db]))
    linked = ok(sshd.ssh(["postgres:link", db, app]))
    assert f"Releasing {app} v2 (Link postgres {db})" in linked.output
    assert "DATABASE_URL" in ok(sshd.ssh(["config:keys", app])).stdout
    dsn = ok(sshd.ssh(["postgres:info", db, "--dsn"])).stdout.strip()
    password = dsn.split("://postgres:")[1].split("@")[0]
    for shown in (
        linked,
        sshd.ssh(["postgres:info", db]),
        sshd.ssh(["postgres:list"]),
        sshd.ssh(["postgres:logs", db]),
        sshd.ssh(["apps:report", app]),
    ):
        assert password not in ok(shown).output
    port = web_port(sshd, app)
    assert get(port) == "pgapp: 0 notes\n"
    assert post(port, "/notes", NOTE) == (201, "1\n")

    ok(sshd.ssh(["postgres:restart", db]))
    assert get(port, "/notes") == NOTE + "\n"
    ok(sshd.ssh(["ps:restart", app]))
    port = web_port(sshd, app)
    assert get(port, "/notes") == NOTE + "\n"
    assert get(port) == "pgapp: 1 notes\n"

    # export over SSH (binary stdout), import into a new service over SSH (binary stdin)
    dump = tmp_path / "notes.dump"
    with open(dump, "wb") as f:
        exported = ssh_binary(sshd, f"postgres:export {db}", stdout=f)
    assert exported.returncode == 0, exported.stderr
    assert dump.read_bytes().startswith(b"PGDMP")
    ok(sshd.ssh(["postgres:create", copy]))
    with open(dump, "rb") as f:
        imported = ssh_binary(sshd, f"postgres:import {copy}", stdin=f, stdout=subprocess.PIPE)
    assert imported.returncode == 0, imported.stderr
    query = ok(sshd.ssh(["postgres:connect", copy], input="SELECT 'got: ' || body FROM notes;\n"))
    assert f"got: {NOTE}" in query.stdout

    # destroying the service is refused while linked; destroying the app unlinks it
    refused = sshd.ssh(["postgres:destroy", db, "--force"])
    assert refused.exit_code == 1 and "unlink it first" in refused.stderr
    ok(sshd.ssh(["apps:destroy", app, "--force"]))
    assert ok(sshd.ssh(["postgres:links", db])).stdout == ""
    for name in (db, copy):
        ok(sshd.ssh(["postgres:destroy", name, "--force"]))
    assert db not in ok(sshd.ssh(["postgres:list"])).stdout
