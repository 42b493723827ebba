"""An app's cron jobs: app.json ``cron`` of its current release, their ids, state and schedule.

The jobs are not stored apart from the release: they are ``meta["app_json"]["cron"]`` of
the app's current release (validated at push by the procfile plugin). So a redeploy
updates them, a failed deploy (no new current release) leaves the old ones, a rollback
brings back the jobs of the release it returns to, and a restarted runner finds them
where they were. What the plugin stores itself (properties of ``cron``, per app):
``suspended`` (``cron:suspend``) and ``run:ID`` (the last run of job ID).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from skiff import validate
from skiff.errors import NotFound, ValidationError
from skiff.state import State

from . import PLUGIN

SUSPENDED = "suspended"
SHELL = "/bin/sh"


@dataclass(frozen=True)
class Job:
    app: str
    id: str
    schedule: str  # as app.json gives it
    command: str

    @property
    def expression(self) -> str:
        """The five-field form of the schedule (@-macros expanded)."""
        return validate.cron_schedule(self.schedule)

    @property
    def task_name(self) -> str:
        return f"cron:{self.app}:{self.id}"

    @property
    def container(self) -> str:
        """The name of the job's one-off container (one at a time)."""
        return f"{self.app}.scheduler.{self.id}"

    def argv(self) -> tuple[str, ...]:
        """What runs inside the app's container: the line under ``/bin/sh -c``, like a Procfile command."""
        return (SHELL, "-c", self.command)


def job_id(schedule: str, command: str) -> str:
    """A job's id: stable while its schedule and command stay the same (across redeploys)."""
    return hashlib.sha256(f"{schedule}\0{command}".encode()).hexdigest()[:10]


def jobs_of(state: State, app: str) -> list[Job]:
    """The jobs of ``app``'s current release, in app.json order (a repeated job once)."""
    release = state.current_release(app)
    app_json = (release.meta.get("app_json") if release is not None else None) or {}
    entries = app_json.get("cron") if isinstance(app_json, dict) else None
    jobs: dict[str, Job] = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            schedule, command = entry["schedule"], entry["command"]
            validate.cron_schedule(schedule)
            validate.cron_command(command)
        except (KeyError, TypeError, ValidationError):
            continue  # a release made before jobs were checked at push: never run what does not check
        ident = job_id(schedule, command)
        jobs.setdefault(ident, Job(app, ident, schedule, command))
    return list(jobs.values())


def find(state: State, app: str, ident: str) -> Job:
    for job in jobs_of(state, app):
        if job.id == ident:
            return job
    raise NotFound(f"{app} has no cron job {validate.shown(ident)} (see cron:list {app})")


def is_suspended(state: State, app: str) -> bool:
    return bool(state.get_property(PLUGIN, SUSPENDED, app=app, default=False))


def set_suspended(state: State, app: str, suspended: bool) -> None:
    if suspended:
        state.set_property(PLUGIN, SUSPENDED, True, app=app)
    else:
        state.delete_property(PLUGIN, SUSPENDED, app=app)


def last_run(state: State, app: str, ident: str) -> dict[str, Any]:
    return dict(state.get_property(PLUGIN, f"run:{ident}", app=app, default={}) or {})


def record_run(state: State, app: str, ident: str, **changes: Any) -> dict[str, Any]:
    """Update job ``ident``'s record: ``started``, ``finished``, ``status``, ``skipped`` (a count)."""
    record = last_run(state, app, ident)
    record.update(changes)
    state.set_property(PLUGIN, f"run:{ident}", record, app=app)
    return record


def next_run(expression: str, after: datetime) -> datetime | None:
    """The first time after ``after`` (local time, minute resolution) that ``expression`` names."""
    from cronsim import CronSim, CronSimError

    try:
        return next(CronSim(expression, after.replace(second=0, microsecond=0)))
    except (CronSimError, StopIteration):
        return None


def matches(expression: str, minute: datetime) -> bool:
    """Whether ``expression`` names the minute ``minute`` (local time, seconds ignored)."""
    minute = minute.replace(second=0, microsecond=0)
    return next_run(expression, minute - timedelta(minutes=1)) == minute


def check_schedule(schedule: str) -> str:
    """The five-field form of ``schedule`` (:func:`skiff.validate.cron_schedule`), which cronsim
    must also find a next time for (a periodic task's schedule, checked by the runner)."""
    expression = validate.cron_schedule(schedule)
    if next_run(expression, datetime(2000, 1, 1)) is None:
        raise ValidationError(f"invalid cron schedule {validate.shown(schedule)}: it names no time")
    return expression
