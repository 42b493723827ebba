"""pytest fixtures and helpers for end-to-end tests that run apps on a real engine.

``ImageBuilder``
    a builder plugin: ``docker build`` of the received source tree's
    Dockerfile (e.g. ``FROM skiff/stack-base:trixie``), tagged
    ``skiff-test/<app>:<n>`` and labelled ``skiff.app=<app>`` like real builds.
``TestProxy``
    a loopback TCP proxy standing in for nginx: its ``skiff_post_deploy``
    (``tryfirst``) switches to ``deploy.meta["upstreams"]``; new connections
    go to the current upstreams round-robin.
``Load``
    a steady, bounded loopback load that counts answers and failures.

Fixtures (``docker_client`` comes from ``skiff.testing.docker``):
``stack_base_image`` (session; fails when ``skiff/stack-base:trixie`` is
missing), ``scheduler_app`` (a fresh app name whose containers and images are
removed afterwards).
"""

from __future__ import annotations

import http.client
import itertools
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .. import hookimpl
from ..deploy import Deploy
from .docker import remove_app_network

STACK_BASE = "skiff/stack-base:trixie"


class ImageBuilder:
    """Builds the workdir's Dockerfile with the local engine (legacy builder, no pulls)."""

    def __init__(self) -> None:
        self.builds = 0

    @hookimpl(trylast=True)
    def skiff_build(self, deploy: Deploy) -> str | None:
        import docker

        assert deploy.workdir is not None
        self.builds += 1
        tag = f"skiff-test/{deploy.app}:{self.builds}-{secrets.token_hex(3)}"
        client = docker.from_env()
        client.images.build(
            path=str(deploy.workdir),
            tag=tag,
            rm=True,
            forcerm=True,
            labels={"skiff.app": deploy.app, "skiff.test": "1"},
        )
        return tag


class TestProxy:
    """A threaded TCP proxy on 127.0.0.1:<free port>, switched by post_deploy."""

    __test__ = False

    def __init__(self) -> None:
        self.upstreams: list[tuple[str, int]] = []
        self._cycle = itertools.count()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @hookimpl(tryfirst=True)
    def skiff_post_deploy(self, deploy: Deploy) -> None:
        self.switch(deploy.upstreams)

    def switch(self, upstreams: list[str]) -> None:
        pairs = []
        for item in upstreams:
            host, _, port = item.rpartition(":")
            pairs.append((host, int(port)))
        self.upstreams = pairs

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstreams = self.upstreams
        if not upstreams:
            conn.close()
            return
        target = upstreams[next(self._cycle) % len(upstreams)]
        try:
            up = socket.create_connection(target, timeout=10)
        except OSError:
            conn.close()
            return

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
        t.start()
        pipe(conn, up)
        t.join(30)
        conn.close()
        up.close()


def get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """One GET on a fresh loopback connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_answer(port: int, timeout: float = 30.0, path: str = "/") -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(port, path, timeout=2)
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Load:
    """``threads`` clients sending GETs back to back to 127.0.0.1:port (bounded by ``limit`` seconds)."""

    def __init__(self, port: int, threads: int = 2, limit: float = 300.0, pause: float = 0.005):
        self.port, self.threads, self.limit, self.pause = port, threads, limit, pause
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        deadline = time.monotonic() + self.limit
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, args=(deadline,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(15)

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, body = get(self.port, timeout=10)
                with self._lock:
                    if status == 200:
                        self.ok += 1
                        self.bodies.add(body.strip())
                    else:
                        self.failures.append(f"HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(self.pause)


@pytest.fixture(scope="session")
def stack_base_image(docker_client: Any) -> str:
    import docker.errors

    try:
        docker_client.images.get(STACK_BASE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{STACK_BASE} is missing: build it with the stack plugin (or scripts) first")
    return STACK_BASE


def remove_app_resources(client: Any, app: str) -> None:
    """Remove every container and image labelled ``skiff.app=<app>``, and the app's own network."""
    for container in client.containers.list(all=True, filters={"label": f"skiff.app={app}"}, sparse=True):
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass
    for image in client.images.list(filters={"label": f"skiff.app={app}"}):
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass
    remove_app_network(client, app)


@pytest.fixture
def scheduler_app(docker_client: Any) -> Iterator[str]:
    """A fresh app name (``t<hex>``); its containers and images go afterwards.

    When the engine is away at teardown (another test restarted it), the
    cleanup waits for it up to a minute, so nothing is left running.
    """
    app = f"t{secrets.token_hex(4)}"
    yield app
    deadline = time.monotonic() + 60
    while True:
        try:
            docker_client.ping()
            remove_app_resources(docker_client, app)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
