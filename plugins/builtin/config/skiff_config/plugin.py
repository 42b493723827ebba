"""config:set, config:unset, config:get, config:show, config:keys, config:export, config:clear.

Values are stored verbatim. A change to an app that has a release makes a
new release (``lifecycle.redeploy``) unless ``--no-restart`` is given.
``--global`` works on the config every app inherits.
"""

from __future__ import annotations

import click

from skiff import hookimpl
from skiff.context import Context


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl(trylast=True)
def skiff_report(context: Context, app: str):
    return {"config": {"keys": sorted(context.state.get_config(app))}}
