"""Killing (SIGTERM) and restarting dockerd brings the app back on the same published port.

This stops the engine for a few seconds, so it is one lean test; the engine is
started again with scripts/ensure-docker.sh even when the test fails. It runs
only with ``SKIFF_TEST_RESTART_ENGINE=1`` (``make test`` sets it): on a machine
where other test runs share the engine it would break them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.testing import DirReceiver, dir_source
from skiff.testing.scheduler import ImageBuilder, get, wait_answer
from skiff_docker import engine

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("SKIFF_TEST_RESTART_ENGINE") != "1",
        reason="restarts dockerd; set SKIFF_TEST_RESTART_ENGINE=1 (make test does)",
    ),
]

ROOT = Path(__file__).resolve().parents[4]
APP_DIR = Path(__file__).parent / "app"


def dockerd_pid() -> int:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    if not out:
        pytest.fail("no dockerd process to restart")
    return int(out[0])


def restart_engine() -> None:
    pid = dockerd_pid()
    os.kill(pid, signal.SIGTERM)
    wait_exit(pid, 120)
    ensure_engine()


def wait_exit(pid: int, timeout: float) -> None:
    """Wait until dockerd exited (it stops every container first); SIGKILL it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.2)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)


def ensure_engine() -> None:
    """Start dockerd again (scripts/ensure-docker.sh), retrying while the old one is still going away."""
    for _ in range(3):
        if subprocess.run([str(ROOT / "scripts" / "ensure-docker.sh")], timeout=120).returncode == 0:
            return
        time.sleep(2)


def test_app_comes_back_after_dockerd_restart(skiff, stack_base_image, scheduler_app, tmp_path):
    h = skiff(
        ("apps", apps_plugin),
        ("procfile", procfile_plugin),
        ("docker", docker_plugin),
        ("dir", DirReceiver()),
        ("builder", ImageBuilder()),
    )
    h.create_app(scheduler_app)
    src = tmp_path / "src"
    import shutil

    shutil.copytree(APP_DIR, src)
    (src / "VERSION").write_text("survivor\n")
    lifecycle.deploy(h.context, scheduler_app, dir_source(src, "a" * 40))
    before = json.loads(h.invoke("ps:report", scheduler_app, "--format", "json").stdout)["processes"][0]
    assert get(before["port"])[1].startswith("survivor")
    try:
        restart_engine()
    finally:
        ensure_engine()
        engine.reset_client()
    status, body = wait_answer(before["port"], timeout=60)
    assert (status, body.split()[0]) == (200, "survivor")
    after = json.loads(h.invoke("ps:report", scheduler_app, "--format", "json").stdout)["processes"][0]
    assert after["port"] == before["port"] and after["name"] == before["name"]
    restore = h.invoke("ps:restore", scheduler_app)
    assert restore.exit_code == 0 and f"{scheduler_app}: running" in restore.stdout
