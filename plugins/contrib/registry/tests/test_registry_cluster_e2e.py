"""The registry on the one-machine cluster (skiff.testing.cluster): three engines in their own
namespaces form a swarm; an image built on the manager host (Skiff's own engine) goes through the
registry Skiff runs there (TLS with its own CA, htpasswd) to every node, which pulls it from the
manager's cluster address; the password is never in ``ps``, logs or labels; teardown leaves nothing
behind."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_registry.plugin as registry_plugin
from skiff import dockerclient
from skiff.errors import SkiffError
from skiff.testing import cluster
from skiff_registry import credentials

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]


def _free_port(*hosts: str) -> int:
    """A port free on every one of ``hosts``."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
            try:
                for host in hosts[1:]:
                    with socket.socket() as other:
                        other.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _skiff(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKIFF_ROOT": str(root)}
    env.pop("SKIFF_USER", None)
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args], env=env, input=input, capture_output=True, text=True, timeout=120
    )


def _context_tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


class PsWatch:
    """Samples every process's command line while a command runs."""

    def __init__(self) -> None:
        self.lines: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.is_set():
            self.lines.update(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())
            time.sleep(0.02)

    def __enter__(self) -> PsWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def test_an_image_built_on_the_manager_travels_through_the_skiff_registry_to_every_node(
    skiff, skiff_root, docker_client, docker_cleanup, monkeypatch
):
    c = cluster.start(3)
    try:
        _run_on(c, skiff, skiff_root, docker_client, docker_cleanup, monkeypatch)
    finally:
        _skiff(skiff_root, "registry:serve", "--stop")
        c.stop()
    assert c.leftovers() == []
    assert not any("docker-registry serve" in line for line in _ps())


def _ps() -> list[str]:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()


def _run_on(c: cluster.Cluster, skiff, root: Path, docker_client, docker_cleanup, monkeypatch) -> None:
    port = _free_port(c.host_address, "127.0.0.1")
    server, local = f"{c.host_address}:{port}", f"127.0.0.1:{port}"
    app = f"regtest{c.id}"

    # -- Skiff runs the registry: the manager's address on the cluster network, TLS, a generated account
    assert "loopback" in _skiff(root, "registry:serve", "127.0.0.1:5443").stderr
    served = _skiff(root, "registry:serve", server)
    assert served.returncode == 0, served.stderr
    # Skiff's engine here is this host's own (builds happen there): it pushes over loopback
    assert _skiff(root, "registry:set", "--global", "push-server", local).returncode == 0
    report = json.loads(_skiff(root, "registry:report", "--format", "json").stdout)
    assert report["server"] == server and report["push_server"] == local
    assert report["serving"] and report["logged_in"]
    ca = Path(report["ca_certificate"]).read_bytes()
    password = credentials.lookup(root, server)["password"]  # type: ignore[index]
    assert password and password not in served.stdout + served.stderr

    # -- a node that does not trust the CA refuses the registry (TLS is verified) ----------------
    worker = c.workers[0]
    untrusted = subprocess.run(
        ["docker", "-H", worker.base_url, "pull", f"{server}/skiff/none:1"], capture_output=True, text=True
    )
    assert untrusted.returncode != 0 and "certificate signed by unknown authority" in untrusted.stderr
    for node in c.nodes:
        node.trust(server, ca)

    # -- registry:login: a wrong password is one line; the right one is never in ps -----------------
    wrong = _skiff(root, "registry:login", server, "skiff", input="not-the-password\n")
    assert wrong.returncode != 0
    assert len(wrong.stderr.strip().splitlines()) == 1 and f"registry {server} refused the login" in wrong.stderr
    with PsWatch() as watch:
        good = _skiff(root, "registry:login", server, "skiff", input=password + "\n")
    assert good.returncode == 0, good.stderr
    assert watch.lines and not [line for line in watch.lines if password in line]
    config = credentials.config_file(root)
    assert config.stat().st_mode & 0o777 == 0o600 and config.parent.stat().st_mode & 0o777 == 0o700

    # -- an image built on the manager host is pushed by the hook and pulled on every node -------------
    docker_cleanup.image(f"skiff/{app}:7")
    docker_cleanup.image(f"{local}/skiff/{app}:7")
    docker_cleanup.image(f"{server}/skiff/{app}:7")
    built, _ = docker_client.images.build(
        fileobj=_context_tar({"Dockerfile": b"FROM scratch\nCOPY hello.txt /\n", "hello.txt": b"meow\n"}),
        custom_context=True,
        tag=f"skiff/{app}:7",
    )
    h = skiff(("apps", apps_plugin), ("registry", registry_plugin))
    h.create_app(app)
    ref = h.context.hook.skiff_image_for_nodes(context=h.context, app=app, image=f"skiff/{app}:7")
    assert ref == f"{server}/skiff/{app}:7"
    auth = credentials.lookup(root, server)
    for node in c.nodes:
        client = node.client()
        with pytest.raises(Exception, match="no basic auth credentials|unauthorized"):
            client.images.pull(f"{server}/skiff/{app}", tag="7")
        pulled = client.images.pull(f"{server}/skiff/{app}", tag="7", auth_config=auth)
        assert pulled.id == built.id
        assert password not in json.dumps(pulled.attrs)  # labels, env, history
        client.close()

    # -- Skiff's engine is the manager's own (DOCKER_HOST): it trusts the CA and pushes to the server --
    assert _skiff(root, "registry:set", "--global", "push-server").returncode == 0
    on_manager, _ = c.manager.client().images.build(
        fileobj=_context_tar({"Dockerfile": b"FROM scratch\nCOPY hello.txt /\n", "hello.txt": b"purr\n"}),
        custom_context=True,
        tag=f"skiff/{app}:8",
    )
    monkeypatch.setenv("DOCKER_HOST", c.manager.base_url)
    dockerclient.reset()
    try:
        ref = h.context.hook.skiff_image_for_nodes(context=h.context, app=app, image=f"skiff/{app}:8")
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        dockerclient.reset()
    assert ref == f"{server}/skiff/{app}:8"
    assert c.workers[1].client().images.pull(f"{server}/skiff/{app}", tag="8", auth_config=auth).id == on_manager.id

    # -- a push the registry refuses is one line, naming the registry ---------------------------------
    # (this host's engine, over loopback, without credentials: refused for the password, not TLS)
    assert _skiff(root, "registry:set", "--global", "push-server", local).returncode == 0
    assert _skiff(root, "registry:logout", server).returncode == 0
    with pytest.raises(SkiffError) as refused:
        h.context.hook.skiff_image_for_nodes(context=h.context, app=app, image=f"skiff/{app}:7")
    assert str(refused.value).startswith(f"registry {server} refused the push of {server}/skiff/{app}:7:")
    assert "no basic auth credentials" in str(refused.value) or "unauthorized" in str(refused.value)
    assert "\n" not in str(refused.value)

    # -- the password is in no log, no state and no label -----------------------------------------------
    for path in root.rglob("*"):
        if path.is_file() and path.name not in ("htpasswd",):
            assert password.encode() not in path.read_bytes(), path
    for node in c.nodes:
        assert password not in node.log()
