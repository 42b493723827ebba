"""Fixtures for the redis plugin's end-to-end tests (real dockerd, real redis-server)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from skiff_redis.kind import LOCAL_IMAGE


@pytest.fixture(scope="session")
def redis_image(docker_client, stack_image) -> str:
    """The local redis image, built once (and kept, like the stack image) if missing."""
    import docker

    try:
        docker_client.images.get(LOCAL_IMAGE)
    except docker.errors.ImageNotFound:
        with tempfile.TemporaryDirectory() as root:
            proc = subprocess.run(
                [sys.executable, "-m", "skiff", "redis:build-image"],
                env=dict(os.environ, SKIFF_ROOT=root),
                capture_output=True,
                text=True,
            )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return LOCAL_IMAGE


@pytest.fixture
def redis_cleanup(docker_client, skiff_root):
    """Remove every service container and network this test's SKIFF_ROOT made, afterwards."""
    yield
    label = f"skiff.root={skiff_root}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for net in docker_client.networks.list(filters={"label": label}):
        net.remove()
