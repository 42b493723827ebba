"""Fixtures for the postgres plugin's end-to-end tests (real dockerd, real postgres)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from skiff_postgres.kind import KIND, LOCAL_IMAGE
from skiff_services.record import ROOT_LABEL

CLIENT_SCRIPT = 'exec psql "$DATABASE_URL" -X -tA -v ON_ERROR_STOP=1 -c "$SQL"'


@pytest.fixture(scope="session")
def pg_image(docker_client) -> str:
    """The local postgres image, built once (and kept, like the stack image) if missing."""
    import docker

    try:
        docker_client.images.get(LOCAL_IMAGE)
    except docker.errors.ImageNotFound:
        proc = subprocess.run(
            [sys.executable, "-m", "skiff", "postgres:build-image"], env=cli_env(None), capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    _remove_orphans(docker_client)
    return LOCAL_IMAGE


def _remove_orphans(docker_client) -> None:
    """Remove service containers of earlier test runs whose temp SKIFF_ROOT is gone.

    They outlive a run whose cleanup could not reach the engine (restart policy
    ``always``); only containers labelled with a vanished pytest temp root go.
    """
    for c in docker_client.containers.list(all=True, filters={"label": f"{KIND.label}=postgres"}):
        root = c.labels.get(ROOT_LABEL, "")
        if root.startswith("/tmp/pytest-of-") and not Path(root).exists():
            c.remove(force=True)


def cli_env(root: Path | None, **extra: str) -> dict[str, str]:
    """Environment for a real ``skiff`` process with only apps, config and postgres enabled."""
    keep = {"apps", "config", "postgres"}
    others = {ep.name for ep in metadata.entry_points(group="skiff")} - keep
    env = dict(os.environ, SKIFF_DISABLED_PLUGINS=",".join(sorted(others)), **extra)
    if root is not None:
        env["SKIFF_ROOT"] = str(root)
    return env


def run_cli(
    root: Path, *args: str, input: bytes | None = None, stdout: Any = subprocess.PIPE, stdin: Any = None
) -> subprocess.CompletedProcess:
    """Run ``skiff ARGS`` as a separate process (binary stdout/stdin, like over SSH)."""
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args],
        env=cli_env(root),
        input=input,
        stdout=stdout,
        stdin=stdin,
        stderr=subprocess.PIPE,
        timeout=300,
    )


@pytest.fixture
def service_name() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def cleanup(docker_client, skiff_root):
    """Remove every container and network this test's SKIFF_ROOT made (by label), afterwards."""
    yield
    for c in docker_client.containers.list(all=True, filters={"label": f"{ROOT_LABEL}={skiff_root}"}):
        c.remove(force=True)
    for c in docker_client.containers.list(all=True, filters={"label": "skiff.test.client"}):
        c.remove(force=True)
    for network in docker_client.networks.list(filters={"label": f"{ROOT_LABEL}={skiff_root}"}):
        network.remove()  # the services' own networks


def service_network(url: str) -> str:
    """The own network of the service a DSN names (``...@skiff-postgres-NAME:5432/...``)."""
    host = url.rsplit("@", 1)[1].split(":", 1)[0]
    return KIND.network(host.removeprefix("skiff-postgres-"))


def psql_client(docker_client, image: str, url: str, sql: str, *, network_mode: str | None = None) -> tuple[int, str]:
    """Run a real psql client in a one-off container with DATABASE_URL in its environment,
    on the service's own network unless ``network_mode`` says otherwise."""
    network_mode = network_mode or service_network(url)
    container = docker_client.containers.run(
        image,
        entrypoint=["sh", "-c", CLIENT_SCRIPT],
        environment={"DATABASE_URL": url, "SQL": sql},
        network_mode=network_mode,
        labels={"skiff.test.client": "1", KIND.label: "postgres"},
        detach=True,
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode("utf-8", "replace").strip()
    finally:
        container.remove(force=True)


@pytest.fixture
def cli(skiff_root):
    """``cli(*args, input=..., stdout=..., stdin=...)``: a real skiff process on this test's root."""
    return lambda *args, **kw: run_cli(skiff_root, *args, **kw)


@pytest.fixture
def psql(docker_client, pg_image, cleanup):
    """``psql(url, sql, network_mode=...)`` -> (exit code, output) from a one-off client container."""
    return lambda url, sql, **kw: psql_client(docker_client, pg_image, url, sql, **kw)
