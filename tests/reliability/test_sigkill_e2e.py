"""SIGKILL of the real server-side skiff in the middle of a real docker build and of a deploy.

A ``git push`` runs ``skiff git-hook APP`` (the pre-receive hook) on the server. The
test waits until the build container (label ``skiff.build-for``) or the new release's
container (``APP.web.1.vN``) runs, then kills that process with SIGKILL. The push is
rejected, the old release keeps serving through nginx, and the next push works (no stale
lock), after which no leftover containers remain and no release is left pending.
The lifecycle-level version of this (stub pipeline) is test_state_resilience.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from skiff import builds
from skiff.testing.sshd import commit_files

from .conftest import flask_files, push_good

pytestmark = pytest.mark.e2e


def hook_pids(app: str) -> list[int]:
    """Processes running ``skiff git-hook APP``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"git-hook" in argv and app.encode() in argv:
            pids.append(int(entry.name))
    return pids


def push_and_kill_when(rstack, flask_app, ready: Callable[[], bool], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        ["git", "push", rstack.sshd.remote(flask_app.name), "HEAD:main"],
        cwd=flask_app.repo,
        env=rstack.sshd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed: int | None = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                pids = hook_pids(flask_app.name)
                assert len(pids) == 1, pids
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
                break
            time.sleep(0.02)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, f"the push never reached {what}:\n{output}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, output)


def running(rstack, app: str, label: str | None = None, name_suffix: str | None = None) -> bool:
    filters = {"label": label or f"skiff.app={app}", "status": "running"}
    for c in rstack.docker.containers.list(filters=filters, sparse=True):
        name = c.attrs.get("Names", [""])[0].lstrip("/")
        if name_suffix is None or name.endswith(name_suffix):
            return True
    return False


def check_recovery(rstack, flask_app, before_current: int, killed: subprocess.CompletedProcess, tag: str) -> None:
    app = flask_app.name
    assert killed.returncode != 0, killed.stdout
    assert rstack.answer(app) == (200, flask_app.answer)  # the old release still serves
    with rstack.state() as state:
        assert state.current_release(app).version == before_current

    result = push_good(rstack, flask_app, f"after kill {tag}")  # no stale lock blocks it
    assert "Waiting for another" not in result.output
    cleanup = rstack.ssh("ps:report", app)
    assert cleanup.exit_code == 0, cleanup.output
    assert rstack.settled_containers(app) == [f"{app}.web.1"]  # no build, stray or old containers
    with rstack.state() as state:
        statuses = {r.status for r in state.releases(app)}
        assert "pending" not in statuses, statuses
        assert state.current_release(app).version > before_current
        # the killed push's build was failed by the next one (builds:list shows no stale "running")
        recovered, killed_build = builds.builds(state, app)[:2]
    assert (recovered.kind, recovered.status, killed_build.kind, killed_build.status) == (
        "push",
        "succeeded",
        "push",
        "failed",
    )


def current_version(rstack, app: str) -> int:
    with rstack.state() as state:
        return state.current_release(app).version


def test_sigkill_during_a_real_docker_build(rstack, flask_app):
    app = flask_app.name
    before = current_version(rstack, app)
    files = flask_files("killed mid-build")
    # a changed requirements file makes the build install the dependencies again (a few seconds)
    files["requirements.txt"] += f"# rebuild {time.time()}\n"
    commit_files(flask_app.repo, files, "kill during build")
    killed = push_and_kill_when(
        rstack, flask_app, lambda: running(rstack, app, label=f"skiff.build-for={app}"), "the build container"
    )
    check_recovery(rstack, flask_app, before, killed, "build")


def test_sigkill_during_a_real_deploy(rstack, flask_app):
    app = flask_app.name
    before = current_version(rstack, app)
    with rstack.state() as state:
        new = state.releases(app)[-1].version + 1  # failed releases count too
    files = flask_files("killed mid-deploy")
    # the new web container takes a few seconds to answer, so the deploy is caught while checking it
    files["Procfile"] = "web: sleep 5 && exec gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app\n"
    commit_files(flask_app.repo, files, "kill during deploy")
    killed = push_and_kill_when(
        rstack, flask_app, lambda: running(rstack, app, name_suffix=f".v{new}"), "the new release's container"
    )
    with rstack.state() as state:  # killed mid-deploy: the release is left pending until the next deploy
        assert state.get_release(app, new).status == "pending"
        left = builds.latest(state, app)  # and its build running, its output kept up to the kill
    assert left.status == "running"
    assert f"-----> Releasing {app} v{new} (" in rstack.ssh("builds:output", app, str(left.id)).stdout
    check_recovery(rstack, flask_app, before, killed, "deploy")
