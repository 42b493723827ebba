"""apps:create, apps:list, apps:exists, apps:destroy, apps:rename, apps:report."""

from __future__ import annotations

import datetime
from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


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
