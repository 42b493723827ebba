"""Unit tests of the cron plugin: schedules, jobs from the release, the runner's ticks, the commands.

No engine: one-off containers are answered by a recording plugin (``skiff_run_oneoff``)."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_cron.plugin as cron_plugin
from skiff import hookimpl, validate
from skiff.contracts import OneOff, PeriodicTask
from skiff.errors import ValidationError
from skiff_cron import jobs, runner

JOBS = [
    {"command": "echo tick | tr a-z A-Z && echo $DYNO", "schedule": "* * * * *"},
    {"command": "python3 manage.py clearsessions", "schedule": "@daily"},
    {"command": "echo tick | tr a-z A-Z && echo $DYNO", "schedule": "* * * * *"},  # a repeat: one job
]


class OneOffs:
    """Answers ``skiff_run_oneoff`` like a scheduler: records the one-off, writes a line, returns 0
    (or waits on ``gate`` first, to hold a run open)."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[OneOff] = []
        self.gate = gate
        self.started = threading.Event()

    @hookimpl
    def skiff_run_oneoff(self, context, oneoff, write):
        self.calls.append(oneoff)
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        write(f"ran {oneoff.command[-1]}")
        return 3 if "fail" in oneoff.command[-1] else 0


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("* * * * *", "* * * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
        ("0 9-17/2 * JAN-mar mon-fri", "0 9-17/2 * jan-mar mon-fri"),
        ("5,10,15 0 1 1 7", "5,10,15 0 1 1 7"),
    ],
)
def test_valid_schedules(schedule, expected):
    assert validate.cron_schedule(schedule) == expected


@pytest.mark.parametrize(
    "schedule, says",
    [
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day of month: 0 is out of range 1-31"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("* * * foo *", "month: 'foo'"),
        ("@reboot", "use one of @yearly"),
        ("$(reboot) * * * *", "five fields"),
        ("* * * * *\n* * * * * rm -rf /", "five fields"),
        ("* * * * *\n", "five fields"),
        ("L * * * *", "is not *, N, A-B"),
    ],
)
def test_invalid_schedules_say_why_in_one_line(schedule, says):
    with pytest.raises(ValidationError, match=None) as info:
        validate.cron_schedule(schedule)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_schedule_that_never_fires_is_refused():
    for schedule in ("0 0 31 2 *", "0 0 30,31 2 *", "0 0 31 4,6,9,11 *"):
        with pytest.raises(ValidationError, match="no month of it has day 3"):
            jobs.check_schedule(schedule)
    assert jobs.check_schedule("0 0 29 2 *") == "0 0 29 2 *"  # leap years
    assert jobs.check_schedule("0 0 31 2 mon") == "0 0 31 2 mon"  # day or weekday, as cron reads both
    assert jobs.check_schedule("@monthly") == "0 0 1 * *"


@pytest.mark.parametrize("command", ["echo a\necho b", "echo a\rb", "echo \x00", "", "   "])
def test_commands_are_one_line_without_nul(command):
    with pytest.raises(ValidationError):
        validate.cron_command(command)


def test_matches_and_next_run():
    assert jobs.matches("*/5 * * * *", datetime(2026, 12, 3, 14, 10, 30))
    assert not jobs.matches("*/5 * * * *", datetime(2026, 12, 3, 14, 11))
    assert jobs.matches("0 0 * * *", datetime(2026, 12, 3, 0, 0))
    assert jobs.next_run("0 0 * * *", datetime(2026, 12, 3, 14, 0)) == datetime(2026, 12, 4)
    assert jobs.matches("0 9 * * mon-fri", datetime(2026, 12, 4, 9, 0))  # a Friday
    assert not jobs.matches("0 9 * * mon-fri", datetime(2026, 12, 5, 9, 0))  # a Saturday


def test_jobs_come_from_the_current_release(release, skiff):
    h = skiff(("apps", apps_plugin), ("cron", cron_plugin))
    h.create_app("cat")
    assert jobs.jobs_of(h.state, "cat") == []
    release(h, "cat", JOBS)
    found = jobs.jobs_of(h.state, "cat")
    assert [j.schedule for j in found] == ["* * * * *", "@daily"]  # the repeat counted once
    first = found[0]
    assert first.id == jobs.job_id("* * * * *", JOBS[0]["command"]) and len(first.id) == 10
    assert first.argv() == ("/bin/sh", "-c", JOBS[0]["command"])  # the line runs in the container's shell
    assert first.container == f"cat.scheduler.{first.id}"
    # a failed deploy leaves the jobs; a new one replaces them
    release(h, "cat", [{"command": "echo other", "schedule": "@hourly"}], status="failed")
    assert [j.id for j in jobs.jobs_of(h.state, "cat")] == [j.id for j in found]
    release(h, "cat", [{"command": "echo other", "schedule": "@hourly"}])
    assert [j.command for j in jobs.jobs_of(h.state, "cat")] == ["echo other"]
    # an entry a release holds from before jobs were checked is never run
    release(h, "cat", [{"command": "a\nb", "schedule": "* * * * *"}, {"command": "ok", "schedule": "nope"}])
    assert jobs.jobs_of(h.state, "cat") == []


def test_periodic_tasks_skip_suspended_apps_and_the_runner_starts_what_is_due(release, skiff, monkeypatch):
    h = skiff(("apps", apps_plugin), ("cron", cron_plugin))
    for app in ("cat", "dog"):
        h.create_app(app)
        release(h, app, JOBS)
    out = io.StringIO()
    tasks = runner.collect(h.context, out)  # skiff_periodic_tasks of the cron plugin: one task per job
    assert sorted(t.name for t, _ in tasks if t.schedule == "* * * * *") == sorted(
        f"cron:{app}:{jobs.job_id('* * * * *', JOBS[0]['command'])}" for app in ("cat", "dog")
    )
    task = next(t for t, _ in tasks if t.name.startswith("cron:cat:") and t.schedule == "* * * * *")
    assert task.argv == ("cron:run", "cat", task.name.split(":")[2], "--scheduled")
    assert h.invoke("cron:suspend", "dog").exit_code == 0
    assert {t.name.split(":")[1] for t, _ in runner.collect(h.context, out)} == {"cat"}

    started: list[list[str]] = []

    class Child:
        def __init__(self, argv, **kwargs):
            started.append(argv)
            self.pid, self.code = 4242, None

        def poll(self):
            return self.code

    monkeypatch.setattr(runner.subprocess, "Popen", Child)
    r = runner.Runner(h.context, out, ["skiff"])
    names = r.tick(datetime(2026, 12, 3, 14, 1))
    assert names == [task.name]  # @daily is not due at 14:01
    assert started == [["skiff", *task.argv]]
    # the next minute: the run is still going, so it is not started again
    assert r.tick(datetime(2026, 12, 3, 14, 2)) == []
    assert "is still running (pid 4242): not starting it again" in out.getvalue()
    r.children[task.name].code = 0
    assert r.tick(datetime(2026, 12, 3, 14, 3)) == [task.name]
    assert f"{task.name} finished with status 0" in out.getvalue()
    # midnight: both jobs of cat
    r.children.clear()
    assert len(r.tick(datetime(2026, 12, 4, 0, 0))) == 2


class Broken:
    @hookimpl
    def skiff_periodic_tasks(self, context):
        return [
            PeriodicTask("broken:schedule", "61 * * * *", ("cleanup",)),
            PeriodicTask("broken:argv", "* * * * *", ()),
            PeriodicTask("good:one", "@hourly", ("cleanup",)),
            PeriodicTask("good:one", "@daily", ("cleanup",)),
        ]


def test_a_bad_periodic_task_is_reported_and_skipped(skiff):
    h = skiff(("apps", apps_plugin), ("broken", Broken()))
    out = io.StringIO()
    tasks = runner.collect(h.context, out)
    assert [(t.name, expr) for t, expr in tasks] == [("good:one", "0 * * * *")]
    log = out.getvalue()
    assert "skipping task broken:schedule: invalid cron schedule '61 * * * *'" in log
    assert "skipping task broken:argv" in log and "a second task named good:one" in log


def test_run_forever_ticks_once_per_minute_at_the_minute(skiff):
    h = skiff(("apps", apps_plugin))
    ticks: list[datetime] = []

    class R(runner.Runner):
        def tick(self, minute):
            ticks.append(minute)
            return []

    now = [datetime(2026, 12, 3, 14, 0, 30).timestamp()]
    suspend_at = datetime(2026, 12, 3, 14, 2, 20).timestamp()

    def sleep(seconds):
        now[0] += seconds
        if suspend_at <= now[0] < suspend_at + 1:
            now[0] += 3600  # a suspended machine: the lost hour is not caught up

    r = R(h.context, io.StringIO(), ["skiff"])
    runner.run_forever(
        r, lambda: now[0] > datetime(2026, 12, 3, 15, 3, 10).timestamp(), clock=lambda: now[0], sleep=sleep
    )
    assert ticks == [datetime(2026, 12, 3, hour, m) for hour, m in ((14, 1), (14, 2), (15, 2), (15, 3))]
    assert "runner started" in r.out.getvalue()


def test_cron_run_goes_through_skiff_run_oneoff_and_records_the_run(release, skiff):
    oneoffs = OneOffs()
    h = skiff(("apps", apps_plugin), ("cron", cron_plugin), ("oneoffs", oneoffs))
    h.create_app("cat")
    release(h, "cat", [*JOBS, {"command": "fail now", "schedule": "@hourly"}])
    job = jobs.jobs_of(h.state, "cat")[0]
    result = h.invoke("cron:run", "cat", job.id)
    assert result.exit_code == 0, result.output
    assert f"ran {JOBS[0]['command']}" in result.stdout
    assert oneoffs.calls == [
        OneOff("cat", ("/bin/sh", "-c", JOBS[0]["command"]), role="scheduler", name=job.container, tag=job.id)
    ]
    record = jobs.last_run(h.state, "cat", job.id)
    assert record["status"] == 0 and record["started"] and record["finished"]
    failing = jobs.jobs_of(h.state, "cat")[2]
    assert h.invoke("cron:run", "cat", failing.id).exit_code == 3  # the job's own status
    unknown = h.invoke("cron:run", "cat", "nosuchjob")
    assert unknown.exit_code != 0 and "cat has no cron job 'nosuchjob'" in unknown.stderr


def test_the_same_job_never_runs_twice_at_once(release, skiff):
    gate = threading.Event()
    oneoffs = OneOffs(gate)
    h = skiff(("apps", apps_plugin), ("cron", cron_plugin), ("oneoffs", oneoffs))
    h.create_app("cat")
    release(h, "cat", JOBS)
    job = jobs.jobs_of(h.state, "cat")[0]
    from skiff_cron.commands import run_job

    first = threading.Thread(target=run_job, args=(h.context, job, True))
    first.start()
    try:
        assert oneoffs.started.wait(5)
        second = h.invoke("cron:run", "cat", job.id)
        assert second.exit_code != 0 and "is still running; not starting it twice" in second.stderr
        scheduled = h.invoke("cron:run", "cat", job.id, "--scheduled")
        assert scheduled.exit_code == 0 and "this run is skipped" in scheduled.stderr
    finally:
        gate.set()
        first.join(10)
    assert len(oneoffs.calls) == 1
    assert jobs.last_run(h.state, "cat", job.id)["skipped"] == 2


def test_list_suspend_resume_report(release, skiff):
    h = skiff(("apps", apps_plugin), ("cron", cron_plugin))
    h.create_app("cat")
    release(h, "cat", JOBS)
    listed = h.invoke("cron:list", "cat", "--format", "json")
    rows = json.loads(listed.stdout)
    assert [(r["schedule"], r["command"]) for r in rows] == [(j["schedule"], j["command"]) for j in JOBS[:2]]
    assert rows[0]["next_run"] and rows[0]["last_run"] is None
    text = h.invoke("cron:list", "cat").stdout
    assert rows[1]["id"] in text and "@daily" in text
    assert "Suspended the cron jobs of cat (2 jobs)" in h.invoke("cron:suspend", "cat").stdout
    assert json.loads(h.invoke("cron:list", "cat", "--format", "json").stdout)[0]["next_run"] is None
    report = json.loads(h.invoke("cron:report", "cat", "--format", "json").stdout)
    assert report == {"cron next run": None, "cron suspended": True, "cron task count": 2}
    assert h.invoke("cron:resume", "cat").exit_code == 0
    assert not jobs.is_suspended(h.state, "cat")
    overall = json.loads(h.invoke("cron:report", "--format", "json").stdout)
    assert overall["cron task count"] == 2 and overall["cron runner"].startswith("not running")
    assert h.invoke("cron:list", "nosuchapp").exit_code != 0


def test_the_runner_holds_its_pidfile(tmp_path):
    path = tmp_path / "cron" / "runner.pid"
    assert runner.runner_pid(path) is None
    fd = runner.pidfile_lock(path)
    try:
        assert runner.runner_pid(path) == __import__("os").getpid()
        with pytest.raises(Exception, match="another cron runner is running"):
            runner.pidfile_lock(path)
    finally:
        __import__("os").close(fd)
    assert runner.runner_pid(path) is None
