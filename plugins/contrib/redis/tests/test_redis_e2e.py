"""End to end: an app (counter/: RESP over a socket, no dependencies) is pushed with git over
a real sshd, built by the null pack, run by the docker scheduler and answering through a private
nginx; linked to a real redis (skiff/redis:trixie, Debian's redis-server) it counts visits with
INCR, and the count survives a redis restart and an app redeploy. An RDB export over SSH imports
into a new service, and the import survives its restart with append-only persistence on.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

COUNTER = Path(__file__).resolve().parent / "counter"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return {**private_nginx.env}


def ssh_bytes(sshd, command: str, data: bytes | None = None, *, code: int = 0) -> subprocess.CompletedProcess:
    """``ssh skiff-test COMMAND`` with bytes in and out (export and import), exiting with ``code``."""
    proc = subprocess.run(
        [*sshd.ssh_args(), sshd.alias, "--", command], env=sshd.env, input=data, capture_output=True, timeout=120
    )
    assert proc.returncode == code, proc.stderr
    return proc


def test_pushed_counter_keeps_counting_across_restarts(
    stack_image, redis_image, docker_cleanup, redis_cleanup, private_nginx, sshd, docker_client, tmp_path
):
    sshd.ok("domains:set-global", GLOBAL)
    app = docker_cleanup.app(new_app_name("count"))
    db, copy = "r" + uuid.uuid4().hex[:8], "c" + uuid.uuid4().hex[:8]
    files = {p.name: p.read_text() for p in COUNTER.iterdir() if p.is_file()}
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    assert pushed.exit_code == 0, pushed.output

    def visit(path: str = "/visit") -> str:
        answer = private_nginx.request(path, host=f"{app}.{GLOBAL}")
        assert answer.status == 200, answer.body
        return answer.body

    assert visit("/") == "no redis linked\n"

    sshd.ok("redis:create", db)
    linked = sshd.ok("redis:link", db, app)
    assert f"Link redis {db}" in linked
    url = sshd.ok("redis:info", db, "--dsn").strip()
    password = url.split("redis://:")[1].split("@")[0]
    assert url == f"redis://:{password}@skiff-redis-{db}:6379" and len(password) == 32
    shown = [linked] + [sshd.ok(*argv) for argv in (("redis:info", db), ("redis:list",), ("redis:logs", db))]
    shown.append(sshd.ok("apps:report", app))
    assert [text for text in shown if password in text] == []
    container = docker_client.containers.get(f"skiff.redis.{db}")
    assert password not in " ".join(container.attrs["Config"]["Cmd"] or [])
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"

    assert [visit(), visit()] == ["visits: 1\n", "visits: 2\n"]
    sshd.ok("redis:restart", db)
    assert visit() == "visits: 3\n"
    sshd.ok("ps:restart", app)
    assert visit() == "visits: 4\n"
    assert visit("/") == "visits so far: 4\n"

    # an unauthenticated client is refused: the password is required
    assert "appendonly\nyes" in sshd.ok("redis:connect", db, input="CONFIG GET appendonly\n")
    refused = container.exec_run(["redis-cli", "-h", "127.0.0.1", "GET", "visits"])
    assert b"NOAUTH" in refused.output

    # RDB export over SSH, import into a new service, which keeps it through a restart
    rdb = ssh_bytes(sshd, f"redis:export {db}").stdout
    assert rdb.startswith(b"REDIS")
    sshd.ok("redis:create", copy)
    ssh_bytes(sshd, f"redis:import {copy}", rdb)
    sshd.ok("redis:restart", copy)
    query = sshd.ok("redis:connect", copy, input="GET visits\nCONFIG GET appendonly\n")
    assert query.split() == ["4", "appendonly", "yes"]
    bad = ssh_bytes(sshd, f"redis:import {copy}", rdb[: len(rdb) // 2], code=1)
    assert b"nothing was imported" in bad.stderr
    assert sshd.ok("redis:connect", copy, input="GET visits\n").strip() == "4"

    # destroying is refused while linked; destroying the app unlinks it; then both go
    steps = [
        (["redis:destroy", db, "--force"], 1, "unlink it first"),
        (["apps:destroy", app, "--force"], 0, ""),
        (["redis:links", db], 0, ""),
        (["redis:destroy", db, "--force"], 0, f"Destroyed redis {db}"),
        (["redis:destroy", copy, "--force"], 0, f"Destroyed redis {copy}"),
    ]
    for argv, code, said in steps:
        result = sshd.ssh(argv)
        assert result.exit_code == code and said in result.output, (argv, result.output)
    assert sshd.ssh(["redis:list"]).stdout.count("skiff/redis") == 0
