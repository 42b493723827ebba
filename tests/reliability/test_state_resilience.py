"""The state store survives killed deploys and can be backed up while deploys run."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from skiff import builds, lifecycle
from skiff.state import State
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

DRIVER = textwrap.dedent("""
    import sys, time
    from skiff import hookimpl, lifecycle
    from skiff.context import Context
    from skiff.plugins import build_plugin_manager
    from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

    class Slow:
        @hookimpl(tryfirst=True)
        def skiff_%(phase)s(self, deploy):
            print("in-phase", flush=True)
            time.sleep(60)

    pm = build_plugin_manager(load_entry_points=False, plugins=[
        ("slow", Slow()), ("src", DirReceiver()), ("b", StubBuilder()), ("s", StubScheduler())])
    context = Context(pm)
    lifecycle.deploy(context, "web", dir_source(sys.argv[1]))
""")


@pytest.mark.parametrize("phase", ["build", "deploy"])
def test_sigkill_mid_phase_leaves_no_stale_lock(skiff, skiff_root, tmp_path, phase):
    src = tmp_path / "src"
    src.mkdir()
    h = skiff(("src", DirReceiver()), ("b", StubBuilder()), ("s", StubScheduler()))
    h.create_app("web")
    lifecycle.deploy(h.context, "web", dir_source(src))
    h.context.close()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER % {"phase": phase})
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "SKIFF_ROOT": str(skiff_root)},
    )
    for line in proc.stdout:  # progress lines come first
        if line.strip() == "in-phase":
            break
    else:
        pytest.fail("the driver never reached the phase")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    os.environ["SKIFF_LOCK_TIMEOUT"] = "5"
    try:
        release = lifecycle.deploy(h.context, "web", dir_source(src))
    finally:
        del os.environ["SKIFF_LOCK_TIMEOUT"]
    statuses = [(r.version, r.status) for r in h.state.releases("web")]
    expected_killed = [(2, "failed")] if phase == "deploy" else []  # a build never recorded a release
    assert statuses == [(1, "succeeded"), *expected_killed, (release.version, "succeeded")]
    assert h.state.current_release("web").version == release.version
    # the killed deploy's build: failed by the next deploy, its output kept up to where it died
    kept = [(b.id, b.status, b.release) for b in builds.list_builds(skiff_root, "web")]
    assert kept == [(3, "succeeded", release.version), (2, "failed", None), (1, "succeeded", 1)]
    killed_output = builds.read_output(skiff_root, "web", 2)
    assert "-----> Building web" in killed_output and "Done in" not in killed_output


def test_online_backup_while_deploys_run(skiff, skiff_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    h = skiff(("src", DirReceiver()), ("b", StubBuilder()), ("s", StubScheduler()))
    for app in ("one", "two"):
        h.create_app(app)
        h.state.set_config(app, {"KEY": f"value of {app}\nwith 'quotes'"})
    h.context.close()
    stop = threading.Event()
    errors = []

    def deploy_loop(app):
        other = skiff(("src", DirReceiver()), ("b", StubBuilder()), ("s", StubScheduler()))
        try:
            while not stop.is_set():
                lifecycle.deploy(other.context, app, dir_source(src))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deploy_loop, args=(app,)) for app in ("one", "two")]
    for t in threads:
        t.start()
    time.sleep(0.3)
    backups = []
    for i in range(3):
        dest = tmp_path / f"backup-{i}.db"
        result = h.invoke("state:backup", "--state-only", str(dest))
        assert result.exit_code == 0, result.stderr
        backups.append(dest)
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    for dest in backups:
        assert oct(dest.stat().st_mode & 0o777) == "0o600"
        restored_root = tmp_path / f"restored-{dest.stem}"
        restored_root.mkdir()
        (restored_root / "skiff.db").write_bytes(dest.read_bytes())
        restored = State(restored_root)
        assert restored.list_apps() == ["one", "two"]
        assert restored.get_config("one") == {"KEY": "value of one\nwith 'quotes'"}
        for app in ("one", "two"):
            versions = [r.version for r in restored.releases(app)]
            assert versions == list(range(1, len(versions) + 1))
            assert all(r.status in ("succeeded", "pending") for r in restored.releases(app))
        assert restored.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        restored.close()
