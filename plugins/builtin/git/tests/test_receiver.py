"""The FIFO protocol between ``skiff ssh-command`` and the repository's sh pre-receive hook.

The real hook script runs under the real ``sh``; the parent side is
:class:`skiff_git.receiver.HookChannel`. No git, no sshd (the e2e tests push for real).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from skiff.errors import SkiffError
from skiff_git import receiver
from skiff_git import repo as repos

LINE = f"{'1' * 40} {'2' * 40} refs/heads/main"


def hook_file(tmp_path: Path) -> Path:
    path = tmp_path / "pre-receive"
    path.write_text("#!/bin/sh\n" + repos.HOOK_IN_PROCESS + "echo 'fell through'\nexit 99\n")
    path.chmod(0o700)
    return path


def git_like_child(hook: Path, channel: receiver.HookChannel, quarantine: str = "") -> subprocess.Popen[bytes]:
    """What git receive-pack does with a hook: ref lines on its stdin, its stdout kept, its status reported."""
    script = f'printf "%s\\n" "{LINE}" | {hook}; echo "hook exit $?"'
    env = {**os.environ, receiver.HOOK_DIR_ENV: str(channel.dir), "GIT_QUARANTINE_PATH": quarantine}
    return subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE, close_fds=True)


def test_the_hook_sends_its_lines_prints_the_output_and_exits_with_the_status(tmp_path):
    channel = receiver.HookChannel(tmp_path / "tmp")
    try:
        assert (channel.dir.stat().st_mode & 0o777) == 0o700
        assert all((channel.dir / n).stat().st_mode & 0o777 == 0o600 for n in ("request", "output"))
        child = git_like_child(hook_file(tmp_path), channel, quarantine="/q/tmp_objdir-incoming-abc")
        data = channel.wait_request(child)
        assert data is not None
        request = receiver.parse_request(data)
        assert request == receiver.Request("/q/tmp_objdir-incoming-abc", [LINE + "\n"])
        out = channel.open_output()
        os.write(out, b"-----> deploying\n")
        channel.finish(3)
        output, _ = child.communicate(timeout=10)
        assert output.decode().splitlines() == ["-----> deploying", "hook exit 3"]
    finally:
        channel.close()
    assert not channel.dir.exists()


def test_a_child_that_runs_no_hook_ends_the_wait(tmp_path):
    channel = receiver.HookChannel(tmp_path / "tmp")
    try:
        child = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 4"])
        started = time.monotonic()
        assert channel.wait_request(child) is None
        assert child.wait() == 4 and time.monotonic() - started < 5
    finally:
        channel.close()


@pytest.mark.parametrize("gone", ["before the hook", "after the request"])
def test_the_hook_rejects_and_never_hangs_when_its_parent_is_gone(tmp_path, gone):
    """SIGKILL of ssh-command at any point: the hook exits non-zero at once (git rejects the push)."""
    channel = receiver.HookChannel(tmp_path / "tmp")
    hook = hook_file(tmp_path)
    if gone == "before the hook":
        channel.close()
        channel.dir.mkdir(mode=0o700)
        os.mkfifo(channel.dir / "request", 0o600)
        os.mkfifo(channel.dir / "output", 0o600)
        child = git_like_child(hook, channel)
    else:
        child = git_like_child(hook, channel)
        assert channel.wait_request(child) is not None
        channel.open_output()
        channel.close()  # as a killed process's descriptors close: no status written
    output, _ = child.communicate(timeout=10)
    last = output.decode().splitlines()[-1]
    assert last.startswith("hook exit ") and last != "hook exit 0", output


def test_without_the_variable_the_hook_falls_through(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != receiver.HOOK_DIR_ENV}
    result = subprocess.run([str(hook_file(tmp_path))], input=b"", env=env, capture_output=True)
    assert result.returncode == 99 and result.stdout == b"fell through\n"


def test_the_script_is_static_and_ends_with_the_fallback(tmp_path):
    from skiff.context import Context
    from skiff.plugins import build_plugin_manager

    context = Context(build_plugin_manager(disabled=set()), root=tmp_path)
    script = repos.hook_script(context, "myapp")
    assert repos.HOOK_IN_PROCESS in script
    assert "myapp" not in repos.HOOK_IN_PROCESS and str(tmp_path) not in repos.HOOK_IN_PROCESS
    assert script.rstrip().endswith("git-hook myapp")
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"/q\n" + LINE.encode() + b"\n", b"/q\n" + LINE.encode() + b"\nend", b"x" * (16 * 1024 * 1024 + 1)],
)
def test_cut_off_or_oversized_requests_are_refused(data):
    with pytest.raises(SkiffError, match="the push is refused"):
        receiver.parse_request(data)


def test_an_empty_push_request_has_no_lines():
    assert receiver.parse_request(b"\nend\n") == receiver.Request("", [])


def test_the_quarantine_must_be_the_repositorys_own(tmp_path):
    repo = tmp_path / "app.git"
    (repo / "objects" / "tmp_objdir-incoming-Ab12Cd").mkdir(parents=True)
    (tmp_path / "elsewhere" / "tmp_objdir-incoming-Ab12Cd").mkdir(parents=True)
    (repo / "objects" / "tmp_objdir-incoming-link").symlink_to(tmp_path / "elsewhere" / "tmp_objdir-incoming-Ab12Cd")
    objects = os.path.realpath(repo / "objects")
    good = f"{repo}/./objects/tmp_objdir-incoming-Ab12Cd"  # as git writes it
    env = receiver.quarantine_env(repo, good)
    assert env == {
        "GIT_QUARANTINE_PATH": f"{objects}/tmp_objdir-incoming-Ab12Cd",
        "GIT_OBJECT_DIRECTORY": f"{objects}/tmp_objdir-incoming-Ab12Cd",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": objects,
    }
    assert receiver.quarantine_env(repo, "") == {}
    for bad in (
        str(tmp_path / "elsewhere" / "tmp_objdir-incoming-Ab12Cd"),
        f"{repo}/objects/tmp_objdir-incoming-link",
        f"{repo}/objects/pack",
        f"{repo}/objects/tmp_objdir-incoming-missing",
        "objects/tmp_objdir-incoming-Ab12Cd",
        f"{repo}/objects/tmp_objdir-incoming-Ab12Cd/../../..",
    ):
        with pytest.raises(SkiffError, match="outside the repository"):
            receiver.quarantine_env(repo, bad)
