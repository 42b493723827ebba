"""End to end on the three-node cluster: a swarm app linked to postgres reads it from every node.

The postgres service runs on the swarm manager (the Skiff server's engine, DOCKER_HOST), as the
services of contrib plugins do; ``postgres:link`` puts it on the app's attachable overlay network
(``skiff_link_network``), where the app's tasks on the workers resolve its alias from the link URL:
no host port is published. The app (``tests/pgapp``: psql in the postgres image) is pushed with git
and scaled to web=3 (one task per node); its Procfile ``release:`` task writes the row, as a one-off
task on the cluster; each web task reads the row through DATABASE_URL. ``ps:report`` lists the
tasks on every node; ``ps:stop`` stops them all and ``ps:start`` brings them back behind nginx;
``run:detached`` leaves a one-off task running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skiff.testing import cluster
from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]

APP = Path(__file__).resolve().parent / "pgapp"
GLOBAL = "skiff.test"
NOTE = "from the release task"


@pytest.fixture(scope="module")
def three_nodes(docker_client, pg_image):
    c = cluster.start(3)
    try:
        cluster.load_image(docker_client, c.manager.client(), pg_image)  # services and builds run there
        yield c
    finally:
        c.stop()
    assert c.leftovers() == []


@pytest.fixture(scope="module")
def pg_image(docker_client) -> str:
    """The postgres kind's local image (built once on this machine's engine when missing)."""
    import docker

    from skiff_postgres.kind import LOCAL_IMAGE

    try:
        docker_client.images.get(LOCAL_IMAGE)
    except docker.errors.ImageNotFound:
        env = {**os.environ}
        env.pop("DOCKER_HOST", None)
        built = subprocess.run(
            [sys.executable, "-m", "skiff", "postgres:build-image"], env=env, capture_output=True, text=True
        )
        assert built.returncode == 0, built.stdout + built.stderr
    return LOCAL_IMAGE


@pytest.fixture
def sshd_skiff_env(private_nginx, three_nodes):
    """The server-side skiff drives the private nginx; its engine is the swarm's manager."""
    return {**private_nginx.env, "DOCKER_HOST": three_nodes.manager.base_url}


def over_ssh(sshd, *argv: str) -> str:
    result = sshd.ssh(list(argv))
    assert result.exit_code == 0, f"{argv}: {result.output}"
    return result.stdout + result.stderr


def local(root: Path, engine: str, *args: str) -> str:
    env = {**os.environ, "SKIFF_ROOT": str(root), "DOCKER_HOST": engine}
    env.pop("SKIFF_USER", None)
    proc = subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def answers(private_nginx, host: str, path: str, count: int = 30) -> set[str]:
    """The bodies of ``count`` requests through nginx, without the task's hostname."""
    seen = set()
    for _ in range(count):
        dyno, _, rest = private_nginx.request(path, host=host).body.strip().partition(" ")
        seen.add(f"{dyno} {rest.partition(' ')[2]}")
    return seen


def test_a_swarm_app_on_every_node_reads_the_linked_postgres_over_the_overlay(
    three_nodes, private_nginx, sshd, skiff_root, tmp_path
):
    c = three_nodes
    with socket.socket() as probe:
        probe.bind((c.host_address, 0))
        server = f"{c.host_address}:{probe.getsockname()[1]}"
    engine = c.manager.base_url
    local(skiff_root, engine, "registry:serve", server)
    app = new_app_name("swpg")
    db = new_app_name("db")
    try:
        ca = Path(
            json.loads(local(skiff_root, engine, "registry:report", "--format", "json"))["ca_certificate"]
        ).read_bytes()
        for node in c.nodes:
            node.trust(server, ca)
        over_ssh(sshd, "registry:set", "--global", "server", server)
        over_ssh(sshd, "domains:set-global", GLOBAL)
        host = f"{app}.{GLOBAL}"
        over_ssh(sshd, "apps:create", app)
        over_ssh(sshd, "scheduler:set", app, "selected", "swarm")
        over_ssh(sshd, "swarm:set", app, "wait-to-retire", "2")
        over_ssh(sshd, "ps:scale", app, "web=3")
        over_ssh(sshd, "postgres:create", db)
        linked = over_ssh(sshd, "postgres:link", db, app)
        assert "not changed yet" not in linked, linked  # it joined the overlay at once
        config = json.loads(over_ssh(sshd, "config:export", app, "--format", "json"))
        assert f"@skiff-postgres-{db}:5432/" in config["DATABASE_URL"]  # the alias, not a host port

        repo = init_repo(tmp_path / app, {p.name: p.read_text() for p in APP.iterdir() if p.is_file()})
        pushed = git_push(repo, app, sshd)
        assert pushed.exit_code == 0, pushed.output
        assert "Running release on the swarm" in pushed.output, pushed.output

        # the service container stays on the manager, on the app's overlay; no port is published
        pg = c.manager.client().containers.get(f"skiff.postgres.{db}")
        assert f"skiff-swarm-{app}" in pg.attrs["NetworkSettings"]["Networks"]
        assert not any(pg.attrs["NetworkSettings"]["Ports"].values())

        report = json.loads(over_ssh(sshd, "ps:report", app, "--format", "json"))
        rows = [r for r in report["processes"] if r["status"] == "running"]
        assert report["running"] == 3 and len({r["node"] for r in rows}) == 3, report  # one task per node
        assert {r["address"].rsplit(":", 1)[0] for r in rows} == {n.address for n in c.nodes}
        workers = {n.address for n in c.workers}
        assert sum(r["address"].rsplit(":", 1)[0] in workers for r in rows) == 2

        seen = answers(private_nginx, host, "/note")
        assert seen == {f"web.{n} {NOTE}" for n in (1, 2, 3)}, seen  # every task, workers too, read it

        stopped = over_ssh(sshd, "ps:stop", app)
        assert f"Stopped 3 containers of {app}" in stopped, stopped
        assert json.loads(over_ssh(sshd, "ps:report", app, "--format", "json"))["running"] == 0
        started = over_ssh(sshd, "ps:start", app)
        assert "started 3 task(s)" in started, started
        seen = answers(private_nginx, host, "/note")
        assert seen == {f"web.{n} {NOTE}" for n in (1, 2, 3)}, seen

        detached = over_ssh(sshd, "run:detached", app, "sleep 30").strip().splitlines()[-1]
        assert detached.startswith(f"skiff-{app}-run-"), detached
        services = c.manager.client().services.list(filters={"name": detached})
        assert [s.name for s in services] == [detached]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tasks = services[0].tasks()
            if tasks and tasks[0]["Status"]["State"] == "running":
                break
            time.sleep(0.5)
        assert tasks and tasks[0]["Status"]["State"] == "running", tasks

        over_ssh(sshd, "apps:destroy", app, "--force")
        assert c.manager.client().services.list(filters={"label": f"skiff.app={app}"}) == []
        assert c.manager.client().networks.list(names=[f"skiff-swarm-{app}"]) == []
    finally:
        sshd.ssh(["apps:destroy", app, "--force"])
        sshd.ssh(["postgres:destroy", db, "--force"])
        local(skiff_root, engine, "registry:serve", "--stop")
