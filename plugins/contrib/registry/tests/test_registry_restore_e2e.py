"""After a reboot the registry Skiff serves runs again: ``ps:restore`` (what skiff-restore.service
runs at boot) starts it with the same address, CA and account, so that tasks of swarm apps that
carry its credentials can still pull; after ``registry:serve --stop`` it stays stopped.

The registry listens on the host's address on a one-node cluster network of its own
(:mod:`skiff.testing.cluster`, no swarm), never on this machine's other interfaces."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skiff.testing import cluster
from skiff_registry import credentials, serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]


def _skiff(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKIFF_ROOT": str(root)}
    env.pop("SKIFF_USER", None)
    return subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True, text=True, timeout=120)


def _status(host: str, port: int, ca: Path, auth: dict[str, str] | None) -> int:
    """The HTTP status of ``GET /v2/`` over TLS verified by ``ca`` (0: no answer)."""
    context = ssl.create_default_context(cafile=str(ca))
    header = ""
    if auth:
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        header = f"Authorization: Basic {token}\r\n"
    try:
        with (
            socket.create_connection((host, port), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\n{header}Connection: close\r\n\r\n".encode())
            return int(tls.recv(64).split(b" ")[1])
    except (OSError, ssl.SSLError, IndexError, ValueError):
        return 0


def _kill_all(root: Path) -> list[int]:
    """What a reboot does to the registry: its processes are gone, its files stay."""
    pids = serve.running_pids(root)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while serve.running_pids(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def test_ps_restore_starts_the_served_registry_again_with_its_account_until_it_is_stopped(skiff_root):
    c = cluster.start(1, swarm=False)
    try:
        with socket.socket() as probe:
            probe.bind((c.host_address, 0))
            port = int(probe.getsockname()[1])
        server = f"{c.host_address}:{port}"
        served = _skiff(skiff_root, "registry:serve", server)
        assert served.returncode == 0, served.stderr
        ca = serve.ca_file(skiff_root)
        account = credentials.lookup(skiff_root, server)
        assert account and _status(c.host_address, port, ca, account) == 200
        ca_before = ca.read_bytes()

        assert len(_kill_all(skiff_root)) == 2  # the cluster address's process and 127.0.0.1's
        assert _status(c.host_address, port, ca, account) == 0

        restored = _skiff(skiff_root, "ps:restore")  # at boot: skiff_boot before the apps
        assert restored.returncode == 0, restored.stderr
        assert "registry started again" in restored.stdout, f"skiff_boot did not start it: {restored.stdout}"
        assert f"registry: registry started again on {server}, 127.0.0.1:{port}" in restored.stdout
        assert ca.read_bytes() == ca_before  # nodes keep trusting it
        assert credentials.lookup(skiff_root, server) == account  # services' credentials still pull
        for host in (c.host_address, "127.0.0.1"):
            assert _status(host, port, ca, account) == 200, host
            assert _status(host, port, ca, None) == 401, host
        report = json.loads(_skiff(skiff_root, "registry:report", "--format", "json").stdout)
        assert report["serving"] is True

        again = _skiff(skiff_root, "ps:restore")  # already running: left as it is
        assert again.returncode == 0 and "registry" not in again.stdout, again.stdout
        assert len(serve.running_pids(skiff_root)) == 2

        stopped = _skiff(skiff_root, "registry:serve", "--stop")
        assert stopped.returncode == 0 and "Stopped the registry" in stopped.stdout
        after = _skiff(skiff_root, "ps:restore")
        assert after.returncode == 0 and "registry" not in after.stdout, after.stdout
        assert serve.running_pids(skiff_root) == []
        assert _status(c.host_address, port, ca, account) == 0
    finally:
        _skiff(skiff_root, "registry:serve", "--stop")
        c.stop()
    assert c.leftovers() == []
