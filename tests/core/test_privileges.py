"""Which user a command runs as: root-only commands, the drop to SKIFF_USER, pip's real error."""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from skiff.core_commands import pip_error
from skiff.privileges import is_root_command


def _command(harness, name):
    return harness.cli.commands[name]


def test_root_only_commands_are_marked_and_refused_over_ssh(skiff):
    harness = skiff(entry_points=True)
    for name in ("stack:build", "plugin:install", "plugin:uninstall"):
        assert is_root_command(_command(harness, name)), name
    assert not is_root_command(_command(harness, "apps:list"))


@pytest.fixture
def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' account")


def _skiff_as_root(args, root, **env):
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SKIFF_ROOT": str(root), **env},
    )


@pytest.fixture
def open_root():
    """A state root the account can reach (pytest's temp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="skf-priv-", dir="/tmp"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_root_drops_to_skiff_user_for_ordinary_commands(open_root, nobody):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = _skiff_as_root(["apps:create", "dropped"], open_root, SKIFF_USER="nobody")
    assert result.returncode == 0, result.stderr
    assert (open_root / "skiff.db").stat().st_uid == nobody.pw_uid
    # root reading that store (plugin list, root-only commands) leaves nothing root-owned behind
    listed = _skiff_as_root(["apps:list"], open_root, SKIFF_USER="nobody")
    assert listed.returncode == 0 and "dropped" in listed.stdout
    assert all(p.stat().st_uid == nobody.pw_uid for p in open_root.glob("skiff.db*"))
    # without SKIFF_USER root stays root (the development venv, make stack)
    other = open_root / "other"
    result = _skiff_as_root(["apps:create", "kept"], other)
    assert result.returncode == 0 and (other / "skiff.db").stat().st_uid == 0


def test_a_root_only_command_refused_to_the_service_account(open_root, nobody):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-m", "skiff", "stack:build"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SKIFF_ROOT": str(open_root)},
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "!     stack:build needs root: run it as root on the server (e.g. sudo skiff stack:build)"
    )


def test_an_unknown_service_account_is_one_line(skiff_root):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = _skiff_as_root(["apps:list"], skiff_root, SKIFF_USER="no-such-account-x")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "!     the service account 'no-such-account-x' (SKIFF_USER) does not exist; run make install"
    ]


def _failed(stderr):
    return subprocess.CompletedProcess(["pip"], 1, "", stderr)


def test_pip_error_is_the_build_backends_line_not_pips_note():
    stderr = """\
  error: subprocess-exited-with-error

  × python setup.py egg_info did not run successfully.
  │ exit code: 1
  ╰─> [1 lines of output]
      this package cannot be built: marker
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

× Encountered error while generating package metadata.
╰─> See above for output.

note: This is an issue with the package mentioned above, not pip.
hint: See above for details.
"""
    assert pip_error(_failed(stderr)) == "this package cannot be built: marker"


def test_pip_error_is_pips_last_error_line():
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement nope (from versions: none)\n"
        "ERROR: No matching distribution found for nope\n"
    )
    assert pip_error(_failed(stderr)) == "No matching distribution found for nope"
    assert pip_error(_failed("")) == "pip exited with status 1"


def test_a_broken_package_fails_with_pips_real_message(run_skiff, tmp_path):
    package = tmp_path / "broken"
    package.mkdir()
    (package / "setup.py").write_text("raise SystemExit('cannot build: skiff-test-marker')\n")
    # --dry-run style: a package that cannot even produce metadata is never installed
    result = run_skiff("plugin:install", str(package))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("!     pip could not install") and "skiff-test-marker" in last, result.stderr
