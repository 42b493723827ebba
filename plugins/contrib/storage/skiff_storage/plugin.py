"""storage: persistent directories bind-mounted into an app's containers (Dokku's storage:*).

Commands are in :mod:`skiff_storage.commands`. The mounts reach every container
Skiff creates for the app (process containers, release tasks, ``run``) through
``skiff_container_options``; records of directories and mounts live in the
plugin's properties, so they survive redeploys, rollbacks and restarts, and follow
a rename.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, ContainerOptions

from . import directories, mounts


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_container_options(context: Context, app: str, process: str, role: str) -> ContainerOptions | None:
    binds = mounts.binds(context, app, context.output.warn)
    return {"binds": binds} if binds else None


@hookimpl(tryfirst=True)
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    """Before the scheduler starts the new name's containers: marks and owners follow."""
    mounts.renamed(context, old, new)
    for directory in directories.all_directories(context):
        if directory.app == old:
            directory.app = new
            directories.save(context, directory)


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    """Keep the data; say where it is. The directories stay, without an owner."""
    for directory in directories.owned_by(context, app):
        directory.app, directory.destroyed_app = None, app
        directories.save(context, directory)
        context.output.info(f"storage: kept {directories.path_of(context, directory.name)} (the data of {app})")
    for mount in mounts.stored(context, app):
        if mounts.storage_name(context, mount.host) is None:
            context.output.info(f"storage: kept {mount.host} (mounted at {mount.container}; never removed)")


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    from .commands import report_fields

    fields = report_fields(context, app)
    if not fields["mounts"] and not fields["directories"]:
        return None
    return {"storage": fields}


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The storage directories (``SKIFF_ROOT/storage``); a host path root mounted is not
    skiff's to copy, and the backup says so."""
    for app in context.state.list_apps():
        for mount in mounts.stored(context, app):
            if mounts.storage_name(context, mount.host) is None:
                context.output.warn(f"storage: {mount.host} (mounted into {app}) is outside SKIFF_ROOT: not backed up")
    return [BackupPart("storage:directories", "the apps' storage directories", paths=(directories.ROOT_DIR,))]
