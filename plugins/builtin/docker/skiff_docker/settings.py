"""The scheduler's settings, kept as plugin properties (plugin name ``docker``).

Per app: ``formation`` ({process: quantity} set by ``ps:scale``), ``checks``
(wait-to-retire, stop-timeout, ...; disabled / skipped processes),
``resources`` ({process or ``_default``: {memory, cpu}}), ``docker-options``
({phase: [option, ...]}), ``docker-options-root`` ({phase: {option: app}}:
the host-reaching options root confirmed, and for which app), ``stopped`` (``ps:stop`` was run), ``source`` (the
last deployed source, for ``ps:rebuild``), ``keep-releases`` (also global).

Declared settings (the core generates their ``:set`` commands): :data:`CHECKS`
(``checks:set [--global] [APP] KEY VALUE``, in their own ``checks`` namespace) and
:data:`PS` (``ps:set [--global] [APP] keep-releases N``, ``ps:set [--global] [APP] prestart false``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, integer
from skiff.state import State

from . import PLUGIN

ALL = "_all_"
DEFAULT_PROCESS = "_default"

#: check settings and their defaults (seconds, or a count)
CHECK_DEFAULTS: dict[str, float] = {
    "wait-to-retire": 10,  # old containers keep running this long after the switch
    "stop-timeout": 10,  # SIGTERM -> SIGKILL grace period
    "timeout": 60,  # how long a new web container may take to answer HTTP at all
    "uptime": 2,  # non-web processes must stay up this long
    "attempts": 5,  # answers >= 500 (default check) or failed checks before giving up
}
CHECK_HELP = {
    "wait-to-retire": "seconds old containers keep running after the switch",
    "stop-timeout": "seconds between SIGTERM and SIGKILL",
    "timeout": "seconds a new web container may take to answer HTTP at all",
    "uptime": "seconds a non-web process must stay up",
    "attempts": "failed checks (or answers >= 500) before giving up",
}
DEFAULT_KEEP_RELEASES = 5
MAX_CHECK_SECONDS = 86400


def _check_value(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValidationError(f"must be a number of seconds (or a count), got {value!r}") from None
    if not 0 <= number <= MAX_CHECK_SECONDS:  # also refuses nan
        raise ValidationError(f"must be between 0 and {MAX_CHECK_SECONDS}")
    return number


def _release_count(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 1000:
        raise ValidationError("must be a number from 1 to 1000")
    return int(value)


#: ``checks:set [--global] [APP] KEY [VALUE]`` (generated; ``checks:report`` is the plugin's own)
CHECKS = Namespace(
    "checks",
    tuple(
        Setting(name, type=_check_value, default=default, scope="both", help=CHECK_HELP[name])
        for name, default in CHECK_DEFAULTS.items()
    ),
    commands=("set",),
    title="check",
)
#: ``ps:set [--global] [APP] keep-releases N`` (generated; ``ps:report`` is the plugin's own)
PS = Namespace(
    "ps",
    (
        Setting(
            "keep-releases",
            type=_release_count,
            default=DEFAULT_KEEP_RELEASES,
            scope="both",
            help="release images kept for rollback",
        ),
        Setting(
            "prestart",
            type=bool,
            default=True,
            scope="both",
            help="start a push's new containers while its code layer is built (docs/performance.md)",
        ),
    ),
    store=PLUGIN,
    commands=("set",),
    noun="property",
)


# -- formation --------------------------------------------------------------


def scale_overrides(state: State, app: str) -> dict[str, int]:
    return dict(state.get_property(PLUGIN, "formation", app=app, default={}) or {})


def set_scale(state: State, app: str, changes: dict[str, int]) -> dict[str, int]:
    current = scale_overrides(state, app)
    current.update(changes)
    state.set_property(PLUGIN, "formation", current, app=app)
    return current


def formation(state: State, app: str, processes: dict[str, Any], app_json: dict[str, Any]) -> dict[str, int]:
    """{process: quantity} for every process type of the release.

    ``ps:scale`` wins, then app.json ``formation.<process>.quantity``, then the
    default (web 1, others 0).
    """
    overrides = scale_overrides(state, app)
    from_json = app_json.get("formation") if isinstance(app_json, dict) else None
    result: dict[str, int] = {}
    for process in processes:
        if process in overrides:
            result[process] = int(overrides[process])
            continue
        entry = (from_json or {}).get(process) if isinstance(from_json, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("quantity"), int) and entry["quantity"] >= 0:
            result[process] = entry["quantity"]
        else:
            result[process] = 1 if process == "web" else 0
    return result


# -- checks -------------------------------------------------------------------


def checks(state: State, app: str) -> dict[str, Any]:
    """APP's check settings (:data:`CHECKS`) and its disabled / skipped processes."""
    modes = state.get_property(PLUGIN, "checks", app=app, default={}) or {}
    merged: dict[str, Any] = CHECKS.values(state, app)
    merged["disabled"] = list(modes.get("disabled", []))
    merged["skipped"] = list(modes.get("skipped", []))
    return merged


def move_check_values(state: State) -> int:
    """Move check values stored in the ``checks`` property (before they were declared) to :data:`CHECKS`."""
    moved = 0
    for app in state.list_apps():
        stored = state.get_property(PLUGIN, "checks", app=app) or {}
        if not isinstance(stored, dict):
            continue
        legacy = {k: v for k, v in stored.items() if k in CHECK_DEFAULTS and isinstance(v, (int, float))}
        for key, value in legacy.items():
            if CHECKS.stored(state, key, app) is None:
                state.set_property(CHECKS.prop, key, float(value), app=app)
            moved += 1
        if legacy:
            state.set_property(PLUGIN, "checks", {k: v for k, v in stored.items() if k not in legacy}, app=app)
    return moved


def set_check_mode(state: State, app: str, processes: list[str], mode: str) -> None:
    """Mark ``processes`` (or ALL) as ``enabled``, ``disabled`` or ``skipped``."""
    stored = dict(state.get_property(PLUGIN, "checks", app=app, default={}) or {})
    disabled = set(stored.get("disabled", []))
    skipped = set(stored.get("skipped", []))
    targets = set(processes) or {ALL}
    if ALL in targets:
        disabled, skipped = set(), set()
    disabled -= targets
    skipped -= targets
    if mode == "disabled":
        disabled |= targets
    elif mode == "skipped":
        skipped |= targets
    stored["disabled"], stored["skipped"] = sorted(disabled), sorted(skipped)
    state.set_property(PLUGIN, "checks", stored, app=app)


def check_mode(settings: dict[str, Any], process: str) -> str:
    for mode in ("disabled", "skipped"):
        names = settings.get(mode, [])
        if ALL in names or process in names:
            return mode
    return "enabled"


# -- resources and docker options ---------------------------------------------


def resources(state: State, app: str) -> dict[str, dict[str, str]]:
    return dict(state.get_property(PLUGIN, "resources", app=app, default={}) or {})


def resources_for(state: State, app: str, process: str) -> dict[str, str]:
    return merge_resources(resources(state, app), process)


def merge_resources(table: dict[str, dict[str, str]], process: str) -> dict[str, str]:
    """The limits of ``process`` in a ``resources`` table: its own over the ``_default`` ones."""
    merged = dict(table.get(DEFAULT_PROCESS, {}))
    merged.update(table.get(process, {}))
    return merged


def docker_options(state: State, app: str) -> dict[str, list[str]]:
    """The stored options, as typed (checked or not): for the docker-options commands only."""
    return dict(state.get_property(PLUGIN, "docker-options", app=app, default={}) or {})


def root_confirmed(state: State, app: str) -> dict[str, dict[str, str]]:
    """``{phase: {option: app}}``: host-reaching options root confirmed, and the app it confirmed them for.

    A value stored without this mark (by the code before it existed, by a clone of
    another app, by any other path) is unconfirmed: that is the upgrade migration.
    """
    stored = state.get_property(PLUGIN, "docker-options-root", app=app, default={}) or {}
    if not isinstance(stored, dict):
        return {}
    return {phase: dict(entries) for phase, entries in stored.items() if isinstance(entries, dict)}


def set_root_confirmed(state: State, app: str, table: dict[str, dict[str, str]]) -> None:
    table = {phase: entries for phase, entries in table.items() if entries}
    if table:
        state.set_property(PLUGIN, "docker-options-root", table, app=app)
    else:
        state.delete_property(PLUGIN, "docker-options-root", app=app)


def is_confirmed(confirmed: dict[str, dict[str, str]], app: str, phase: str, option: str) -> bool:
    return confirmed.get(phase, {}).get(option) == app


def applied_docker_options(state: State, app: str, phase: str, warn: Callable[[str], None]) -> list[str]:
    """The options of ``phase`` that may be applied to a container of ``app``, checked now.

    Every path that creates a container or a build reads its options here: an
    option that does not pass the allow-list, or that reaches the host and root
    did not confirm for this app, is left out with a warning.
    """
    from . import hostreach, options

    confirmed = root_confirmed(state, app)
    result = []
    for option in docker_options(state, app).get(phase, []) or []:
        if not isinstance(option, str):
            warn(f"docker-options: {option!r} is not applied: not an option")
            continue
        try:
            options.normalise(phase, [option])
        except ValidationError as exc:
            warn(f"docker-options: {option} is not applied: {exc}")
            continue
        if hostreach.host_reaching_reason([option], app) and not is_confirmed(confirmed, app, phase, option):
            warn(
                f"docker-options: {option} is not applied: host-reaching options need root's confirmation "
                f"(docker-options:add from a root shell)"
            )
            continue
        result.append(option)
    return result


# -- misc -------------------------------------------------------------------------


def keep_releases(state: State, app: str) -> int:
    return max(1, int(PS.get(state, "keep-releases", app)))


def prestart(state: State, app: str) -> bool:
    """``ps:set APP prestart``: whether a push starts its containers while the code layer is built."""
    return bool(PS.get(state, "prestart", app))


def other_scheduler(state: State, app: str) -> bool:
    """Whether ``scheduler:set APP selected`` names another scheduler than docker (docs/contracts.md)."""
    selected = state.get_property("scheduler", "selected", app=app)
    return bool(selected) and selected != "docker"


def is_stopped(state: State, app: str) -> bool:
    return bool(state.get_property(PLUGIN, "stopped", app=app, default=False))


def set_stopped(state: State, app: str, stopped: bool) -> None:
    if stopped:
        state.set_property(PLUGIN, "stopped", True, app=app)
    else:
        state.delete_property(PLUGIN, "stopped", app=app)


# -- container logs and cleanup -----------------------------------------------------

LOG_SIZE = re.compile(r"\A[1-9][0-9]{0,5}[kmg]\Z")
UNLIMITED = "unlimited"


def _log_size(value: str) -> str:
    text = value.lower()
    if text == UNLIMITED or LOG_SIZE.fullmatch(text):
        return text
    raise ValidationError(f"must be a size such as 100k, 10m or 1g (or {UNLIMITED}), got {value!r}")


def _cleanup_schedule(value: str) -> str:
    from skiff import validate

    if value == "off":
        return value
    validate.cron_schedule(value)
    return value


def _logs_apply(context: Any, scope: str, setting: Setting, store: Callable[[], None]) -> None:
    store()
    which = "every app's" if not scope else f"{scope}'s"
    context.output.info(f"{setting.name} applies to {which} containers from the next deploy or ps:restart on")


#: ``logs:set [--global|APP] max-size|max-file VALUE`` and ``logs:report`` (generated):
#: every container of an app writes Docker's json-file log with these bounds.
LOGS = Namespace(
    "logs",
    (
        Setting(
            "max-size",
            type=_log_size,
            default="10m",
            scope="both",
            help="largest container log file before it rotates (100k, 10m, 1g, unlimited)",
        ),
        Setting(
            "max-file",
            type=integer(1, 100),
            default=3,
            scope="both",
            help="rotated log files kept per container (with max-size)",
        ),
    ),
    title="logs",
    apply=_logs_apply,
)
#: ``cleanup:set --global schedule EXPR|off`` and ``cleanup:report``: when the cron runner runs ``cleanup``.
CLEANUP = Namespace(
    "cleanup",
    (
        Setting(
            "schedule",
            type=_cleanup_schedule,
            default="@daily",
            scope="global",
            help="when the cron runner runs cleanup (a cron expression, or off)",
        ),
    ),
    title="cleanup",
)


def log_config(state: State, app: str) -> dict[str, Any]:
    """Docker's ``log_config`` for APP's containers: json-file, bounded by :data:`LOGS`."""
    values = LOGS.values(state, app)
    if values["max-size"] == UNLIMITED:
        return {"type": "json-file", "config": {}}
    return {"type": "json-file", "config": {"max-size": values["max-size"], "max-file": str(values["max-file"])}}
