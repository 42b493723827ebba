"""End to end: app.json cron jobs on a real engine, pushed over sshd through a private nginx,
run by a real ``skiff cron:runner`` process that this test starts (as ``make install`` does).

One app (tests/apps/null plus an app.json with three jobs) shows, in one pass of about four
minutes: a ``* * * * *`` job runs within 70 s of the push and its output is in ``logs``, tagged;
its command runs like a Procfile line inside the app's container (a pipe, ``&&``, ``$VARS`` of
the app's config and ``DYNO``); a slow job is not started again while it runs; ``cron:suspend``
stops the runs; a restarted runner resumes the jobs from the store; a bad schedule, or a
command holding a newline or a NUL, is refused at push with one line and changes nothing (the
release, the jobs); a redeploy updates the jobs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from skiff.executable import skiff_executable
from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, git_push, init_repo

pytestmark = pytest.mark.e2e

NULL = Path(__file__).resolve().parents[4] / "tests" / "apps" / "null"
GLOBAL = "skiff.test"
TICK = 'echo "tick $GREETING" | tr a-z A-Z && echo "dyno=$DYNO" && test -f /app/index.html && echo in-app'
SLOW = "echo slow-start; sleep 75; echo slow-end"
NEVER = "echo never"  # an hourly job: it never runs in this test
JOBS = [
    {"command": TICK, "schedule": "* * * * *"},
    {"command": SLOW, "schedule": "*/1 * * * *"},
    {"command": NEVER, "schedule": "@hourly"},
]


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


class Runner:
    """A real ``skiff cron:runner`` process on the test's store, logging to one file."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def read(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        starts = self.read().count("runner started")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [skiff_executable(), "cron:runner"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 15
        while self.read().count("runner started") == starts:
            assert self.process.poll() is None and time.monotonic() < deadline, self.read()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def cron_runner(skiff_root, private_nginx, tmp_path):
    """The runner ``make install`` would start, started by the test."""
    runner = Runner({**os.environ, **private_nginx.env, "SKIFF_ROOT": str(skiff_root)}, tmp_path / "runner.log")
    runner.start()
    yield runner
    runner.stop()


def app_json(jobs: list[dict[str, str]]) -> str:
    return json.dumps({"env": {"GREETING": {"value": "hello"}}, "cron": jobs}, indent=2)


def wait_for(predicate, timeout: float, step: float = 1.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def job_rows(sshd, app: str) -> dict[str, dict]:
    listed = sshd.ssh(["cron:list", app, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    return {row["command"]: row for row in json.loads(listed.stdout)}


def test_cron_jobs_run_on_schedule_in_the_apps_container(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, cron_runner, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("cron"))
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in NULL.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / app, {**files, "app.json": app_json(JOBS)})
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    pushed_at = time.monotonic()
    assert "cron: 3 jobs" in pushed.output
    rows = job_rows(sshd, app)
    tick, slow = rows[TICK]["id"], rows[SLOW]["id"]
    assert [rows[c]["schedule"] for c in (TICK, SLOW, NEVER)] == ["* * * * *", "*/1 * * * *", "@hourly"]

    # within 70 s of the push, the every-minute job ran and its output is in the app's logs
    def tick_logged() -> str | None:
        out = sshd.ssh(["logs", app, "-p", f"scheduler.{tick}"]).stdout
        return out if "TICK HELLO" in out else None

    logged = wait_for(tick_logged, 70, what="the job's output in logs")
    assert time.monotonic() - pushed_at <= 70
    assert f"{app}[scheduler.{tick}]: TICK HELLO" in logged  # tagged with the job
    assert re.search(rf"{app}\[scheduler\.{tick}\]: dyno=scheduler\.[0-9]+", logged)
    assert "in-app" in logged  # the command ran inside the app's container (its /app)
    everything = sshd.ssh(["logs", app]).stdout
    assert "TICK HELLO" in everything and f"{app}[web.1]" in everything  # with the web process's lines
    assert f"starting cron:{app}:{tick}: skiff cron:run {app} {tick} --scheduled" in cron_runner.read()
    job_container = docker_client.containers.get(f"{app}.scheduler.{tick}")
    log_config = job_container.attrs["HostConfig"]["LogConfig"]
    assert log_config == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}  # bounded by default

    # the slow job: one container; at the next minute it is still running, so it is not started again
    started = wait_for(lambda: (job_rows(sshd, app)[SLOW]["last_run"] or {}).get("started"), 10, what="the slow run")
    first_minute = datetime.fromisoformat(started).replace(second=0)
    wait_for(
        lambda: f"cron:{app}:{slow} is still running" in cron_runner.read(), 75, what="the runner skipping the slow job"
    )
    slow_containers = docker_client.containers.list(all=True, filters={"name": f"{app}.scheduler.{slow}"})
    assert len(slow_containers) == 1 and slow_containers[0].status == "running"
    assert cron_runner.read().count(f"starting cron:{app}:{slow}:") == 1
    manual = sshd.ssh(["cron:run", app, slow])
    assert manual.exit_code != 0 and "still running; not starting it twice" in manual.stderr
    assert manual.stderr.count("\n") == 1
    rows = job_rows(sshd, app)
    assert rows[SLOW]["last_run"]["finished"] is None  # the first run, still going
    assert datetime.fromisoformat(rows[SLOW]["last_run"]["started"]).replace(second=0) == first_minute
    # the tick job ran again in this second minute
    wait_for(lambda: cron_runner.read().count(f"starting cron:{app}:{tick}:") >= 2, 10, what="the second tick")

    # a manual run: a pipe, && and $VARS, inside the app's container, synchronously
    ran = sshd.ssh(["cron:run", app, tick])
    assert ran.exit_code == 0, ran.output
    assert "TICK HELLO" in ran.stdout and "in-app" in ran.stdout

    # --detach: started in the background, its output in logs
    never = job_rows(sshd, app)[NEVER]["id"]
    detached = sshd.ssh(["cron:run", app, never, "--detach"])
    assert detached.exit_code == 0 and "in the background" in detached.stdout, detached.output
    wait_for(
        lambda: f"{app}[scheduler.{never}]: never" in sshd.ssh(["logs", app, "-p", f"scheduler.{never}"]).stdout,
        30,
        what="the detached run's output",
    )

    # suspended: the next minute starts nothing of this app
    assert sshd.ssh(["cron:suspend", app]).exit_code == 0
    suspended_log = len(cron_runner.read())
    now = time.time()
    time.sleep(60 - now % 60 + 5)  # past the next minute
    after = cron_runner.read()[suspended_log:]
    assert f"starting cron:{app}:" not in after
    report = json.loads(sshd.ssh(["cron:report", app, "--format", "json"]).stdout)
    assert report["cron suspended"] is True and report["cron task count"] == 3
    assert sshd.ssh(["cron:resume", app]).exit_code == 0

    # a new runner (a reboot, a reinstall) resumes the stored jobs: nothing was written elsewhere
    cron_runner.stop()
    assert "runner stopped" in cron_runner.read()
    restarted_at = len(cron_runner.read())
    cron_runner.start()
    wait_for(
        lambda: f"starting cron:{app}:{tick}:" in cron_runner.read()[restarted_at:],
        65,
        what="the restarted runner running the job",
    )

    # refused at push, one line each, and nothing changes: no release, the same jobs
    releases_before = sshd.ssh(["releases", app]).stdout
    for bad, says in [
        ({"command": "echo ok", "schedule": "61 * * * *"}, "cron[0]: invalid cron schedule '61 * * * *'"),
        ({"command": "echo ok", "schedule": "* * * *"}, "give five fields"),
        ({"command": "echo ok\ntouch /tmp/pwned", "schedule": "* * * * *"}, "holds a line break"),
        ({"command": "echo ok\u0000id", "schedule": "* * * * *"}, "holds a NUL byte"),
    ]:
        commit_files(repo, {"app.json": app_json([bad])}, "a bad job")
        rejected = git_push(repo, app, sshd)
        assert rejected.exit_code != 0, rejected.output
        refusals = [line for line in rejected.output.splitlines() if line.removeprefix("remote: ").startswith("!")]
        assert len(refusals) == 1 and says in refusals[0], rejected.output
    assert sshd.ssh(["releases", app]).stdout == releases_before
    assert set(job_rows(sshd, app)) == {TICK, SLOW, NEVER}

    # a redeploy updates the jobs
    commit_files(repo, {"app.json": app_json([{"command": "echo only-me", "schedule": "@daily"}])}, "new jobs")
    assert git_push(repo, app, sshd).exit_code == 0
    assert set(job_rows(sshd, app)) == {"echo only-me"}
    assert not os.path.exists("/tmp/pwned")
