"""apps:create, apps:list, apps:exists, apps:destroy, apps:rename, apps:report, apps:clone, apps:lock,
builds:list, builds:output, and the ``builds`` settings (``builds:set --global keep N``, read by the
core's :mod:`skiff.builds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from skiff import hookimpl
from skiff.context import Context

if TYPE_CHECKING:  # pragma: no cover
    from skiff.settings import Namespace

# skiff.builds and skiff.settings are imported by the hooks that need them: a command of this
# plugin (apps:list over SSH) starts without them (docs/performance.md, start-up).


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    from skiff.builds import DEFAULT_KEEP, KEEP_SETTING
    from skiff.settings import Namespace, Setting, integer

    builds = Namespace(
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
    return [builds]


@hookimpl(trylast=True)
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    import datetime

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
