"""apps:create, apps:list, apps:exists, apps:destroy, apps:rename, apps:report, apps:clone, apps:lock,
builds:list, builds:output, and the ``builds`` settings (``builds:set --global keep N``, read by the
core's :mod:`skiff.builds`)."""

from __future__ import annotations

import datetime
from typing import Any

import click

from skiff import hookimpl
from skiff.builds import DEFAULT_KEEP, KEEP_SETTING
from skiff.context import Context
from skiff.settings import Namespace, Setting, integer

BUILDS = Namespace(
    KEEP_SETTING[0],
    (
        Setting(
            KEEP_SETTING[1],
            integer(1, 10000),
            DEFAULT_KEEP,
            scope="global",
            level="admin",
            help="how many builds (deploy outputs) each app keeps; older ones are deleted",
        ),
    ),
    title="builds",
)


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [BUILDS]


@hookimpl(trylast=True)
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    state = context.state
    current = state.current_release(app)
    created = datetime.datetime.fromtimestamp(state.app_created(app), datetime.timezone.utc)
    return {
        "app": {
            "name": app,
            "created": created.isoformat(timespec="seconds"),
            "deployed": current is not None,
            "release": f"v{current.version}" if current else None,
            "revision": current.revision if current else None,
            "image": current.image if current else None,
        }
    }
