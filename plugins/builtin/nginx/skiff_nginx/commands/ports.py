"""ports:* commands: ``SCHEME:HOST_PORT:CONTAINER_PORT`` mappings of an app."""

from __future__ import annotations

import re
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from .. import names, proxy
from ..names import Mapping
from ..settings import PLUGIN, Settings, load
from .domains import changing, print_fields

LISTEN = re.compile(r"^\s*listen\s+(?:\S+:)?(\d+)\b", re.MULTILINE)


def nginx_ports(settings: Settings) -> set[int]:
    """Ports the configs in skiff's directory already listen on."""
    found: set[int] = {settings.http_port, settings.https_port}
    if settings.conf_dir.is_dir():
        for path in settings.conf_dir.glob("*.conf"):
            found.update(int(p) for p in LISTEN.findall(path.read_text()))
    return found


def _check_free(context: Context, new: list[Mapping]) -> None:
    settings = load(context)
    used = nginx_ports(settings)
    for m in new:
        if context.via_ssh and m.host_port < 1024 and m.host_port not in (settings.http_port, settings.https_port):
            raise SkiffError(
                f"host port {m.host_port} is privileged; over SSH only {settings.http_port}, "
                f"{settings.https_port} and ports from 1024 up may be mapped"
            )
        if m.host_port not in used and not proxy._port_free(settings.listen_addresses[0], m.host_port):
            raise SkiffError(f"port {m.host_port} is in use by another program; choose another host port")


def effective(context: Context, app: str) -> list[Mapping]:
    settings = load(context)
    meta = proxy.current_meta(context, app) or {}
    return proxy.mappings(context, app, meta, settings, proxy.cert_paths(settings, app) is not None, allocate=False)


def _store(context: Context, app: str, maps: list[Mapping]) -> None:
    _check_free(context, maps)
    values = [str(m) for m in sorted(set(maps))]
    changing(context, [app], [("ports", app)], lambda: context.state.set_property(PLUGIN, "ports", values, app=app))


@access.app_command()
@click.command("ports:list")
@click.argument("app")
@pass_context
def ports_list(context: Context, app: str) -> None:
    """List APP's port mappings (defaults when none is set)."""
    context.state.require_app(app)
    context.output.banner(f"{app} port mappings")
    click.echo(f"{'SCHEME':<8} {'HOST PORT':<10} CONTAINER PORT")
    for m in effective(context, app):
        click.echo(f"{m.scheme:<8} {m.host_port:<10} {m.container_port}")


@access.app_command()
@click.command("ports:add")
@click.argument("app")
@click.argument("mappings", nargs=-1, required=True)
@pass_context
def ports_add(context: Context, app: str, mappings: tuple[str, ...]) -> None:
    """Add mappings, e.g. ports:add APP http:8080:5000."""
    context.state.require_app(app)
    new = [names.mapping(m) for m in mappings]
    current = proxy.explicit_mappings(context, app)
    context.output.step(f"Adding port mappings {' '.join(map(str, new))} to {app}")
    _store(context, app, current + new)


@access.app_command()
@click.command("ports:set")
@click.argument("app")
@click.argument("mappings", nargs=-1, required=True)
@pass_context
def ports_set(context: Context, app: str, mappings: tuple[str, ...]) -> None:
    """Replace APP's mappings, e.g. ports:set APP http:80:5000 https:443:5000."""
    context.state.require_app(app)
    new = [names.mapping(m) for m in mappings]
    context.output.step(f"Setting port mappings of {app}: {' '.join(map(str, new))}")
    _store(context, app, new)


@access.app_command()
@click.command("ports:remove")
@click.argument("app")
@click.argument("mappings", nargs=-1, required=True)
@pass_context
def ports_remove(context: Context, app: str, mappings: tuple[str, ...]) -> None:
    """Remove mappings (SCHEME:HOST:CONTAINER, or a HOST port for every mapping on it)."""
    context.state.require_app(app)
    current = proxy.explicit_mappings(context, app)
    keep = list(current)
    for text in mappings:
        if text.isascii() and text.isdigit():
            port = names.port(text)
            gone = [m for m in keep if m.host_port == port]
        else:
            target = names.mapping(text)
            gone = [m for m in keep if m == target]
        if not gone:
            raise ValidationError(f"{text} is not a port mapping of {app} (see ports:list)")
        keep = [m for m in keep if m not in gone]
    context.output.step(f"Removing port mappings {' '.join(mappings)} from {app}")
    _store(context, app, keep)


@access.app_command()
@click.command("ports:clear")
@click.argument("app")
@pass_context
def ports_clear(context: Context, app: str) -> None:
    """Forget APP's mappings; the defaults apply again."""
    context.state.require_app(app)
    context.output.step(f"Clearing port mappings of {app}")
    changing(context, [app], [("ports", app)], lambda: context.state.delete_property(PLUGIN, "ports", app=app))


def report_fields(context: Context, app: str) -> dict[str, Any]:
    explicit = proxy.explicit_mappings(context, app)
    return {
        "map": [str(m) for m in effective(context, app)],
        "map_detected": not explicit,
        "auto_port": proxy.prop(context, "auto-port", app),
    }


@access.app_command()
@click.command("ports:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def ports_report(context: Context, app: str, fmt: str) -> None:
    """Show APP's port mappings and whether they are the defaults."""
    context.state.require_app(app)
    print_fields(context, f"{app} ports information", report_fields(context, app), fmt)


COMMANDS: list[click.Command] = [ports_list, ports_add, ports_set, ports_remove, ports_clear, ports_report]
