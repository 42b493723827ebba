"""domains:* commands (Dokku's names): an app's own names and the global ones."""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError

from .. import names, proxy
from ..settings import PLUGIN


def changing(context: Context, apps: list[str], keys: list[tuple[str, str]], change: Callable[[], None]) -> None:
    """Run ``change`` (property writes), then rebuild ``apps``; undo the writes if nginx refuses."""
    state = context.state
    saved = [(key, app, state.get_property(PLUGIN, key, app=app)) for key, app in keys]
    change()
    try:
        proxy.apply_change(context, apps)
    except BaseException:
        for key, app, value in saved:
            if value is None:
                state.delete_property(PLUGIN, key, app=app)
            else:
                state.set_property(PLUGIN, key, value, app=app)
        raise


def check_unique(context: Context, app: str, domains: list[str]) -> None:
    """Refuse names another app answers to (nginx would silently ignore the second)."""
    for other in context.state.list_apps():
        if other != app:
            taken = set(domains) & set(proxy.app_domains(context, other))
            if taken:
                raise SkiffError(f"{', '.join(sorted(taken))} already belongs to app {other}")


def _set_own(context: Context, app: str, domains: list[str]) -> None:
    check_unique(context, app, domains)
    changing(
        context, [app], [("domains", app)], lambda: context.state.set_property(PLUGIN, "domains", domains, app=app)
    )


def _set_global(context: Context, domains: list[str]) -> None:
    changing(
        context,
        context.state.list_apps(),
        [("global-domains", "")],
        lambda: context.state.set_property(PLUGIN, "global-domains", domains),
    )


@access.app_command()
@click.command("domains:add")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_add(context: Context, app: str, domains: tuple[str, ...]) -> None:
    """Add DOMAINS to APP."""
    context.state.require_app(app)
    new = names.domains(domains)
    current = proxy.own_domains(context, app)
    context.output.step(f"Adding {', '.join(new)} to {app}")
    _set_own(context, app, current + [d for d in new if d not in current])


@access.app_command()
@click.command("domains:set")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_set(context: Context, app: str, domains: tuple[str, ...]) -> None:
    """Replace APP's domains with DOMAINS."""
    context.state.require_app(app)
    new = names.domains(domains)
    context.output.step(f"Setting domains of {app}: {', '.join(new)}")
    _set_own(context, app, new)


@access.app_command()
@click.command("domains:remove")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_remove(context: Context, app: str, domains: tuple[str, ...]) -> None:
    """Remove DOMAINS from APP."""
    context.state.require_app(app)
    gone = names.domains(domains)
    current = proxy.own_domains(context, app)
    missing = [d for d in gone if d not in current]
    if missing:
        raise SkiffError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a domain of {app}")
    context.output.step(f"Removing {', '.join(gone)} from {app}")
    _set_own(context, app, [d for d in current if d not in gone])


@access.app_command()
@click.command("domains:clear")
@click.argument("app")
@pass_context
def domains_clear(context: Context, app: str) -> None:
    """Remove every domain of APP (global ones still apply)."""
    context.state.require_app(app)
    context.output.step(f"Clearing domains of {app}")
    _set_own(context, app, [])


def switch(context: Context, app: str, key: str, what: str, enabled: bool) -> None:
    """Turn the app's boolean property ``key`` on or off and rebuild its config (undone if nginx refuses)."""
    context.state.require_app(app)
    context.output.step(f"{'Enabling' if enabled else 'Disabling'} {what} of {app}")
    store = functools.partial(context.state.set_property, PLUGIN, key, enabled, app=app)
    changing(context, [app], [(key, app)], store)


@access.app_command()
@click.command("domains:enable")
@click.argument("app")
@pass_context
def domains_enable(context: Context, app: str) -> None:
    """Serve APP on its domains again."""
    switch(context, app, "vhosts", "domains", True)


@access.app_command()
@click.command("domains:disable")
@click.argument("app")
@pass_context
def domains_disable(context: Context, app: str) -> None:
    """Serve APP on a port of its own instead of its domains."""
    switch(context, app, "vhosts", "domains", False)


@access.admin_command
@click.command("domains:add-global")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_add_global(context: Context, domains: tuple[str, ...]) -> None:
    """Add global DOMAINS: every app answers on APP.DOMAIN."""
    new = names.domains(domains)
    current = proxy.global_domains(context)
    context.output.step(f"Adding global domains {', '.join(new)}")
    _set_global(context, current + [d for d in new if d not in current])


@access.admin_command
@click.command("domains:set-global")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_set_global(context: Context, domains: tuple[str, ...]) -> None:
    """Replace the global domains: every app answers on APP.DOMAIN."""
    new = names.domains(domains)
    context.output.step(f"Setting global domains: {', '.join(new)}")
    _set_global(context, new)


@access.admin_command
@click.command("domains:remove-global")
@click.argument("domains", nargs=-1, required=True)
@pass_context
def domains_remove_global(context: Context, domains: tuple[str, ...]) -> None:
    """Remove global DOMAINS."""
    gone = names.domains(domains)
    current = proxy.global_domains(context)
    missing = [d for d in gone if d not in current]
    if missing:
        raise SkiffError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a global domain")
    context.output.step(f"Removing global domains {', '.join(gone)}")
    _set_global(context, [d for d in current if d not in gone])


@access.admin_command
@click.command("domains:clear-global")
@pass_context
def domains_clear_global(context: Context) -> None:
    """Remove every global domain."""
    context.output.step("Clearing global domains")
    _set_global(context, [])


def domains_report_fields(context: Context, app: str) -> dict[str, Any]:
    return {
        "enabled": proxy.vhosts_enabled(context, app),
        "app_domains": proxy.own_domains(context, app),
        "global_domains": proxy.global_domains(context),
        "vhosts": proxy.app_domains(context, app),
    }


@access.app_command()
@click.command("domains:report")
@click.argument("app", required=False)
@click.option("--global", "is_global", is_flag=True, help="Only the global domains.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def domains_report(context: Context, app: str | None, is_global: bool, fmt: str) -> None:
    """Show APP's domains (or the global ones)."""
    if is_global or not app:
        fields: dict[str, Any] = {"global_domains": proxy.global_domains(context)}
        title = "Global domains"
    else:
        context.state.require_app(app)
        fields = domains_report_fields(context, app)
        title = f"{app} domains information"
    print_fields(context, title, fields, fmt)


def print_fields(context: Context, title: str, fields: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(fields, indent=2, sort_keys=True, default=str))
        return
    context.output.fields(title, fields)


COMMANDS: list[click.Command] = [
    domains_add,
    domains_set,
    domains_remove,
    domains_clear,
    domains_enable,
    domains_disable,
    domains_add_global,
    domains_set_global,
    domains_remove_global,
    domains_clear_global,
    domains_report,
]
