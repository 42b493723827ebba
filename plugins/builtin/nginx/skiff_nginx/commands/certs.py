"""certs:* commands: an app's TLS certificate (HTTP then redirects to HTTPS)."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO, cast

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError

from .. import certs, names, proxy
from ..settings import PLUGIN, load
from .domains import check_unique, print_fields


def install(context: Context, app: str, pair: tuple[bytes, bytes] | None, extra_domain: str | None = None) -> None:
    """Store (or remove) the pair, rebuild APP; put everything back if nginx refuses."""
    settings = load(context)
    old = certs.current(settings, app)
    old_domains = proxy.own_domains(context, app)
    if extra_domain:
        check_unique(context, app, [extra_domain])
    certs.store(settings, app, pair)
    if extra_domain and extra_domain not in old_domains and extra_domain not in proxy.app_domains(context, app):
        context.state.set_property(PLUGIN, "domains", old_domains + [extra_domain], app=app)
    try:
        # The file names stay when a certificate is replaced: reload so nginx reads the new one.
        proxy.apply_change(context, [app], force=True)
    except BaseException:
        certs.store(settings, app, old)
        context.state.set_property(PLUGIN, "domains", old_domains, app=app)
        raise


def _binary_stdin() -> BinaryIO:
    """The bytes of stdin (a stream without ``buffer``, as tests pass, is binary already)."""
    return sys.stdin.buffer if hasattr(sys.stdin, "buffer") else cast(BinaryIO, sys.stdin)


@access.app_command()
@click.command("certs:add")
@click.argument("app")
@click.argument("crt", required=False)
@click.argument("key", required=False)
@pass_context
def certs_add(context: Context, app: str, crt: str | None, key: str | None) -> None:
    """Add a certificate: certs:add APP CRT KEY, or a tar of server.crt + server.key on stdin."""
    context.state.require_app(app)
    if crt or key:
        if not (crt and key):
            raise click.UsageError("give both CRT and KEY, or neither (a tar archive on stdin)")
        if context.via_ssh:
            raise SkiffError(
                "over SSH, send the certificate as a tar archive on stdin: "
                "tar c server.crt server.key | ssh skiff@HOST certs:add APP"
            )
        pair = certs.read_file(crt, "certificate"), certs.read_file(key, "key")
    else:
        if sys.stdin.isatty():
            raise click.UsageError("give CRT and KEY, or pipe a tar archive of server.crt and server.key")
        pair = certs.read_tarball(_binary_stdin())
    context.output.step(f"Adding a certificate to {app}")
    install(context, app, pair)


@access.app_command()
@click.command("certs:update")
@click.argument("app")
@click.argument("crt", required=False)
@click.argument("key", required=False)
@click.pass_context
def certs_update(ctx: click.Context, app: str, crt: str | None, key: str | None) -> None:
    """Replace APP's certificate (same arguments as certs:add)."""
    ctx.invoke(certs_add, app=app, crt=crt, key=key)


@access.app_command()
@click.command("certs:generate")
@click.argument("app")
@click.argument("domain")
@pass_context
def certs_generate(context: Context, app: str, domain: str) -> None:
    """Generate a self-signed certificate for DOMAIN (added to APP's domains)."""
    context.state.require_app(app)
    domain = names.domain(domain)
    context.output.step(f"Generating a self-signed certificate for {domain}")
    pair = certs.generate(load(context), domain)
    install(context, app, pair, extra_domain=domain)


@access.app_command()
@click.command("certs:remove")
@click.argument("app")
@pass_context
def certs_remove(context: Context, app: str) -> None:
    """Remove APP's certificate; the app answers on HTTP again."""
    context.state.require_app(app)
    if certs.current(load(context), app) is None:
        raise SkiffError(f"app {app} has no certificate")
    context.output.step(f"Removing the certificate of {app}")
    install(context, app, None)


@access.app_command()
@click.command("certs:show")
@click.argument("app")
@pass_context
def certs_show(context: Context, app: str) -> None:
    """Print APP's certificate (PEM; never the key)."""
    context.state.require_app(app)
    crt, _ = load(context).cert_files(app)
    if not crt.exists():
        raise SkiffError(f"app {app} has no certificate")
    click.echo(crt.read_text().rstrip())


def report_fields(context: Context, app: str) -> dict[str, Any]:
    settings = load(context)
    paths = proxy.cert_paths(settings, app)
    if paths is None:
        return {"enabled": False}
    return {"enabled": True, **certs.describe(paths[0])}


@access.app_command()
@click.command("certs:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def certs_report(context: Context, app: str, fmt: str) -> None:
    """Show APP's certificate: names, issuer, expiry."""
    context.state.require_app(app)
    print_fields(context, f"{app} ssl information", report_fields(context, app), fmt)


COMMANDS: list[click.Command] = [certs_add, certs_update, certs_generate, certs_remove, certs_show, certs_report]
