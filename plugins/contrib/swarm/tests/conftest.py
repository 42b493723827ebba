"""Fixtures of the swarm plugin's tests: a single-node swarm manager on an engine of its own.

The engine is one node of :mod:`skiff.testing.cluster` (its own network namespace, its own
``/etc/docker``; the machine's engine and its config are never touched), initialised as a swarm;
the module's tests share it and it is stopped with everything it made at the end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from skiff.testing import cluster


@dataclass
class SwarmEngine:
    """The manager node of a one-node cluster, as the tests use it."""

    node: cluster.Node

    @property
    def host(self) -> str:
        """The engine's ``DOCKER_HOST`` (a unix socket: reachable from the host's namespace)."""
        return self.node.base_url

    @property
    def address(self) -> str:
        """The node's address, which nginx on this machine reaches its published ports at."""
        return self.node.address

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args], capture_output=True, text=True, check=False, timeout=timeout
        )


@pytest.fixture(scope="module")
def swarm_engine() -> Iterator[SwarmEngine]:
    """A single-node swarm on a fresh engine in its own namespace, for the module's tests."""
    with cluster.started(1) as one:
        yield SwarmEngine(one.manager)


@pytest.fixture(scope="module")
def three_nodes(docker_client, manager_image: str | tuple[str, ...]) -> Iterator[cluster.Cluster]:
    """Three engines as one swarm; the manager holds ``manager_image`` (each module names it: one
    image, or a tuple of them)."""
    c = cluster.start(3)
    try:
        for image in (manager_image,) if isinstance(manager_image, str) else manager_image:
            cluster.load_image(docker_client, c.manager.client(), image)
        yield c
    finally:
        c.stop()
    assert c.leftovers() == []


@pytest.fixture
def sshd_skiff_env(private_nginx, three_nodes):
    """The server-side skiff drives the private nginx; its engine is the swarm's manager."""
    return {**private_nginx.env, "DOCKER_HOST": three_nodes.manager.base_url}
