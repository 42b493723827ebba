"""cron: app.json cron jobs, and the one runner of every periodic task (like Dokku's cron).

Commands are in :mod:`skiff_cron.commands`, the runner in :mod:`skiff_cron.runner`, the
jobs (read from the app's current release) in :mod:`skiff_cron.jobs`. The schedule and
command of each job are checked at push by the procfile plugin (``skiff.validate``), when it
reads app.json, before anything is stored.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import PeriodicTask
from skiff.deploy import Deploy

from . import jobs


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_post_deploy(deploy: Deploy) -> None:
    entries = (deploy.app_json or {}).get("cron") or []
    if entries:
        deploy.output.step(f"cron: {len(entries)} job{'s' if len(entries) != 1 else ''} (cron:list {deploy.app})")


@hookimpl
def skiff_periodic_tasks(context: Context) -> list[PeriodicTask]:
    """Each job of every app that is not suspended: ``cron:run APP ID --scheduled``."""
    state = context.state
    tasks = []
    for app in state.list_apps():
        if jobs.is_suspended(state, app):
            continue
        for job in jobs.jobs_of(state, app):
            tasks.append(PeriodicTask(job.task_name, job.schedule, ("cron:run", app, job.id, "--scheduled")))
    return tasks


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    count = len(jobs.jobs_of(context.state, app))
    if not count:
        return None
    return {"cron": {"jobs": count, "suspended": jobs.is_suspended(context.state, app)}}
