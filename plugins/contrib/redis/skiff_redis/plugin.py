"""redis: service containers that apps link to (like dokku-redis), on the service toolkit.

Commands are in :mod:`skiff_redis.commands`; the hooks that keep links right (an app
destroyed or renamed, an app's containers created, apps:report) come from the toolkit.
"""

from __future__ import annotations

import click

from skiff import hookimpl
from skiff_services.hooks import ServiceHooks

from .kind import KIND

HOOKS = ServiceHooks(KIND)
skiff_service_apps = HOOKS.skiff_service_apps
skiff_app_destroyed = HOOKS.skiff_app_destroyed
skiff_app_renamed = HOOKS.skiff_app_renamed
skiff_container_options = HOOKS.skiff_container_options
skiff_report = HOOKS.skiff_report
skiff_periodic_tasks = HOOKS.skiff_periodic_tasks
skiff_settings = HOOKS.skiff_settings
skiff_backup_parts = HOOKS.skiff_backup_parts


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
