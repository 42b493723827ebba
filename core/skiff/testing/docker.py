"""pytest fixtures and helpers for end-to-end tests on a real Docker engine.

Fixtures:

``docker_client`` (session)
    a Docker SDK client; the test fails with a clear message when no engine
    answers (start one with ``make docker``).
``stack_image`` (session)
    makes sure the stack image ``skiff/stack:trixie`` exists by running
    ``skiff stack:build`` once (a no-op when the tag exists) and returns it.
``docker_cleanup`` / ``docker_cleanup_module``
    a :class:`DockerCleanup` that removes, at the end of the test (module),
    the containers, images and volumes carrying the labels registered with it,
    and the own networks of the apps registered:
    ``cleanup.app(name)`` registers ``skiff.app=name`` (and the builders'
    ``skiff.deps`` / ``skiff.deps.run`` / ``skiff.build-for`` / ``skiff.cache`` labels for that app).

Helpers: :func:`new_app_name`, :func:`run_image` (``docker run`` an image with
``PORT`` published on 127.0.0.1), :func:`http_get` (retry until it answers).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from skiff.contracts import APP_NETWORK_LABEL, DEFAULT_PORT, DEFAULT_STACK_IMAGE

STACK_IMAGE = DEFAULT_STACK_IMAGE
APP_LABELS = ("skiff.app", "skiff.deps", "skiff.deps.run", "skiff.build-for", "skiff.cache")
TEST_LABEL = "skiff.test"


def new_app_name(prefix: str = "t") -> str:
    """A fresh, valid app name (unique across concurrent test runs)."""
    return f"{prefix}{secrets.token_hex(4)}"


class DockerCleanup:
    """Remembers labels (and ids) whose containers and images a test made; removes them."""

    def __init__(self, client: Any):
        self.client = client
        self.labels: list[str] = []
        self.containers: list[str] = []
        self.images: list[str] = []
        self.apps: list[str] = []

    def app(self, name: str) -> str:
        for key in APP_LABELS:
            self.label(key, name)
        self.apps.append(name)
        return name

    def label(self, key: str, value: str) -> None:
        self.labels.append(f"{key}={value}")

    def container(self, ident: str) -> None:
        self.containers.append(ident)

    def image(self, ref: str) -> None:
        self.images.append(ref)

    def cleanup(self) -> None:
        import docker.errors

        containers = list(self.containers)
        for label in self.labels:
            containers += [c.id for c in self.client.containers.list(all=True, filters={"label": label}, sparse=True)]
        for ident in containers:
            try:
                self.client.containers.get(ident).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception:
                pass
        images = list(self.images)
        for label in self.labels:
            # newest first, so children go before their parents
            found = self.client.images.list(filters={"label": label})
            found.sort(key=lambda i: i.attrs.get("Created", ""), reverse=True)
            images += [i.id for i in found]
        for ref in images:
            try:
                self.client.images.remove(ref, force=True)
            except docker.errors.ImageNotFound:
                pass
            except Exception:
                pass
        for label in self.labels:
            for volume in self.client.volumes.list(filters={"label": label}):
                try:
                    volume.remove(force=True)
                except Exception:
                    pass
        # the own network of every app a test named, by .app() or by its skiff.app label
        apps = dict.fromkeys(
            [*self.apps, *(label.split("=", 1)[1] for label in self.labels if label.startswith("skiff.app="))]
        )
        for app in apps:
            remove_app_network(self.client, app)


def remove_app_network(client: Any, app: str) -> None:
    """Remove the app's own network ``skiff-app-APP`` (a service still on it is disconnected)."""
    for network in client.networks.list(filters={"label": f"{APP_NETWORK_LABEL}={app}"}):
        try:
            network.reload()
            for container in network.containers:
                network.disconnect(container, force=True)
            network.remove()
        except Exception:
            pass


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker
    except ImportError:  # pragma: no cover
        pytest.fail("the docker Python package is not installed in this environment")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"no Docker engine answers ({exc}); start one with 'make docker' (scripts/ensure-docker.sh)", pytrace=False
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``skiff/stack:trixie``, built once with ``skiff stack:build`` when missing."""
    import docker.errors

    try:
        docker_client.images.get(STACK_IMAGE)
        return STACK_IMAGE
    except docker.errors.ImageNotFound:
        pass
    root = tmp_path_factory.mktemp("stack-root")
    env = {**os.environ, "SKIFF_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "skiff", "stack:build"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        pytest.fail(f"skiff stack:build failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    return STACK_IMAGE


@pytest.fixture
def docker_cleanup(docker_client: Any) -> Iterator[DockerCleanup]:
    cleanup = DockerCleanup(docker_client)
    yield cleanup
    cleanup.cleanup()


@pytest.fixture(scope="module")
def docker_cleanup_module(docker_client: Any) -> Iterator[DockerCleanup]:
    cleanup = DockerCleanup(docker_client)
    yield cleanup
    cleanup.cleanup()


def run_image(
    client: Any,
    image: str,
    cleanup: DockerCleanup | None = None,
    *,
    port: int = DEFAULT_PORT,
    env: dict[str, str] | None = None,
    command: Any = None,
) -> tuple[Any, int]:
    """``docker run -d`` ``image`` with ``PORT`` published on 127.0.0.1; return (container, host port)."""
    container = client.containers.run(
        image,
        command,
        detach=True,
        environment={"PORT": str(port), **(env or {})},
        ports={f"{port}/tcp": ("127.0.0.1", None)},
        labels={TEST_LABEL: "1"},
        init=True,
    )
    if cleanup is not None:
        cleanup.container(container.id)
    deadline = time.monotonic() + 10
    while True:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
        if bindings:
            return container, int(bindings[0]["HostPort"])
        if container.status == "exited" or time.monotonic() > deadline:
            logs = container.logs().decode(errors="replace")[-2000:]
            raise AssertionError(f"container of {image} did not publish port {port}; logs:\n{logs}")
        time.sleep(0.1)


def http_get(url: str, timeout: float = 20.0, container: Any = None) -> tuple[int, str]:
    """GET ``url`` until it answers (any status); return (status, body)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
            time.sleep(0.2)
    logs = ""
    if container is not None:
        logs = "\ncontainer logs:\n" + container.logs().decode(errors="replace")[-2000:]
    raise AssertionError(f"{url} did not answer in {timeout}s: {last}{logs}")
