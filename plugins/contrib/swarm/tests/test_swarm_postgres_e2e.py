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
def manager_image(docker_client) -> str:
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
    cluster.local_skiff(skiff_root, engine, "registry:serve", server)
    app = new_app_name("swpg")
    db = new_app_name("db")
    try:
        ca = Path(
            json.loads(cluster.local_skiff(skiff_root, engine, "registry:report", "--format", "json"))["ca_certificate"]
        ).read_bytes()
        for node in c.nodes:
            node.trust(server, ca)
        sshd.ok("registry:set", "--global", "server", server)
        sshd.ok("domains:set-global", GLOBAL)
        host = f"{app}.{GLOBAL}"
        sshd.ok("apps:create", app)
        sshd.ok("scheduler:set", app, "selected", "swarm")
        sshd.ok("swarm:set", app, "wait-to-retire", "2")
        sshd.ok("ps:scale", app, "web=3")
        sshd.ok("postgres:create", db)
        linked = sshd.ok("postgres:link", db, app)
        assert "not changed yet" not in linked, linked  # it joined the overlay at once
        config = json.loads(sshd.ok("config:export", app, "--format", "json"))
        assert f"@skiff-postgres-{db}:5432/" in config["DATABASE_URL"]  # the alias, not a host port

        repo = init_repo(tmp_path / app, {p.name: p.read_text() for p in APP.iterdir() if p.is_file()})
        pushed = git_push(repo, app, sshd)
        assert pushed.exit_code == 0, pushed.output
        assert "Running release on the swarm" in pushed.output, pushed.output

        # the service container stays on the manager, on the app's overlay; no port is published
        pg = c.manager.client().containers.get(f"skiff.postgres.{db}")
        assert f"skiff-swarm-{app}" in pg.attrs["NetworkSettings"]["Networks"]
        assert not any(pg.attrs["NetworkSettings"]["Ports"].values())

        report = json.loads(sshd.ok("ps:report", app, "--format", "json"))
        rows = [r for r in report["processes"] if r["status"] == "running"]
        assert report["running"] == 3 and len({r["node"] for r in rows}) == 3, report  # one task per node
        assert {r["address"].rsplit(":", 1)[0] for r in rows} == {n.address for n in c.nodes}
        workers = {n.address for n in c.workers}
        assert sum(r["address"].rsplit(":", 1)[0] in workers for r in rows) == 2

        seen = answers(private_nginx, host, "/note")
        assert seen == {f"web.{n} {NOTE}" for n in (1, 2, 3)}, seen  # every task, workers too, read it

        stopped = sshd.ok("ps:stop", app)
        assert f"Stopped 3 containers of {app}" in stopped, stopped
        assert json.loads(sshd.ok("ps:report", app, "--format", "json"))["running"] == 0
        started = sshd.ok("ps:start", app)
        assert "started 3 task(s)" in started, started
        seen = answers(private_nginx, host, "/note")
        assert seen == {f"web.{n} {NOTE}" for n in (1, 2, 3)}, seen

        detached = sshd.ok("run:detached", app, "sleep 30").strip().splitlines()[-1]
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

        sshd.ok("apps:destroy", app, "--force")
        assert c.manager.client().services.list(filters={"label": f"skiff.app={app}"}) == []
        assert c.manager.client().networks.list(names=[f"skiff-swarm-{app}"]) == []
    finally:
        sshd.ssh(["apps:destroy", app, "--force"])
        sshd.ssh(["postgres:destroy", db, "--force"])
        cluster.local_skiff(skiff_root, engine, "registry:serve", "--stop")
