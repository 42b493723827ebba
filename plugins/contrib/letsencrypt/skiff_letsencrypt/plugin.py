"""letsencrypt: certificates from Let's Encrypt (or any ACME v2 server), like dokku-letsencrypt.

Hooks: ``skiff_commands``, ``skiff_settings``, ``skiff_app_destroyed``,
``skiff_app_renamed``, ``skiff_report``, ``skiff_periodic_tasks`` (the daily renewal
the cron runner starts), ``skiff_site_certificate`` (a certificate for a plugin's own
site: the dashboard's). The proxy (nginx) answers the HTTP-01 challenges from
:func:`skiff.contracts.acme_challenge_dir` and installs the certificates
(``skiff_certificate_install``). See docs/letsencrypt.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, PeriodicTask
from skiff.settings import Namespace

from . import store


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
def skiff_periodic_tasks(context: Context) -> list[PeriodicTask]:
    """The daily renewal of every app that is due, when ``letsencrypt:cron-job --add`` turned it on."""
    if not store.prop(context, "cron-job", default=False):
        return []
    return [PeriodicTask("letsencrypt:auto-renew", "@daily", ("letsencrypt:auto-renew",))]


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    """Forget the app's certificates (the proxy removes the installed copy itself)."""
    store.forget(context, app)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    """The certificates move with the app; its properties move with it in the core."""
    source, target = store.app_dir(context, old), store.app_dir(context, new)
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    from .commands import report_fields

    return {"letsencrypt": report_fields(context, app)}


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The ACME account keys and each app's last certificate (``SKIFF_ROOT/letsencrypt``)."""
    from . import PLUGIN

    return [BackupPart("letsencrypt:store", "ACME accounts and issued certificates", paths=(PLUGIN,))]


@hookimpl
def skiff_site_certificate(context: Context, site: str, domains: list[str]) -> tuple[Path, Path]:
    """Order (when none, due or the names changed) and keep ``site``'s certificate; its files."""
    from . import issuer

    return issuer.site_certificate(context, site, domains)
