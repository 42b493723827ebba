"""postgres: service containers that apps link to (like dokku-postgres), on the service toolkit.

Commands are in :mod:`skiff_postgres.commands`; the hooks that keep links right (an app
destroyed or renamed, an app's containers created, apps:report)
come from the toolkit.
"""

from __future__ import annotations

import click

from skiff import hookimpl
from skiff_services.hooks import ServiceHooks

from .kind import KIND

HOOKS = ServiceHooks(KIND, commands="skiff_postgres.commands")
globals().update(HOOKS.implementations())  # skiff_app_destroyed, skiff_report, ...


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    HOOKS.add_commands(cli)
