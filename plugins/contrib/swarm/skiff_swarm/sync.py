"""Nginx follows the tasks: ``swarm:sync [APP]`` (and the cron runner, every minute).

When swarm reschedules a web task (its node went away, its container died, an unhealthy
task was replaced), the new task has another node and another published port. Sync reads
the running web tasks of each swarm app's current release, and when their addresses differ
from the release's ``upstreams`` it records the new ones in the release and rebuilds the
app's nginx config (``proxy:build-config APP``, the proxy's own command), under the app's lock.
It also removes the services of ``run:detached`` tasks that ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from skiff.context import Context
from skiff.lifecycle import app_lock

from . import engine, settings, spec


def current_upstreams(c: Any, app: str, version: int) -> list[str] | None:
    """The running web tasks' addresses of release ``version``; ``None`` when it has no web service."""
    name = spec.service_name(app, "web", version)
    found = [s for s in c.api.services(filters={"name": name}) if s["Spec"]["Name"] == name]
    if not found:
        return None
    return spec.upstreams(engine.tasks(c, found[0]["ID"]), engine.nodes(c))


def sync_app(context: Context, c: Any, app: str) -> str:
    """Bring ``app``'s upstreams up to date; say what was done. Takes the app's lock for the
    record and lets go before nginx's rebuild (``proxy:build-config`` takes it too)."""
    with app_lock(context, app):
        release = context.state.current_release(app)
        if release is None:
            return "not deployed"
        found = current_upstreams(c, app, release.version)
        if found is None:
            return "no web service"
        if not found:
            return "no running web task: upstreams kept"  # nothing better to point nginx at
        if sorted(release.upstreams) == found:
            return "up to date"
        release.upstreams = found
        context.state.finish_release(release, release.status, release.timings)
    proc = subprocess.run(
        [sys.executable, "-m", "skiff", "proxy:build-config", app],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    if proc.returncode != 0:
        return f"upstreams {' '.join(found)}; nginx not rebuilt: {(proc.stderr or proc.stdout).strip()[-200:]}"
    return f"upstreams now {' '.join(found)}"


def swarm_apps(context: Context) -> list[str]:
    return [app for app in context.state.list_apps() if settings.is_swarm_app(context.state, app)]


def sync(context: Context, apps: list[str]) -> dict[str, str]:
    if not apps:
        return {}
    from .oneoff import ended_detached

    c = engine.client(settings.manager(context.state))
    results = {}
    for app in apps:
        results[app] = sync_app(context, c, app)
        ended = ended_detached(c, app)  # run:detached tasks that ended
        if ended:
            results[app] += f"; removed the ended one-off service(s) {', '.join(ended)}"
    return results
