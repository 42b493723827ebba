"""The ``dashboard:*`` commands: enable, disable, report, login, serve, certs-add, certs-remove, letsencrypt."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError
from skiff.settings import print_report

from . import PLUGIN, site, store
from .settings import SETTINGS


def _enabled(context: Context) -> bool:
    return bool(SETTINGS.get(context.state, "enabled"))


@access.admin_command
@click.command("dashboard:enable")
@pass_context
def dashboard_enable(context: Context) -> None:
    """Turn the dashboard on: nginx serves it at its domain; the service starts serving."""
    SETTINGS.set(context, "enabled", "true")
    context.output.info(f"the dashboard is on at {site.base_url(context)} (log in: ssh skiff@HOST dashboard:login)")


@access.admin_command
@click.command("dashboard:disable")
@pass_context
def dashboard_disable(context: Context) -> None:
    """Turn the dashboard off: its nginx site goes, every session ends, the service stops serving."""
    SETTINGS.set(context, "enabled", "false")
    ended = store.end_sessions_of(context.root)
    context.output.info(f"the dashboard is off ({ended} session{'s' if ended != 1 else ''} ended)")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@access.admin_command
@click.command("dashboard:report")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def dashboard_report(context: Context, fmt: str) -> None:
    """Show the dashboard's settings, its URL and whether its server answers."""
    values = SETTINGS.values(context.state)
    try:
        url: str | None = site.base_url(context)
    except SkiffError:
        url = None
    fields = {
        "enabled": values["enabled"],
        "domain": url.split("://", 1)[1] if url else None,
        "url": url,
        "https": site.has_certificate(context.root),
        "letsencrypt": site.from_authority(context),
        "port": values["port"],
        "session-ttl": values["session-ttl"],
        "link-ttl": values["link-ttl"],
        "server answering": _listening(int(values["port"])),
    }
    print_report(context, "dashboard", fields, fmt)


@access.public_command
@click.command("dashboard:login")
@click.option("--as", "as_key", metavar="KEY", help="(root shell only) the key whose session the link starts.")
@pass_context
def dashboard_login(context: Context, as_key: str | None) -> None:
    """Print a one-time link that logs this key in to the dashboard (valid link-ttl seconds)."""
    if as_key and context.via_ssh:
        raise SkiffError("--as is for a root shell on the server; over SSH the link is for your own key")
    key = as_key or (context.ssh_key_name if context.via_ssh else None)
    if not key:
        raise SkiffError("dashboard:login makes a link for an SSH key: run 'ssh skiff@HOST dashboard:login'")
    if not access.key_exists(context, key):
        raise SkiffError(f"no SSH key named {key!r} (ssh-keys:list)")
    if not _enabled(context):
        raise SkiffError("the dashboard is off: an admin turns it on with dashboard:enable")
    base = site.base_url(context)
    ttl = int(SETTINGS.get(context.state, "link-ttl"))
    token = store.create_link(context.root, key, ttl)
    click.echo(f"{base}/login/{token}")


def _loopback(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValidationError(f"--host {host!r}: the dashboard listens on a loopback address only (nginx is in front)")


@access.root_command
@click.command("dashboard:serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Default: the port setting (5030).")
@click.option("--service", is_flag=True, help="Serve only while enabled (what make install's service runs).")
@click.option("--pidfile", type=click.Path(dir_okay=False, path_type=Path), help="Write the pid here.")
@pass_context
def dashboard_serve(context: Context, host: str, port: int | None, service: bool, pidfile: Path | None) -> None:
    """Run the dashboard's web server in the foreground (the service make install starts runs this)."""
    from . import server

    if pidfile is not None:
        pidfile.write_text(f"{os.getpid()}\n")
    try:
        server.serve(context, _loopback(host), port, service)
    finally:
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)


MAX_PEM = 256 * 1024


def _read_pem(path: Path, what: str) -> bytes:
    data = path.read_bytes()[: MAX_PEM + 1]
    if len(data) > MAX_PEM or b"-----BEGIN " not in data:
        raise ValidationError(f"{path}: not a PEM {what}")
    return data


@access.root_command
@click.command("dashboard:certs-add")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def dashboard_certs_add(context: Context, certificate: Path, key: Path) -> None:
    """Serve the dashboard over HTTPS with CERTIFICATE (PEM chain) and KEY (PEM) from files on the server."""
    site.install_certificate(context, _read_pem(certificate, "certificate"), _read_pem(key, "key"))
    site.mark_authority(context, False)  # a certificate of one's own: renewals no longer replace it
    context.output.info(f"the dashboard is served at {site.base_url(context)}")


@access.admin_command
@click.command("dashboard:certs-remove")
@pass_context
def dashboard_certs_remove(context: Context) -> None:
    """Stop serving the dashboard over HTTPS (back to HTTP); removes its certificate."""
    if not site.has_certificate(context.root):
        raise SkiffError("the dashboard has no certificate")
    site.install_certificate(context, None, None)
    site.mark_authority(context, False)
    context.output.info(f"the dashboard is served at {site.base_url(context)}")


@access.admin_command
@click.command("dashboard:letsencrypt")
@pass_context
def dashboard_letsencrypt(context: Context) -> None:
    """Serve the dashboard over HTTPS with a Let's Encrypt certificate for its domain, renewed with the apps'."""
    if not _enabled(context):
        raise SkiffError("the dashboard is off: dashboard:enable first (nginx answers the ACME challenge on its site)")
    name = site.domain(context)
    try:
        files = context.hook.skiff_site_certificate(context=context, site=PLUGIN, domains=[name])
    except SkiffError as exc:
        raise SkiffError(f"{exc}; the dashboard's site is unchanged") from None
    if files is None:
        raise SkiffError(
            "no plugin issues certificates for sites (install and enable letsencrypt); "
            "the dashboard's site is unchanged"
        )
    site.install_files(context, *files)
    site.mark_authority(context, True)
    context.output.info(f"the dashboard is served at {site.base_url(context)} (renewed by letsencrypt:auto-renew)")


COMMANDS: list[click.Command] = [
    dashboard_enable,
    dashboard_disable,
    dashboard_report,
    dashboard_login,
    dashboard_serve,
    dashboard_certs_add,
    dashboard_certs_remove,
    dashboard_letsencrypt,
]
