"""skiff.builds: every deploy's record and output, retention, concurrent writers, rename/destroy."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import stat
import threading
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
from skiff import builds, lifecycle
from skiff.errors import DeployError, NotFound, SkiffError
from skiff.locks import file_lock, lock_path
from skiff.output import Output
from skiff.state import State
from skiff.testing import DirReceiver, StubScheduler, dir_source


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print('hi')\n")
    return src


class Colourful:
    """A builder whose output carries ANSI colours, and that can fail."""

    def __init__(self) -> None:
        self.fail = False
        self.seen_while_running: str | None = None

    from skiff import hookimpl

    @hookimpl
    def skiff_build(self, deploy):
        deploy.output.info("\x1b[1;32mcompiling\x1b[0m \x1b]0;title\x07done")
        build = builds.latest(deploy.state, deploy.app)
        self.seen_while_running = builds.read_output(deploy.context.root, deploy.app, build.id)
        if self.fail:
            raise SkiffError("pip could not install flask==0.0.0")
        return f"stub:{deploy.app}"


@pytest.fixture
def h(skiff):
    builder = Colourful()
    harness = skiff(
        ("apps", apps_plugin), ("receiver", DirReceiver()), ("builder", builder), ("sched", StubScheduler())
    )
    harness.create_app("web")
    harness.builder = builder
    return harness


def test_a_deploy_is_recorded_with_its_output_while_it_runs_and_after(h, source):
    release = lifecycle.deploy(h.context, "web", dir_source(source, "abc1234def"), build_kind="push")
    [build] = builds.list_builds(h.root, "web")
    assert (build.id, build.app, build.kind, build.status) == (1, "web", "push", "succeeded")
    assert build.release == release.version == 1 and build.revision == "abc1234def"
    assert build.started_at.endswith("Z") and build.finished_at and build.duration is not None
    text = builds.read_output(h.root, "web", 1)
    assert "-----> Building web from abc1234" in text
    assert "compiling done" in text and "\x1b" not in text and "title" not in text
    assert "-----> Done in" in text
    # read while it ran: what was written so far, the build running
    assert "-----> Building web" in h.builder.seen_while_running and "Done in" not in h.builder.seen_while_running
    assert builds.get_build(h.root, "web", 1) == build


def test_a_failed_build_keeps_its_error_line_and_no_release(h, source):
    lifecycle.deploy(h.context, "web", dir_source(source, "aaaaaaa1"))
    h.builder.fail = True
    with pytest.raises(DeployError):
        lifecycle.deploy(h.context, "web", dir_source(source, "bbbbbbb2"))
    newest, first = builds.list_builds(h.root, "web")
    assert (newest.id, newest.status, newest.release, newest.revision) == (2, "failed", None, "bbbbbbb2")
    assert first.status == "succeeded" and first.kind == "deploy"
    assert "!     build failed: pip could not install flask==0.0.0; v1 keeps serving" in builds.read_output(
        h.root, "web", 2
    )


def test_redeploys_are_builds_of_their_kind_without_a_revision(h, source):
    lifecycle.deploy(h.context, "web", dir_source(source, "abc1234def"))
    lifecycle.redeploy(h.context, "web", "Scale web=2", locked_ok=True)
    lifecycle.redeploy(h.context, "web", "Set GREETING", build_kind="config")
    target = lifecycle.rollback_target(h.context, "web", 1)
    lifecycle.redeploy(h.context, "web", "Rollback to v1", base=target, use_base_config=True)
    lifecycle.redeploy(h.context, "web", "Restart", locked_ok=True)
    rows = builds.list_builds(h.root, "web")
    assert [(b.id, b.kind, b.release, b.revision) for b in rows] == [
        (5, "restart", 5, None),
        (4, "rollback", 4, None),
        (3, "config", 3, None),
        (2, "scale", 2, None),
        (1, "deploy", 1, "abc1234def"),
    ]
    assert "Releasing web v4 (Rollback to v1)" in builds.read_output(h.root, "web", 4)


def test_output_files_are_private_to_the_service_account(h, source):
    lifecycle.deploy(h.context, "web", dir_source(source))
    path = builds.output_path(h.root, "web", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert path.stat().st_uid == os.stat(h.root).st_uid


def test_retention_keeps_the_last_n_and_deletes_older_outputs(h, source):
    result = h.invoke("builds:set", "--global", "keep", "3")
    assert result.exit_code == 0, result.stderr
    for _ in range(5):
        lifecycle.deploy(h.context, "web", dir_source(source))
    assert [b.id for b in builds.list_builds(h.root, "web")] == [5, 4, 3]
    files = sorted(p.name for p in builds.app_directory(h.root, "web").iterdir())
    assert files == ["3.log", "4.log", "5.log"]
    with pytest.raises(NotFound):
        builds.read_output(h.root, "web", 1)
    bad = h.invoke("builds:set", "--global", "keep", "0")
    assert bad.exit_code == 1 and "keep must be a number from 1" in bad.stderr
    assert builds.keep(h.state) == 3


def test_the_default_retention_is_50(h):
    assert builds.keep(h.state) == builds.DEFAULT_KEEP == 50


def test_a_killed_deploy_s_build_is_failed_by_the_next_one(h, source):
    builds.start(h.context, "web", "push")  # never finished: its process died
    lifecycle.deploy(h.context, "web", dir_source(source))
    assert [(b.id, b.status) for b in builds.list_builds(h.root, "web")] == [(2, "succeeded"), (1, "failed")]


def test_rename_moves_records_and_files_and_destroy_removes_them(h, source):
    lifecycle.deploy(h.context, "web", dir_source(source))
    result = h.invoke("apps:rename", "web", "site")
    assert result.exit_code == 0, result.stderr
    assert builds.list_builds(h.root, "web") == []
    assert not builds.app_directory(h.root, "web").exists()
    [moved] = builds.list_builds(h.root, "site")
    assert moved.app == "site" and "Building web" in builds.read_output(h.root, "site", 1)
    result = h.invoke("apps:destroy", "site", "--force")
    assert result.exit_code == 0, result.stderr
    assert builds.list_builds(h.root, "site") == []
    assert not builds.app_directory(h.root, "site").exists()
    h.create_app("site")  # a new app of that name starts from build 1 again
    assert builds.start(h.context, "site", "push").build.id == 1


def _start_many(root: str, app: str, count: int, queue, app_lock: bool = False) -> None:
    """``count`` builds of ``app`` in a store of its own; with ``app_lock``, each under the app's
    deploy lock as the lifecycle takes it."""

    class Ctx:
        pass

    ctx = Ctx()
    ctx.root = Path(root)  # type: ignore[attr-defined]
    ctx.state = State(root)  # type: ignore[attr-defined]
    ids = []
    for n in range(count):
        with file_lock(lock_path(Path(root), f"app-{app}"), 60) if app_lock else contextlib.nullcontext():
            record = builds.start(ctx, app, "push")
            record.write(f"line {n} of {os.getpid()}")
            record.finish(True, None, None)
        ids.append(record.build.id)
    ctx.state.close()  # type: ignore[attr-defined]
    queue.put(ids)


def test_concurrent_writers_never_share_an_id_or_lose_a_record(h):
    h.invoke("builds:set", "--global", "keep", "1000")
    mp = multiprocessing.get_context("fork")
    queue = mp.Queue()
    workers = [mp.Process(target=_start_many, args=(str(h.root), "web", 25, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    got = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    ids = sorted(i for chunk in got for i in chunk)
    assert ids == list(range(1, 101))
    rows = builds.list_builds(h.root, "web")
    assert [b.id for b in rows] == list(range(100, 0, -1)) and {b.status for b in rows} == {"succeeded"}
    for b in rows:
        assert builds.read_output(h.root, "web", b.id).startswith("line ")


def test_concurrent_writers_under_retention_keep_exactly_n(h):
    h.invoke("builds:set", "--global", "keep", "5")
    threads = [threading.Thread(target=_start_many, args=(str(h.root), "web", 10, _Sink(), True)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [b.id for b in builds.list_builds(h.root, "web")] == [40, 39, 38, 37, 36]
    assert sorted(p.name for p in builds.app_directory(h.root, "web").iterdir()) == [
        "36.log",
        "37.log",
        "38.log",
        "39.log",
        "40.log",
    ]


class _Sink:
    def put(self, item) -> None:
        pass


def test_bad_names_and_ids_are_refused(h):
    with pytest.raises(NotFound, match="app web has no build 9"):
        builds.get_build(h.root, "web", 9)
    with pytest.raises(NotFound, match="app web has no builds yet"):
        builds.latest(h.state, "web")
    with pytest.raises(SkiffError):
        builds.list_builds(h.root, "../etc")
    with pytest.raises(SkiffError):
        builds.output_path(h.root, "Web/..", 1)


def test_builds_commands_list_and_print(h, source):
    lifecycle.deploy(h.context, "web", dir_source(source, "abc1234def"), build_kind="push")
    h.builder.fail = True
    with pytest.raises(DeployError):
        lifecycle.deploy(h.context, "web", dir_source(source, "fedcba9876"), build_kind="push")
    listed = h.invoke("builds:list", "web")
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].split() == ["ID", "KIND", "STATUS", "STARTED", "DURATION", "RELEASE", "REVISION"]
    assert lines[2].split()[:3] == ["2", "push", "failed"] and lines[2].split()[-2:] == ["-", "fedcba9"]
    assert lines[3].split()[:3] == ["1", "push", "succeeded"] and lines[3].split()[-2:] == ["v1", "abc1234"]
    latest = h.invoke("builds:output", "web")
    assert latest.exit_code == 0 and "!     build failed: pip could not install" in latest.stdout
    assert h.invoke("builds:output", "web", "latest").stdout == latest.stdout
    first = h.invoke("builds:output", "web", "1")
    assert "-----> Done in" in first.stdout and "build failed" not in first.stdout
    followed = h.invoke("builds:output", "web", "1", "--follow")
    assert followed.exit_code == 0 and followed.stdout == first.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("builds:list", "nope"), "app nope does not exist"),
        (("builds:output", "nope"), "app nope does not exist"),
        (("builds:output", "web", "7"), "app web has no build 7"),
        (("builds:output", "web", "abc"), "invalid build id 'abc'"),
        (("builds:output", "web", "-1"), "No such option '-1'"),
        (("builds:output", "web", "1e3"), "invalid build id '1e3'"),
        (("builds:output", "web"), "app web has no builds yet"),
        (("builds:list", "../x"), "invalid app name"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(h, args, message):
    result = h.invoke(*args)
    assert result.exit_code != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_tee_gets_quiet_lines_too():
    seen: list[str] = []
    out = Output(quiet=True)
    with out.tee(seen.append):
        out.step("hidden step")
        out.info("a\nb")
    out.step("after")
    assert seen == ["-----> hidden step", "       a", "       b"]


def test_kind_of_descriptions():
    assert builds.kind_of("Rollback to v3", "redeploy") == "rollback"
    assert builds.kind_of("Rebuild abc1234 (restore)", "deploy") == "rebuild"
    assert builds.kind_of("Deploy abc1234 by alice", "deploy") == "deploy"
    assert builds.kind_of("Link postgres db", "redeploy") == "link"
    assert builds.kind_of("Whatever", "redeploy") == "redeploy"


def test_a_whole_server_backup_keeps_records_and_outputs(h, source, tmp_path):
    from skiff.testing import SkiffHarness, make_plugin_manager

    lifecycle.deploy(h.context, "web", dir_source(source, "abc1234def"), build_kind="push")
    before = builds.read_output(h.root, "web", 1)
    dest = tmp_path / "server.tar.gz"
    result = h.invoke("state:backup", str(dest))
    assert result.exit_code == 0, result.stderr
    assert "core:builds: every app's deploy outputs" in result.stdout
    fresh_root = tmp_path / "fresh"
    fresh_root.mkdir()
    fresh = SkiffHarness(make_plugin_manager(("apps", apps_plugin)), fresh_root)
    restored = fresh.invoke("state:restore", str(dest))
    assert restored.exit_code == 0, restored.stderr
    assert builds.list_builds(fresh_root, "web") == builds.list_builds(h.root, "web")
    assert builds.read_output(fresh_root, "web", 1) == before
    assert stat.S_IMODE(builds.output_path(fresh_root, "web", 1).stat().st_mode) == 0o600
    left_out = h.invoke("state:backup", "--exclude", "core:builds", str(tmp_path / "small.tar.gz"))
    assert left_out.exit_code == 0, left_out.stderr
    import tarfile

    with tarfile.open(tmp_path / "small.tar.gz") as tar:
        assert not [name for name in tar.getnames() if name.startswith("root/builds")]


def test_an_output_file_stops_at_its_cap(h, monkeypatch):
    monkeypatch.setattr(builds, "MAX_OUTPUT", 100)
    record = builds.start(h.context, "web", "push")
    for n in range(20):
        record.write(f"line {n:02d}")  # 8 bytes each
    record.write("!     build failed: the end", last=True)
    record.finish(False, None, None)
    text = builds.read_output(h.root, "web", record.build.id)
    assert text.splitlines() == [f"line {n:02d}" for n in range(12)] + [builds.TRUNCATED, "!     build failed: the end"]
