"""Declared settings: ``scheduler:set APP selected docker|swarm`` and ``swarm:set``.

``scheduler`` / ``selected`` (per app, default ``docker``) picks the scheduler of an app,
as Dokku's ``scheduler:set APP selected NAME``. ``swarm`` / ``manager`` (global, root
only: it points Skiff at a Docker engine) is the swarm manager's engine address
(``unix:///PATH`` or ``tcp://HOST:PORT``; ``SKIFF_SWARM_MANAGER`` overrides it; empty: the
local engine). ``swarm`` / ``timeout`` (both) bounds how long new tasks may take to run and
pass their checks, ``wait-to-retire`` how long the old release's services keep running
after nginx switched.
"""

from __future__ import annotations

import re
from typing import Any

from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, choice, number
from skiff.state import State

from . import PLUGIN

SCHEDULERS = ("docker", "swarm")
ENGINE_ADDRESS = re.compile(r"\A(?:unix://(/[A-Za-z0-9._/-]{1,200})|tcp://[A-Za-z0-9.-]{1,253}:[0-9]{1,5}|)\Z")


def engine_address(value: str) -> str:
    """``unix:///path/to/docker.sock`` or ``tcp://host:port`` (full match), or empty (the local engine)."""
    if not ENGINE_ADDRESS.fullmatch(value or ""):
        raise ValidationError(f"invalid engine address {value!r}: expected unix:///PATH/docker.sock or tcp://HOST:PORT")
    return value


SCHEDULER = Namespace(
    "scheduler",
    (
        Setting(
            "selected",
            type=choice(*SCHEDULERS),
            default="docker",
            help="the scheduler that runs the app: docker (this host) or swarm (a Docker Swarm)",
        ),
    ),
    title="scheduler",
)


def _report(context: Any, app: str | None) -> dict[str, Any]:
    """``swarm:report APP`` shows the app's services and every task, on every node."""
    if not app or not is_swarm_app(context.state, app):
        return {}
    from . import status

    return status.summary(context, app)


SWARM = Namespace(
    PLUGIN,
    (
        Setting(
            "manager",
            type=engine_address,
            default="",
            scope="global",
            env="SKIFF_SWARM_MANAGER",
            level="root",
            help="the swarm manager's engine: unix:///PATH or tcp://HOST:PORT (empty: the local engine)",
        ),
        Setting(
            "timeout",
            type=number(1, 3600),
            default=120.0,
            scope="both",
            help="seconds new tasks may take to run and pass their health checks",
        ),
        Setting(
            "wait-to-retire",
            type=number(0, 3600),
            default=5.0,
            scope="both",
            help="seconds the old release's services keep running after nginx switched",
        ),
    ),
    title="swarm",
    report=_report,
)


def selected(state: State, app: str) -> str:
    return str(SCHEDULER.get(state, "selected", app=app))


def is_swarm_app(state: State, app: str) -> bool:
    return selected(state, app) == "swarm"


def manager(state: State) -> str:
    return str(SWARM.get(state, "manager") or "")


def scale_overrides(state: State, app: str) -> dict[str, int]:
    """``ps:scale``'s counts: the docker plugin's ``formation`` property (docs/contracts.md)."""
    value = state.get_property("docker", "formation", app=app, default={}) or {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def formation(state: State, app: str, processes: dict[str, Any], app_json: dict[str, Any]) -> dict[str, int]:
    """``{process: replicas}``: ``ps:scale`` wins, then app.json ``formation``, then web 1 and others 0."""
    overrides = scale_overrides(state, app)
    from_json = app_json.get("formation") if isinstance(app_json, dict) else None
    result: dict[str, int] = {}
    for process in processes:
        entry = from_json.get(process) if isinstance(from_json, dict) else None
        if process in overrides:
            result[process] = overrides[process]
        elif isinstance(entry, dict) and isinstance(entry.get("quantity"), int) and entry["quantity"] >= 0:
            result[process] = entry["quantity"]
        else:
            result[process] = 1 if process == "web" else 0
    return result
