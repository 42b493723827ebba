"""dashboard: a web dashboard behind skiff's nginx (docs/dashboard.md).

Hooks: ``skiff_commands`` (``dashboard:*``, :mod:`.commands`), ``skiff_settings``
(:data:`.settings.SETTINGS`), ``skiff_backup_parts`` (its certificate; sessions are not
kept). The web framework is imported only by ``dashboard:serve``.
"""

from __future__ import annotations

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart
from skiff.settings import Namespace


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    from .settings import SETTINGS

    return [SETTINGS]


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The dashboard's TLS certificate (``dashboard:certs-add``); sessions and links are not kept."""
    return [BackupPart("dashboard:tls", "the dashboard's TLS certificate and key", paths=("dashboard/tls",))]
