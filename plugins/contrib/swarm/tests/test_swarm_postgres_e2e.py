"""End to end on the three-node cluster: swarm apps linked to postgres read it from every node.

The postgres service runs on the swarm manager (the Skiff server's engine, DOCKER_HOST), as the
services of contrib plugins do; ``postgres:link`` puts it on the app's attachable overlay network
(``skiff_link_network``), where the app's tasks on the workers resolve its alias from the link URL:
no host port is published.

1. **examples/pgapp**, the project's example as a user pushes it (unmodified: Flask, gunicorn and
   psycopg, built by the python buildpack on the manager, run on the slim run image), scaled to
   web=3: one task per node. It does not say which task answered, so the test reaches each task
   at its own node's host-mode published port (``ps:report``): a note written through each task
   is read back through every other one, and nginx counts them all. The cluster's namespaces have
   no route out, so the build's package index is one the test serves on the cluster network from
   wheels it downloads (``buildpacks:set --global python-index``, as an operator points a cluster
   without internet access at a mirror).
2. ``tests/pgapp`` (psql in the postgres image, built from its Dockerfile): its Procfile
   ``release:`` task writes the row, as a one-off task on the cluster; each web task reads it
   through DATABASE_URL and says which task it is. ``ps:report`` lists the tasks on every node;
   ``ps:stop`` stops them all and ``ps:start`` brings them back behind nginx; ``run:detached``
   leaves a one-off task running.
"""

from __future__ import annotations

import hashlib
import html
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
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
EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "pgapp"
STACK_PYTHON = "3.13"  # the python3 of skiff/stack:trixie, which the wheels must fit
UV_WHEEL = "uv==0.13.8"  # skiff_buildpacks.wheels.UV_VERSION: Skiff fetches it from the python-index
GLOBAL = "skiff.test"
NOTE = "from the release task"


@pytest.fixture(scope="module")
def postgres_image(docker_client) -> str:
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


@pytest.fixture(scope="module")
def manager_image(docker_client, postgres_image: str, stack_image: str) -> tuple[str, ...]:
    """postgres, and the stack's build and run images that examples/pgapp is built with."""
    import docker

    run = stack_image.replace("skiff/stack:", "skiff/stack-run:")
    try:
        docker_client.images.get(run)
    except docker.errors.ImageNotFound:
        return (postgres_image, stack_image)  # the manager derives it from the build image
    return (postgres_image, stack_image, run)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """examples/pgapp's wheels for the stack's Python, and uv's (pip, from the package index)."""
    directory = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"] if shutil.which("pip") is None else [str(shutil.which("pip"))]
    common = [*pip, "download", "-q", "--no-cache-dir", "--only-binary=:all:", "-d", str(directory)]
    for args in (
        ["--python-version", STACK_PYTHON, "--implementation", "cp", "--abi", f"cp{STACK_PYTHON.replace('.', '')}"]
        + ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"]
        + ["-r", str(EXAMPLE / "requirements.txt")],
        ["--no-deps", "--platform", "musllinux_1_1_x86_64", UV_WHEEL],
    ):
        done = subprocess.run([*common, *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return directory


class WheelIndex(http.server.ThreadingHTTPServer):
    """A PEP 503 simple index of the wheels in a directory: ``/simple/PROJECT/`` and ``/files/NAME``."""

    daemon_threads = True

    def __init__(self, address: str, directory: Path):
        self.files = {p.name: p for p in directory.glob("*.whl")}
        super().__init__((address, 0), IndexHandler)

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/simple"

    def page(self, project: str) -> str | None:
        from skiff_buildpacks.wheels import normalize

        found = [n for n in sorted(self.files) if normalize(n.split("-", 1)[0]) == project]
        if not found:
            return None
        links = "".join(
            f'<a href="/files/{html.escape(n)}#sha256={hashlib.sha256(self.files[n].read_bytes()).hexdigest()}">'
            f"{html.escape(n)}</a>\n"
            for n in found
        )
        return f"<!DOCTYPE html><html><body>{links}</body></html>"


class IndexHandler(http.server.BaseHTTPRequestHandler):
    server: WheelIndex

    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self.answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802 - uv asks for a file's size first
        self.answer(head=True)

    def answer(self, head: bool) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        body, kind = None, "text/html"
        if len(parts) == 2 and parts[0] == "simple":
            page = self.server.page(parts[1])
            body = page.encode() if page is not None else None
        elif len(parts) == 2 and parts[0] == "files" and parts[1] in self.server.files:
            body, kind = self.server.files[parts[1]].read_bytes(), "application/octet-stream"
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture
def wheel_index(three_nodes, wheels: Path) -> Iterator[WheelIndex]:
    """The wheels served on the host's address of the cluster network (the nodes reach it there)."""
    index = WheelIndex(three_nodes.host_address, wheels)
    thread = threading.Thread(target=index.serve_forever, daemon=True)
    thread.start()
    yield index
    index.shutdown()
    index.server_close()


def serve_registry(c: cluster.Cluster, sshd, root: Path) -> str:
    """Skiff's own registry on the cluster network, trusted by every node; set as the server."""
    with socket.socket() as probe:
        probe.bind((c.host_address, 0))
        server = f"{c.host_address}:{probe.getsockname()[1]}"
    engine = c.manager.base_url
    cluster.local_skiff(root, engine, "registry:serve", server)
    report = json.loads(cluster.local_skiff(root, engine, "registry:report", "--format", "json"))
    ca = Path(report["ca_certificate"]).read_bytes()
    for node in c.nodes:
        node.trust(server, ca)
    sshd.ok("registry:set", "--global", "server", server)
    return server


def direct(address: str, path: str, body: str | None = None) -> str:
    """A request to one task at its node's published port (no nginx): the answer's body."""
    request = urllib.request.Request(f"http://{address}{path}", data=body.encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201), answer.status
        return answer.read().decode()


def test_examples_pgapp_answers_from_a_task_on_every_node_reading_the_linked_postgres(
    three_nodes, private_nginx, sshd, skiff_root, tmp_path, wheel_index
):
    c = three_nodes
    app = new_app_name("pga")
    db = new_app_name("db")
    serve_registry(c, sshd, skiff_root)
    try:
        sshd.ok("buildpacks:set", "--global", "python-index", wheel_index.url)
        sshd.ok("domains:set-global", GLOBAL)
        host = f"{app}.{GLOBAL}"
        sshd.ok("apps:create", app)
        sshd.ok("scheduler:set", app, "selected", "swarm")
        sshd.ok("swarm:set", app, "wait-to-retire", "2")
        sshd.ok("swarm:set", app, "timeout", "300")  # three nodes pull the image on a loaded machine
        sshd.ok("ps:scale", app, "web=3")
        sshd.ok("postgres:create", db)
        sshd.ok("postgres:link", db, app)

        files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}  # as the user has them
        repo = init_repo(tmp_path / app, files)
        pushed = git_push(repo, app, sshd, timeout=1200)
        assert pushed.exit_code == 0, pushed.output
        assert "on the swarm" in pushed.output, pushed.output

        report = json.loads(sshd.ok("ps:report", app, "--format", "json"))
        rows = [r for r in report["processes"] if r["status"] == "running"]
        assert report["running"] == 3 and len({r["node"] for r in rows}) == 3, report  # one task per node
        tasks = sorted(r["address"] for r in rows)
        assert {t.rsplit(":", 1)[0] for t in tasks} == {n.address for n in c.nodes}, tasks

        # each task, on its own node, writes a note and reads every task's notes from postgres
        written = [f"through {t}" for t in tasks]
        for task, note in zip(tasks, written):
            assert direct(task, "/notes", note).strip().isdigit()
        for task in tasks:
            assert direct(task, "/notes").splitlines() == written, task
            assert direct(task, "/") == f"pgapp: {len(written)} notes\n"
        seen = {private_nginx.request("/", host=host).body for _ in range(12)}
        assert seen == {f"pgapp: {len(written)} notes\n"}, seen
        print(f"examples/pgapp on three nodes: {', '.join(tasks)} each read the {len(written)} notes")

        sshd.ok("apps:destroy", app, "--force")
        assert c.manager.client().services.list(filters={"label": f"skiff.app={app}"}) == []
    finally:
        sshd.ssh(["apps:destroy", app, "--force"])
        sshd.ssh(["postgres:destroy", db, "--force"])
        cluster.local_skiff(skiff_root, c.manager.base_url, "registry:serve", "--stop")


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
    engine = c.manager.base_url
    app = new_app_name("swpg")
    db = new_app_name("db")
    serve_registry(c, sshd, skiff_root)
    try:
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
