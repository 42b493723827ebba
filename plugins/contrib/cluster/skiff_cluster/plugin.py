"""cluster: ``cluster:init``, ``cluster:add``, ``cluster:remove``, ``cluster:list`` over the engines' swarm API.

Hooks: ``skiff_commands``. The swarm scheduler (plugins/contrib/swarm) runs apps on the nodes;
the registry plugin carries their images. See docs/cluster.md.
"""

from __future__ import annotations

import click

from skiff import hookimpl


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
