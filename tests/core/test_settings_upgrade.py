"""Declared settings read what the hand-written settings commands stored: every report is unchanged.

``fixtures/settings-store.sql`` is a store written by the real ``*:set`` commands of main
before settings were declared (``fixtures/make-settings-store.sh``: git, nginx, builder,
buildpacks, stack, checks and ps settings, app and global, on ``web``; nothing on
``plain``). ``fixtures/settings-reports.json`` holds what that code's reports printed for
it. After ``state:migrate`` the current code must print the same.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

from skiff.state import State

FIXTURES = Path(__file__).parent / "fixtures"
STORE = FIXTURES / "settings-store.sql"
EXPECTED = FIXTURES / "settings-reports.json"
APPS = ("web", "plain")
#: fields that depend on the machine or a running program, not on the store
MACHINE = {"running", "ps", "present", "stacks", "installed"}  # "installed": the plugins, not the store


def _commands() -> list[list[str]]:
    commands: list[list[str]] = [["nginx:report", "--format", "json"]]
    for app in APPS:
        for name in ("git:report", "nginx:report", "checks:report", "apps:report"):
            commands.append([name, app, "--format", "json"])
        commands += [["builder:report", app], ["buildpacks:report", app]]
    return commands


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in MACHINE}
    return value


def reports(run: Callable[..., Any], root: Path) -> dict[str, Any]:
    """Every report of the store under ``root``: parsed JSON (or text lines), root as ``<ROOT>``."""
    result: dict[str, Any] = {}
    for args in _commands():
        done = run(*args, env={"DOCKER_HOST": "unix:///nonexistent"})
        assert done.returncode == 0, (args, done.stderr)
        text = done.stdout.replace(str(root), "<ROOT>")
        result[" ".join(args)] = _normal(json.loads(text)) if "json" in args else text.splitlines()
    return result


def load_store(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / State.filename)
    conn.executescript(STORE.read_text())
    conn.close()


def test_reports_of_a_store_from_before_declared_settings_are_unchanged(skiff_root, run_skiff):
    load_store(skiff_root)
    migrated = run_skiff("state:migrate")
    assert migrated.returncode == 0, migrated.stderr
    expected = _normal(json.loads(EXPECTED.read_text()))
    got = reports(run_skiff, skiff_root)
    assert sorted(got) == sorted(expected)
    for command, report in expected.items():
        if isinstance(report, list):  # a text report: its lines, in order, other than new settings'
            # the plugins, not the store; labels are aligned to the longest, which a new setting may widen
            stored = [_unaligned(line) for line in report if "Installed:" not in line]
            assert [line for line in map(_unaligned, got[command]) if line in stored] == stored, command
        else:
            assert_reads_the_same(got[command], report, command)


def _unaligned(line: str) -> str:
    """A report line with its label's padding taken out: ``Packs:    x`` -> ``Packs: x``."""
    return re.sub(r"^(\s*[^:]+:)\s+", r"\1 ", line.rstrip())


def assert_reads_the_same(got: Any, expected: Any, where: str) -> None:
    """Every field that was reported reads the same; fields added since (new settings) may join."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), where
        for key, value in expected.items():
            assert key in got, f"{where}: {key} is gone"
            assert_reads_the_same(got[key], value, f"{where} {key}")
    else:
        assert got == expected, where


if __name__ == "__main__":  # record: python tests/core/test_settings_upgrade.py ROOT (a store made by the script)
    import os
    import subprocess

    root = Path(sys.argv[1])

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        full = {**os.environ, "SKIFF_ROOT": str(root), **(env or {})}
        return subprocess.run([sys.executable, "-m", "skiff", *args], env=full, capture_output=True, text=True)

    EXPECTED.write_text(json.dumps(reports(run, root), indent=2, sort_keys=True) + "\n")
