"""The opt-in event trail (skiff.timeline): line format, off when unset, never raises."""

from __future__ import annotations

import os
import time

from skiff import timeline


def test_mark_appends_one_line_per_event(tmp_path, monkeypatch):
    path = tmp_path / "trail"
    monkeypatch.setenv(timeline.ENV, str(path))
    before_mono, before_wall = time.monotonic(), time.time()
    timeline.mark("lock.held")
    timeline.mark("build start")  # whitespace becomes one token
    after_mono, after_wall = time.monotonic(), time.time()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    name, mono, wall, pid = lines[0].split(" ")
    assert name == "lock.held"
    assert before_mono <= float(mono) <= after_mono
    assert before_wall - 0.001 <= float(wall) <= after_wall + 0.001
    assert int(pid) == os.getpid()
    assert lines[1].split(" ")[0] == "build-start"
    assert [e[0] for e in timeline.read(path)] == ["lock.held", "build-start"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_unset_or_empty_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(timeline.ENV, raising=False)
    timeline.mark("x")
    monkeypatch.setenv(timeline.ENV, "")
    timeline.mark("x")
    assert list(tmp_path.iterdir()) == []


def test_never_raises(tmp_path, monkeypatch):
    monkeypatch.setenv(timeline.ENV, str(tmp_path / "missing-dir" / "trail"))
    timeline.mark("x")  # cannot open: skipped
    monkeypatch.setenv(timeline.ENV, str(tmp_path))  # a directory
    timeline.mark("x")
    monkeypatch.setenv(timeline.ENV, str(tmp_path / "trail"))
    timeline.mark("")  # an empty name still gives a well-formed line
    assert [e[0] for e in timeline.read(tmp_path / "trail")] == ["-"]


def test_read_skips_malformed_lines(tmp_path):
    path = tmp_path / "trail"
    path.write_text("ok 1.5 2.5 7\nbroken line\nbad x 2 3\n\n")
    assert timeline.read(path) == [("ok", 1.5, 2.5, 7)]
    assert timeline.read(tmp_path / "absent") == []


def test_a_deploy_leaves_its_steps_in_order(skiff, tmp_path, monkeypatch):
    from skiff import lifecycle
    from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print('hi')\n")
    h = skiff(("receiver", DirReceiver()), ("builder", StubBuilder()), ("scheduler", StubScheduler()))
    h.create_app("web")
    trail = tmp_path / "trail"
    monkeypatch.setenv(timeline.ENV, str(trail))
    lifecycle.deploy(h.context, "web", dir_source(src))
    names = [e[0] for e in timeline.read(trail)]
    phases = [f"{p}.{edge}" for p in lifecycle.PHASES for edge in ("start", "end")]
    assert names == ["lock.held", *phases, "deploy.done"]
    stamps = [e[1] for e in timeline.read(trail)]
    assert stamps == sorted(stamps)
