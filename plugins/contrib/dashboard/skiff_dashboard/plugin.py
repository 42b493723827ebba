"""dashboard: a web dashboard behind skiff's nginx (docs/dashboard.md).

Hooks: ``skiff_commands`` (``dashboard:*``, :mod:`.commands`), ``skiff_settings``
(:data:`.settings.SETTINGS`), ``skiff_backup_parts`` (its certificate; sessions are not
kept), ``skiff_site_certificate_renewed`` (installs the renewal of its Let's Encrypt
certificate, ``dashboard:letsencrypt``). The web framework is imported only by ``dashboard:serve``.
"""

from __future__ import annotations

from pathlib import Path

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


@hookimpl
def skiff_site_certificate_renewed(context: Context, site: str, certificate: Path, key: Path) -> bool | None:
    """The renewed certificate of the dashboard's site, while it serves one from ``dashboard:letsencrypt``."""
    from . import PLUGIN
    from . import site as dashboard_site

    if site != PLUGIN or not dashboard_site.from_authority(context):
        return None
    dashboard_site.install_files(context, certificate, key)
    context.output.info("the dashboard serves its renewed certificate")
    return True
