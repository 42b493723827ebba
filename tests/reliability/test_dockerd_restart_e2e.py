"""dockerd restarted: a pushed app comes back by itself and answers through nginx again.

The scheduler's own test (plugins/builtin/docker/tests/test_engine_restart.py) proves the
container returns on the same published port and that ``ps:restore`` is a no-op. This one
is the user's view on the whole stack: an app pushed with git, served by nginx by host
name, answers through nginx after the engine restarts (no skiff command run), and the
next push works. It stops the engine for a few seconds; the engine is started again with
scripts/ensure-docker.sh even when the test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from .conftest import REPO_ROOT, push_good

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("SKIFF_TEST_RESTART_ENGINE") != "1",
        reason="restarts dockerd; set SKIFF_TEST_RESTART_ENGINE=1 (make test does)",
    ),
]

ENSURE_DOCKER = REPO_ROOT / "scripts" / "ensure-docker.sh"


def restart_dockerd() -> None:
    pids = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    if not pids:
        pytest.skip("dockerd is not a local process here")
    pid = int(pids[0])
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subprocess.run([str(ENSURE_DOCKER)], check=True, timeout=120)


def test_app_answers_through_nginx_after_dockerd_restarts(rstack, flask_app, docker_client):
    app = flask_app.name
    assert rstack.answer(app) == (200, flask_app.answer)
    restart_dockerd()
    rstack.wait_answer(app, flask_app.answer, timeout=90)
    deadline = time.monotonic() + 30
    while True:  # the test's own client reconnects
        try:
            docker_client.ping()
            break
        except Exception:
            assert time.monotonic() < deadline, "the engine does not answer after the restart"
            time.sleep(0.5)
    report = rstack.ssh("ps:report", app)
    assert report.exit_code == 0 and "running" in report.stdout, report.output
    # A retire that the restart interrupted leaves its old container (restarted by the engine);
    # ps:restore (run at boot by skiff-restore.service) is the cleanup that removes it.
    restored = rstack.skiff("ps:restore", app)
    assert restored.exit_code == 0 and f"{app}: running" in restored.stdout, restored.output
    push_good(rstack, flask_app, "after dockerd restart")
    assert rstack.settled_containers(app) == [f"{app}.web.1"]
