"""The one-machine cluster of skiff.testing.cluster: three engines in their own namespaces form a swarm,
and stopping it leaves nothing behind (also when starting it failed half way)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from skiff.testing import cluster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]


def test_three_engines_in_their_own_namespaces_form_a_swarm_and_leave_nothing_behind():
    c = cluster.start(3)
    try:
        manager = c.manager.client()
        nodes = manager.nodes.list()
        assert sorted(n.attrs["Status"]["Addr"] for n in nodes) == sorted(node.address for node in c.nodes)
        assert sorted(n.attrs["Spec"]["Role"] for n in nodes) == ["manager", "worker", "worker"]
        assert all(n.attrs["Status"]["State"] == "ready" for n in nodes)
        assert sorted(n.attrs["Description"]["Hostname"] for n in nodes) == [f"node{k}-{c.id}" for k in (1, 2, 3)]
        # each engine is in its own namespace: its address is there, not on the host
        for node in c.nodes:
            addresses = subprocess.run(["ip", "-n", node.netns, "-4", "addr"], capture_output=True, text=True).stdout
            assert f"{node.address}/24" in addresses
        host = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
        assert c.manager.address not in host and f"{c.host_address}/24" in host
        # the host reaches a node's swarm port, and nodes reach each other's over the bridge
        socket.create_connection((c.manager.address, cluster.SWARM_PORT), timeout=5).close()
        probe = f"import socket; socket.create_connection(({c.workers[1].address!r}, 7946), 5)"  # gossip
        assert subprocess.run(c.workers[0].nsenter(sys.executable, "-c", probe), capture_output=True).returncode == 0
        # the node's own /etc/docker, not the host's
        c.workers[0].trust("10.0.0.1:5443", b"not a real CA")
        assert not Path("/etc/docker/certs.d/10.0.0.1:5443").exists()
        # containerd and its shims run for the engines, under the cluster's directory
        assert any("containerd" in line for _, line in c._processes())
        manager.close()
    finally:
        c.stop()
    assert c.leftovers() == []
    assert not [line for _, line in c._processes()]


def test_a_half_started_cluster_is_removed(monkeypatch):
    def refuse(self):
        raise RuntimeError("swarm refused")

    monkeypatch.setattr(cluster.Cluster, "_form_swarm", refuse)
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    with pytest.raises(RuntimeError, match="swarm refused"):
        cluster.start(2)
    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not {name for name in after - before if name.startswith(cluster.PREFIX)}
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "dockerd --data-root /tmp/skc-" not in processes
