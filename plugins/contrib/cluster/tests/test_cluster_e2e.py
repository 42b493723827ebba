"""cluster:init, cluster:add, cluster:list and cluster:remove on three engines of the one-machine
fixture (skiff.testing.cluster) that are not in a swarm yet; bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skiff.testing import cluster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]


def _skiff(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKIFF_ROOT": str(root)}
    env.pop("SKIFF_USER", None)
    return subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True, text=True, timeout=120)


def test_init_add_list_remove_over_the_engines_api(skiff_root):
    c = cluster.start(3, swarm=False)
    try:
        manager = ("--manager", c.manager.base_url)
        assert "not a swarm manager" in _skiff(skiff_root, "cluster:list", *manager).stderr
        loop = _skiff(skiff_root, "cluster:init", "127.0.0.1", *manager)
        assert loop.returncode != 0 and "loopback" in loop.stderr
        init = _skiff(skiff_root, "cluster:init", c.manager.address, *manager)
        assert init.returncode == 0, init.stderr
        assert "already in a swarm" in _skiff(skiff_root, "cluster:init", c.manager.address, *manager).stderr
        for node in c.workers:
            added = _skiff(skiff_root, "cluster:add", node.base_url, "--advertise", node.address, *manager)
            assert added.returncode == 0, added.stderr
            assert f"Node {node.name}-{c.id}" in added.stdout
            assert "SWMTKN" not in added.stdout + added.stderr  # the join token is never printed
        rows = json.loads(_skiff(skiff_root, "cluster:list", "--format", "json", *manager).stdout)
        assert sorted((r["address"], r["role"], r["state"]) for r in rows) == [
            (c.manager.address, "manager", "ready"),
            (c.workers[0].address, "worker", "ready"),
            (c.workers[1].address, "worker", "ready"),
        ]
        text = _skiff(skiff_root, "cluster:list", *manager).stdout
        assert text.splitlines()[1].startswith(f"node1-{c.id}") and "manager*" in text

        # bad input: one line, nothing changed
        for args, message in (
            (("cluster:add", f"unix://{c.path}/nowhere.sock"), "cannot reach the node engine"),
            (("cluster:add", "http://10.0.0.1:2375"), "invalid engine address"),
            (("cluster:add", c.workers[0].base_url), "already in a swarm"),
            (("cluster:remove", "no-such-node"), "no single node"),
            (("cluster:remove", f"node1-{c.id}"), "is a manager"),
        ):
            bad = _skiff(skiff_root, *args, *manager)
            assert bad.returncode != 0 and message in bad.stderr, (args, bad.stderr)
            assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        removed = _skiff(skiff_root, "cluster:remove", f"node3-{c.id}", *manager)
        assert removed.returncode == 0, removed.stderr
        rows = json.loads(_skiff(skiff_root, "cluster:list", "--format", "json", *manager).stdout)
        assert sorted(r["hostname"] for r in rows) == [f"node1-{c.id}", f"node2-{c.id}"]
    finally:
        c.stop()
    assert c.leftovers() == []
