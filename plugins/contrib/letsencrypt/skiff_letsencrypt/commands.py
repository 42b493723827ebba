"""The ``letsencrypt:*`` commands (dokku-letsencrypt's names); ``letsencrypt:set`` is generated."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import click

from skiff import access, contracts
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError

from . import issuer, store
from .settings import SETTINGS, directory_url

STALE_CHALLENGE = 3600  # seconds: a challenge file older than this belongs to no running order


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _ours(context: Context, app: str) -> bool:
    """The proxy serves the certificate this plugin issued (not one added with certs:add)."""
    cert = store.current(context, app)
    served = context.hook.skiff_app_certificate(context=context, app=app)
    return cert is not None and served is not None and served.strip() == cert.fullchain.strip()


def _stop(context: Context, app: str) -> None:
    """Take this plugin's certificate out of the proxy (not one added by hand), forget it, stop renewing."""
    if _ours(context, app):
        context.output.step(f"Removing the Let's Encrypt certificate of {app}")
        context.hook.skiff_certificate_install(context=context, app=app, certificate=None, key=None)
    store.set_prop(context, "enabled", None, app)
    store.set_prop(context, "last-error", None, app)
    store.forget(context, app)


def report_fields(context: Context, app: str) -> dict[str, Any]:
    cert = store.current(context, app)
    values = SETTINGS.values(context.state, app)
    fields: dict[str, Any] = {
        "enabled": store.enabled(context, app),
        "active": _ours(context, app),
        "email": values["email"] or "",
        "server": directory_url(values["server"]),
        "graceperiod": values["graceperiod"],
        "domains": cert.names if cert else [],
        "expires": f"{cert.not_after:%Y-%m-%d %H:%M:%S} UTC" if cert else "",
        "renew_after": "",
        "last_error": store.prop(context, "last-error", app, default="") or "",
    }
    if cert:
        renew = cert.not_after - datetime.timedelta(seconds=int(values["graceperiod"]))
        fields["renew_after"] = f"{renew:%Y-%m-%d %H:%M:%S} UTC"
    return fields


@access.app_command()
@click.command("letsencrypt:enable")
@click.argument("app")
@pass_context
def letsencrypt_enable(context: Context, app: str) -> None:
    """Get a Let's Encrypt certificate for every domain of APP and keep it renewed."""
    context.state.require_app(app)
    cert = issuer.issue(context, app, "enable")
    store.set_prop(context, "enabled", True, app)
    context.output.info(f"{app} serves HTTPS with it: {', '.join(cert.names)}")


@access.app_command()
@click.command("letsencrypt:disable")
@click.argument("app")
@pass_context
def letsencrypt_disable(context: Context, app: str) -> None:
    """Stop renewing APP's certificate and remove it from the proxy (HTTP again)."""
    context.state.require_app(app)
    if not store.enabled(context, app) and store.current(context, app) is None:
        raise SkiffError(f"letsencrypt is not enabled for {app}")
    _stop(context, app)
    context.output.step(f"letsencrypt disabled for {app}")


@access.app_command()
@click.command("letsencrypt:active")
@click.argument("app")
@pass_context
def letsencrypt_active(context: Context, app: str) -> None:
    """Print true when APP serves the Let's Encrypt certificate, else false."""
    context.state.require_app(app)
    click.echo("true" if store.enabled(context, app) and _ours(context, app) else "false")


@access.admin_command
@click.command("letsencrypt:list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def letsencrypt_list(context: Context, fmt: str) -> None:
    """List the apps with letsencrypt enabled: expiry and when each renews."""
    rows = []
    for app in store.enabled_apps(context):
        fields = report_fields(context, app)
        rows.append({"app": app, **{k: fields[k] for k in ("expires", "renew_after", "last_error")}})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    context.output.banner("App name           Certificate expiry        Renew after")
    for row in rows:
        click.echo(f"{row['app']:<18} {row['expires']:<25} {row['renew_after']}")


def _site_fields(context: Context, site: str, record: dict[str, Any]) -> dict[str, Any]:
    cert = store.current_site(context, site)
    return {
        "domains": list(record.get("domains") or []),
        "expires": f"{cert.not_after:%Y-%m-%d %H:%M:%S} UTC" if cert else "",
        "last_error": record.get("last-error", ""),
    }


@access.app_command()
@click.command("letsencrypt:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def letsencrypt_report(context: Context, app: str | None, fmt: str) -> None:
    """Show APP's (or every app's) letsencrypt settings, certificate and last error."""
    apps = [app] if app else context.state.list_apps()
    if app:
        context.state.require_app(app)
    reports = {name: report_fields(context, name) for name in apps}
    reports_global = {
        "cron_job": bool(store.prop(context, "cron-job", default=False)),
        "sites": {site: _site_fields(context, site, record) for site, record in store.sites(context).items()},
    }
    if fmt == "json":
        click.echo(json.dumps(reports[app] if app else {"apps": reports, "global": reports_global}, indent=2))
        return
    for name, fields in reports.items():
        context.output.fields(f"{name} letsencrypt information", fields)
    if not app:
        context.output.fields("letsencrypt global information", reports_global)


def _renew(context: Context, app: str, force: bool) -> bool:
    """Renew ``app`` when due (or ``force``); False when it failed (one line said why)."""
    try:
        why = "forced" if force else issuer.due(context, app)
        if why is None:
            cert = store.current(context, app)
            assert cert is not None
            context.output.info(f"{app}: not due (renews after the grace period before {cert.not_after:%Y-%m-%d})")
            return True
        issuer.issue(context, app, why)
    except SkiffError as exc:
        context.output.error(str(exc))
        return False
    return True


@access.app_command()
@click.command("letsencrypt:auto-renew")
@click.argument("app", required=False)
@click.option("--force", is_flag=True, help="renew even when the certificate is not due")
@pass_context
def letsencrypt_auto_renew(context: Context, app: str | None, force: bool) -> None:
    """Renew APP's certificate (or every enabled app's and site's) when it is due or its domains changed."""
    if app:
        context.state.require_app(app)
        if not store.enabled(context, app):
            raise SkiffError(f"letsencrypt is not enabled for {app} (letsencrypt:enable {app})")
        apps = [app]
        sites: list[str] = []
    else:
        apps, sites = store.enabled_apps(context), sorted(store.sites(context))
        context.output.step(
            f"Renewing the certificates that are due ({len(apps)} apps with letsencrypt, {len(sites)} sites)"
        )
    failed = [name for name in apps if not _renew(context, name, force)]
    failed += [f"the {site} site" for site in sites if not issuer.renew_site(context, site, force)]
    if failed:
        raise SkiffError(f"renewal failed for {', '.join(failed)}; their current certificates keep serving")


@access.admin_command
@click.command("letsencrypt:cron-job")
@click.option("--add", "add", flag_value=True, default=None, help="renew every day (the cron runner's task)")
@click.option("--remove", "add", flag_value=False, help="stop renewing on a schedule")
@pass_context
def letsencrypt_cron_job(context: Context, add: bool | None) -> None:
    """Turn the daily letsencrypt:auto-renew of every app on (--add) or off (--remove)."""
    if add is None:
        raise click.UsageError("give --add or --remove")
    store.set_prop(context, "cron-job", True if add else None)
    if add:
        context.output.step("letsencrypt:auto-renew will run @daily (the periodic task letsencrypt-auto-renew)")
    else:
        context.output.step("letsencrypt:auto-renew no longer runs on a schedule")


@access.app_command()
@click.command("letsencrypt:revoke")
@click.argument("app")
@pass_context
def letsencrypt_revoke(context: Context, app: str) -> None:
    """Revoke APP's certificate at its ACME server, stop serving it and stop renewing it."""
    context.state.require_app(app)
    context.output.step(f"Revoking the Let's Encrypt certificate of {app}")
    cert = issuer.revoke(context, app)
    context.output.info(f"revoked serial {cert.serial}")
    _stop(context, app)
    context.output.info(f"{app} answers on HTTP again; letsencrypt:enable {app} gets a new certificate")


@access.app_command()
@click.command("letsencrypt:cleanup")
@click.argument("app")
@pass_context
def letsencrypt_cleanup(context: Context, app: str) -> None:
    """Remove APP's replaced certificates and challenge files left by interrupted orders."""
    context.state.require_app(app)
    removed = 0
    for path in store.archived(context, app):
        path.unlink()
        removed += 1
    challenges = contracts.acme_challenge_dir(context.root)
    if challenges.is_dir():
        with issuer.app_lock(context, app):
            for path in challenges.iterdir():
                if path.is_file() and time.time() - path.stat().st_mtime > STALE_CHALLENGE:
                    path.unlink()
                    removed += 1
    context.output.step(f"Removed {removed} stale file{'' if removed == 1 else 's'} of {app}")


COMMANDS: list[click.Command] = [
    letsencrypt_enable,
    letsencrypt_disable,
    letsencrypt_active,
    letsencrypt_list,
    letsencrypt_report,
    letsencrypt_auto_renew,
    letsencrypt_cron_job,
    letsencrypt_revoke,
    letsencrypt_cleanup,
]
