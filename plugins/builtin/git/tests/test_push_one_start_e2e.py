"""End to end: one Python start per push (skiff_git.receiver), its fallbacks, and git's rejection.

Real sshd, ssh, git and ``skiff``; stub pipeline. ``SKIFF_TIMELINE`` shows which
process ran what: every mark carries the pid of the ``skiff`` process that wrote it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from skiff import timeline
from skiff.state import State
from skiff.testing.sshd import STUB_ENV, commit_files, git_push, head, init_repo

from .conftest import HERE

pytestmark = pytest.mark.e2e


@pytest.fixture
def trail(tmp_path) -> Path:
    return tmp_path / "timeline"


@pytest.fixture
def sshd_skiff_env(trail):
    return {
        **STUB_ENV,
        "SKIFF_PLUGINS": STUB_ENV["SKIFF_PLUGINS"] + ",skiff_git_gate",
        "PYTHONPATH": str(HERE),
        "SKIFF_TIMELINE": str(trail),
    }


def marks(trail: Path) -> dict[str, set[int]]:
    """Mark name -> pids that wrote it; the trail is emptied for the next push."""
    found: dict[str, set[int]] = {}
    for name, _mono, _wall, pid in timeline.read(trail):
        found.setdefault(name, set()).add(pid)
    trail.write_text("")
    return found


def releases(root: Path, app: str) -> list[tuple[int, str, str | None]]:
    state = State(root)
    try:
        return [(r.version, r.status, r.revision) for r in state.releases(app)]
    finally:
        state.close()


def remote_main(sshd, app: str) -> str:
    result = sshd.git("ls-remote", sshd.remote(app), "refs/heads/main")
    assert result.exit_code == 0, result.output
    return result.stdout.split()[0] if result.stdout.strip() else ""


def test_one_python_start_runs_the_deploy_and_a_failed_deploy_is_rejected(sshd, tmp_path, skiff_root, trail):
    repo = init_repo(tmp_path / "app", {"app.py": "print('v1')\n"})
    first = head(repo)
    marks(trail)  # what ran before (ssh-keys:add of the fixture)
    result = git_push(repo, "once", sshd)
    assert result.exit_code == 0, result.output
    assert "remote: -----> Received once" in result.output  # the deploy's lines reach the pusher
    assert "remote: -----> Releasing once v1" in result.output
    seen = marks(trail)
    assert "git-hook.main" not in seen  # the hook started no second skiff
    assert seen["ssh-command.main"] == seen["git.hook.request-read"] == seen["deploy.done"]
    assert len({pid for pids in seen.values() for pid in pids}) == 1  # one Python process did it all
    assert releases(skiff_root, "once") == [(1, "succeeded", first)]

    commit_files(repo, {"FAIL_BUILD": "yes\n"})
    result = git_push(repo, "once", sshd)
    assert result.exit_code != 0
    assert "remote: !     " in result.output and "FAIL_BUILD" in result.output, result.output
    assert "pre-receive hook declined" in result.output
    assert remote_main(sshd, "once") == first  # the branch did not move
    assert releases(skiff_root, "once") == [(1, "succeeded", first)]
    assert not list((skiff_root / "tmp").glob("push-*"))  # the FIFO directories are gone

    # an error before the deploy (a ref the app does not deploy) is refused the same way
    result = git_push(repo, "once", sshd, refspec="HEAD:other")
    assert result.exit_code != 0
    assert "pushes to other are refused" in result.output, result.output
    assert "refs/heads/other" not in sshd.git("ls-remote", sshd.remote("once")).stdout


def test_hook_in_process_off_starts_skiff_in_the_hook(sshd, tmp_path, skiff_root, trail):
    assert sshd.ssh("git:set --global hook-in-process false").exit_code == 0
    repo = init_repo(tmp_path / "app", {"app.py": "print('v1')\n"})
    first = head(repo)
    marks(trail)
    result = git_push(repo, "twice", sshd)
    assert result.exit_code == 0, result.output
    assert "remote: -----> Releasing twice v1" in result.output
    seen = marks(trail)
    assert "git.receive-pack.exec" in seen and "git.hook.request-read" not in seen
    assert seen["git-hook.main"] == seen["deploy.done"] != seen["ssh-command.main"]

    commit_files(repo, {"FAIL_BUILD": "yes\n"})
    result = git_push(repo, "twice", sshd)
    assert result.exit_code != 0 and "pre-receive hook declined" in result.output, result.output
    assert remote_main(sshd, "twice") == first
    assert releases(skiff_root, "twice") == [(1, "succeeded", first)]


def test_a_push_from_a_root_shell_runs_skiff_in_the_hook(sshd, tmp_path, skiff_root, trail, sshd_skiff_env):
    """No ssh-command: the hook finds no SKIFF_GIT_HOOK_DIR and starts ``skiff git-hook``."""
    repo = init_repo(tmp_path / "app", {"app.py": "print('v1')\n"})
    assert git_push(repo, "local", sshd).exit_code == 0
    bare = skiff_root / "repos" / "local.git"
    env = {**os.environ, **sshd_skiff_env, "SKIFF_ROOT": str(skiff_root)}
    env.pop("SKIFF_GIT_HOOK_DIR", None)

    second = commit_files(repo, {"app.py": "print('v2')\n"})
    marks(trail)
    pushed = subprocess.run(
        ["git", "push", str(bare), "HEAD:main"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Releasing local v2" in pushed.stderr
    assert "git-hook.main" in marks(trail)
    assert releases(skiff_root, "local")[-1] == (2, "succeeded", second)

    commit_files(repo, {"FAIL_BUILD": "yes\n"})
    pushed = subprocess.run(
        ["git", "push", str(bare), "HEAD:main"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert pushed.returncode != 0 and "pre-receive hook declined" in pushed.stderr, pushed.stderr
    assert remote_main(sshd, "local") == second


def test_a_push_git_refuses_before_the_hook_ends_without_a_deploy(sshd, tmp_path, skiff_root, trail):
    """A pack over max-push-size: git runs no hook; ssh-command sees its child exit and ends with it."""
    assert sshd.ssh("apps:create big").exit_code == 0
    assert sshd.ssh("git:set --global max-push-size 4K").exit_code == 0
    repo = init_repo(tmp_path / "app", {"blob.bin": os.urandom(64 * 1024)})
    marks(trail)
    result = git_push(repo, "big", sshd)
    assert result.exit_code != 0
    assert "pack exceeds maximum allowed size" in result.output, result.output
    seen = marks(trail)
    assert "git.receive-pack.start" in seen and "git.hook.request-read" not in seen and "lock.held" not in seen
    assert remote_main(sshd, "big") == ""
    assert releases(skiff_root, "big") == []
    assert not list((skiff_root / "tmp").glob("push-*"))
