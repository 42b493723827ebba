"""End to end: pushes by an unprivileged service account, whose starts use the command cache.

The test sshd logs in as root (see skiff.testing.sshd), so the forced command becomes uid
``nobody`` through ``setpriv``, as an installed server's sshd logs in as ``skiff``: both
``skiff ssh-command`` and the pre-receive hook's ``skiff git-hook`` then start from
``SKIFF_ROOT/cache/commands.json`` (docs/plugins.md), importing plugins as their hooks are
reached. Real sshd, ssh and git; the stub builder and scheduler.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from skiff.commandcache import CACHE
from skiff.state import State
from skiff.testing.sshd import STUB_ENV, TEST_KEY_NAME, commit_files, git_push, head, init_repo
from skiff.testing.stubs import read_calls

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
NOBODY = 65534
PHASES = ["skiff_receive", "skiff_pre_build", "skiff_build", "skiff_release", "skiff_deploy", "skiff_post_deploy"]


@pytest.fixture
def service_root():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to run the forced command as nobody) and setpriv")
    root = Path(tempfile.mkdtemp(prefix="skiff-account-"))
    os.chmod(root, 0o755)
    os.chown(root, NOBODY, NOBODY)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_pushes_of_the_service_account_deploy_from_the_cache_and_a_failed_build_is_rejected(
    service_root, sshd_factory, sshd_client_key, tmp_path
):
    authorized = service_root / "authorized_keys"
    env = {
        **STUB_ENV,
        "SKIFF_PLUGINS": STUB_ENV["SKIFF_PLUGINS"] + ",skiff_git_gate",
        "PYTHONPATH": str(HERE),
        "SKIFF_ROOT": str(service_root),
        "SKIFF_AUTHORIZED_KEYS": str(authorized),
        "HOME": str(service_root),
    }
    skiff = str(Path(sys.executable).parent / "skiff")
    public = service_root / "client.pub"
    shutil.copy(sshd_client_key.with_suffix(".pub"), public)
    added = subprocess.run(
        [skiff, "ssh-keys:add", TEST_KEY_NAME, str(public), "--role", "admin"],
        env={**os.environ, **env},
        cwd=service_root,
        user=NOBODY,
        group=NOBODY,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    account = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
    lines = re.sub(r"(\S*/skiff ssh-command)", lambda m: account + m[1], authorized.read_text())
    assert account in lines
    authorized.write_text(lines)
    sshd = sshd_factory(authorized, env, tmp_path / "sshd")

    repo = init_repo(tmp_path / "app", {"app.py": "print('v1')\n"})
    first = head(repo)
    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code == 0, result.output
    assert "remote: -----> Releasing catmeow v1" in result.output
    assert [c["hook"] for c in read_calls(service_root) if c["revision"] == first] == PHASES
    cache = service_root / CACHE
    assert cache.exists() and cache.stat().st_uid == NOBODY
    written = cache.stat().st_mtime_ns

    second = commit_files(repo, {"app.py": "print('v2')\n"})
    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code == 0, result.output
    assert [c["hook"] for c in read_calls(service_root) if c["revision"] == second] == PHASES

    commit_files(repo, {"FAIL_BUILD": "yes\n"})
    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code != 0
    assert "build failed" in result.output and "pre-receive hook declined" in result.output
    assert [c["hook"] for c in read_calls(service_root) if c["revision"] == head(repo)][-1] == "skiff_deploy_failed"
    refs = sshd.git("ls-remote", sshd.remote("catmeow"))
    assert refs.exit_code == 0 and f"{second}\trefs/heads/main" in refs.stdout
    state = State(service_root, migrate=False)
    try:
        assert [(r.version, r.status) for r in state.releases("catmeow")] == [(1, "succeeded"), (2, "succeeded")]
    finally:
        state.close()
    # the pushes after the first (ssh-command and the hook, six starts) all started from the cache
    assert cache.stat().st_mtime_ns == written
