"""The ``cron:*`` commands (Dokku's names) and ``cron:runner``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.contracts import OneOff
from skiff.errors import LockTimeout, SkiffError
from skiff.executable import skiff_executable
from skiff.locks import file_lock, lock_path
from skiff.settings import print_report

from . import jobs, runner
from .jobs import Job


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _job_fields(context: Context, job: Job, suspended: bool) -> dict[str, Any]:
    last = jobs.last_run(context.state, job.app, job.id)
    upcoming = None if suspended else jobs.next_run(job.expression, datetime.now())
    return {
        "id": job.id,
        "schedule": job.schedule,
        "command": job.command,
        "next_run": upcoming.isoformat(timespec="minutes") if upcoming else None,
        "last_run": last or None,
    }


@access.app_command()
@click.command("cron:list")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def cron_list(context: Context, app: str, fmt: str) -> None:
    """List APP's cron jobs (app.json ``cron`` of its current release): id, schedule, command."""
    state = context.state
    state.require_app(app)
    suspended = jobs.is_suspended(state, app)
    rows = [_job_fields(context, job, suspended) for job in jobs.jobs_of(state, app)]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        context.output.info(f'{app} has no cron jobs (app.json "cron")')
        return
    context.output.banner(f"{app} cron jobs" + (" (suspended: cron:resume to run them)" if suspended else ""))
    width = max(len(r["schedule"]) for r in rows)
    click.echo(f"{'ID':<10}  {'SCHEDULE':<{width}}  COMMAND")
    for row in rows:
        click.echo(f"{row['id']:<10}  {row['schedule']:<{width}}  {row['command']}")


def _spawn_detached(app: str, ident: str) -> int:
    child = subprocess.Popen(
        [skiff_executable(), "cron:run", app, ident],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return child.pid


def run_job(context: Context, job: Job, scheduled: bool) -> int:
    """Run ``job`` once in a one-off container of the app's current release; its exit status.

    One run of a job at a time: a second one (scheduled or not) finds the job's lock
    held and does not start. The output goes to stdout and stays in the job's
    container, which ``logs APP`` shows as ``APP[scheduler.ID]`` until the next run."""
    state = context.state
    try:
        with file_lock(lock_path(context.root, f"cron-{job.app}-{job.id}"), timeout=0):
            jobs.record_run(state, job.app, job.id, started=_now(), finished=None, status=None, scheduled=scheduled)
            status: int | None = None
            try:
                status = context.hook.skiff_run_oneoff(
                    context=context,
                    oneoff=OneOff(job.app, job.argv(), role="scheduler", name=job.container, tag=job.id),
                    write=click.echo,
                )
                if status is None:
                    raise SkiffError("no scheduler plugin can run one-off containers")
                return status
            finally:
                jobs.record_run(state, job.app, job.id, finished=_now(), status=status)
    except LockTimeout:
        skipped = int(jobs.last_run(state, job.app, job.id).get("skipped") or 0) + 1
        jobs.record_run(state, job.app, job.id, skipped=skipped)
        if scheduled:
            context.output.warn(f"cron job {job.id} of {job.app} is still running: this run is skipped")
            return 0
        raise SkiffError(f"cron job {job.id} of {job.app} is still running; not starting it twice") from None


def _stop_on_sigterm() -> None:
    """SIGTERM (the runner or a shutdown) ends the run through the normal clean-up path."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


@access.app_command()
@click.command("cron:run")
@click.argument("app")
@click.argument("job_id", metavar="ID")
@click.option("--detach", is_flag=True, help="Start it in the background and return at once.")
@click.option("--scheduled", is_flag=True, hidden=True, help="Started by the runner (a busy job is skipped).")
@pass_context
def cron_run(context: Context, app: str, job_id: str, detach: bool, scheduled: bool) -> int:
    """Run APP's cron job ID now, in a one-off container of its current release.

    Its output is printed and stays in ``logs APP`` (``scheduler.ID``). A job already
    running is not started twice."""
    state = context.state
    state.require_app(app)
    job = jobs.find(state, app, job_id)
    if detach:
        pid = _spawn_detached(app, job.id)
        context.output.step(f"Started cron job {job.id} of {app} in the background (pid {pid})")
        context.output.info(f"its output: logs {app} -p scheduler.{job.id}")
        return 0
    _stop_on_sigterm()
    return run_job(context, job, scheduled)


def _set_suspended(context: Context, app: str, suspended: bool) -> None:
    context.state.require_app(app)
    jobs.set_suspended(context.state, app, suspended)
    count = len(jobs.jobs_of(context.state, app))
    verb = "Suspended" if suspended else "Resumed"
    context.output.step(f"{verb} the cron jobs of {app} ({count} job{'s' if count != 1 else ''})")


@access.app_command()
@click.command("cron:suspend")
@click.argument("app")
@pass_context
def cron_suspend(context: Context, app: str) -> None:
    """Stop running APP's cron jobs on schedule (a running one finishes; cron:run still works)."""
    _set_suspended(context, app, True)


@access.app_command()
@click.command("cron:resume")
@click.argument("app")
@pass_context
def cron_resume(context: Context, app: str) -> None:
    """Run APP's cron jobs on schedule again."""
    _set_suspended(context, app, False)


def pidfile_path(context: Context) -> Any:
    return context.path(*runner.PIDFILE)


@access.app_command()
@click.command("cron:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def cron_report(context: Context, app: str | None, fmt: str) -> None:
    """Show APP's cron state, or (without APP) the runner and every periodic task."""
    state = context.state
    if app:
        state.require_app(app)
        app_jobs = jobs.jobs_of(state, app)
        suspended = jobs.is_suspended(state, app)
        upcoming = [n for n in (jobs.next_run(j.expression, datetime.now()) for j in app_jobs) if n]
        fields: dict[str, Any] = {
            "cron task count": len(app_jobs),
            "cron suspended": suspended,
            "cron next run": min(upcoming).isoformat(timespec="minutes") if upcoming and not suspended else None,
        }
        print_report(context, f"{app} cron information", fields, fmt)
        return
    pid = runner.runner_pid(pidfile_path(context))
    tasks = runner.collect(context, sys.stderr)
    fields = {
        "cron runner": f"running (pid {pid})" if pid else "not running (make install starts it)",
        "cron task count": len(tasks),
        "cron tasks": {
            task.name: f"{task.schedule} -> skiff {' '.join(task.argv)}"
            + (f" (next {nxt.isoformat(timespec='minutes')})" if (nxt := jobs.next_run(expr, datetime.now())) else "")
            for task, expr in tasks
        },
    }
    print_report(context, "cron information", fields, fmt)


@access.root_command
@click.command("cron:runner")
@click.option("--pidfile", type=click.Path(dir_okay=False), help="Default: SKIFF_ROOT/cron/runner.pid.")
@pass_context
def cron_runner(context: Context, pidfile: str | None) -> None:
    """Run every periodic task on its schedule until stopped (make install starts it detached).

    One runner per installation (the pidfile is locked while it runs). Tasks run as
    ``skiff ARGV`` under the account the runner runs as (the service account); their
    output and the runner's own lines go to stdout."""
    from pathlib import Path

    path = Path(pidfile) if pidfile else pidfile_path(context)
    os.environ.setdefault("SKIFF_ROOT", str(context.root))
    runner.main(context, path, [skiff_executable()])


COMMANDS: list[click.Command] = [cron_list, cron_run, cron_suspend, cron_resume, cron_report, cron_runner]
