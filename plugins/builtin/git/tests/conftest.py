import socket
import subprocess
import time
from pathlib import Path

import pytest

from skiff.testing.sshd import STUB_ENV

HERE = Path(__file__).parent


@pytest.fixture
def sshd_skiff_env():
    """Server side: the stub pipeline plus the gate plugin of these tests."""
    return {
        **STUB_ENV,
        "SKIFF_PLUGINS": STUB_ENV["SKIFF_PLUGINS"] + ",skiff_git_gate",
        "PYTHONPATH": str(HERE),
    }


@pytest.fixture
def git_daemon(tmp_path):
    """``git daemon`` on a loopback port serving ``tmp_path/served``; yield (dir, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--export-all",
            "--reuseaddr",
            f"--base-path={served}",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield served, f"git://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
