"""The config plugin's commands: config:set, :unset, :clear, :get, :show, :keys, :export."""

from __future__ import annotations

import base64
import binascii
import json
import shlex

import click

from skiff import access, lifecycle, validate
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError
from skiff.state import GLOBAL

global_option = click.option("--global", "is_global", is_flag=True, help="The global config every app inherits.")


no_restart_option = click.option("--no-restart", is_flag=True, help="Store the change without a new release.")


def _target(context: Context, is_global: bool, args: tuple[str, ...]) -> tuple[str, list[str]]:
    """Split ``args`` into the scope (an app, or GLOBAL) and the rest."""
    if is_global:
        return GLOBAL, list(args)
    if not args:
        raise click.UsageError("missing APP (or --global)")
    app = context.state.require_app(args[0])
    return app, list(args[1:])


def parse_assignments(pairs: list[str], encoded: bool = False) -> dict[str, str]:
    """Parse ``KEY=VALUE`` arguments; values may contain anything, ``=`` included."""
    if not pairs:
        raise click.UsageError("give at least one KEY=VALUE")
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"expected KEY=VALUE, got {pair!r}")
        validate.config_key(key)
        if encoded:
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ValidationError(f"value of {key} is not valid base64-encoded UTF-8") from None
        values[key] = validate.config_value(key, value)
    return values


def _refuse_locked(context: Context, scope: str, no_restart: bool) -> None:
    """A change that would redeploy a locked app (apps:lock) is refused before anything is stored."""
    if scope != GLOBAL and not no_restart and context.state.current_release(scope) is not None:
        lifecycle.refuse_if_locked(context, scope)


def _apply(context: Context, scope: str, description: str, no_restart: bool) -> None:
    if scope == GLOBAL:
        context.output.step("Global config changed; apps see it on their next release")
        return
    if no_restart:
        context.output.step(f"Config of {scope} changed; it applies on the next release (--no-restart)")
        return
    if context.state.current_release(scope) is None:
        return
    lifecycle.redeploy(context, scope, description, build_kind="config")


@access.app_command(app="args")
@click.command("config:set", context_settings={"ignore_unknown_options": True})
@global_option
@no_restart_option
@click.option("--encoded", is_flag=True, help="Values are base64-encoded.")
@click.argument("args", nargs=-1, required=True)
@pass_context
def config_set(context: Context, is_global: bool, no_restart: bool, encoded: bool, args: tuple[str, ...]) -> None:
    """Set config vars: config:set [--no-restart] APP KEY=VALUE..."""
    scope, pairs = _target(context, is_global, args)
    values = parse_assignments(pairs, encoded)
    _refuse_locked(context, scope, no_restart)
    changed = context.state.set_config(scope, values)
    context.output.step("Setting config vars")
    for key in values:
        context.output.info(f"{key}: {'(changed)' if key in changed else '(unchanged)'}")
    if changed:
        _apply(context, scope, "Set " + ", ".join(sorted(changed)), no_restart)


@access.app_command(app="args")
@click.command("config:unset")
@global_option
@no_restart_option
@click.argument("args", nargs=-1, required=True)
@pass_context
def config_unset(context: Context, is_global: bool, no_restart: bool, args: tuple[str, ...]) -> None:
    """Unset config vars: config:unset [--no-restart] APP KEY..."""
    scope, keys = _target(context, is_global, args)
    if not keys:
        raise click.UsageError("give at least one KEY")
    for key in keys:
        validate.config_key(key)
    _refuse_locked(context, scope, no_restart)
    removed = context.state.unset_config(scope, keys)
    context.output.step("Unsetting config vars")
    for key in keys:
        context.output.info(f"{key}: {'(removed)' if key in removed else '(was not set)'}")
    if removed:
        _apply(context, scope, "Unset " + ", ".join(sorted(removed)), no_restart)


@access.app_command()
@click.command("config:clear")
@global_option
@no_restart_option
@click.argument("app", required=False)
@pass_context
def config_clear(context: Context, is_global: bool, no_restart: bool, app: str | None) -> None:
    """Remove every config var of APP (or --global)."""
    scope, _ = _target(context, is_global, (app,) if app else ())
    _refuse_locked(context, scope, no_restart)
    removed = context.state.clear_config(scope)
    context.output.step(f"Cleared {len(removed)} config vars")
    if removed:
        _apply(context, scope, "Clear config", no_restart)


@access.app_command(app="args")
@click.command("config:get")
@global_option
@click.option("--quoted", is_flag=True, help="Shell-quote the value.")
@click.argument("args", nargs=-1, required=True)
@pass_context
def config_get(context: Context, is_global: bool, quoted: bool, args: tuple[str, ...]) -> None:
    """Print one value verbatim: config:get APP KEY (exit 1 if unset)."""
    scope, rest = _target(context, is_global, args)
    if len(rest) != 1:
        raise click.UsageError("give exactly one KEY")
    key = validate.config_key(rest[0])
    config = context.state.get_config(scope)
    if key not in config:
        raise SkiffError(f"{key} is not set")
    click.echo(shlex.quote(config[key]) if quoted else config[key])


@access.app_command()
@click.command("config:show")
@global_option
@click.argument("app", required=False)
@pass_context
def config_show(context: Context, is_global: bool, app: str | None) -> None:
    """Show the config vars of APP (or --global)."""
    scope, _ = _target(context, is_global, (app,) if app else ())
    config = context.state.get_config(scope)
    context.output.banner(f"{scope or 'global'} env vars")
    width = max((len(k) for k in config), default=0) + 1
    for key, value in config.items():
        click.echo(f"{key + ':':<{width}}  {value}")


@access.app_command()
@click.command("config:keys")
@global_option
@click.argument("app", required=False)
@pass_context
def config_keys(context: Context, is_global: bool, app: str | None) -> None:
    """List the keys of APP's config (or --global)."""
    scope, _ = _target(context, is_global, (app,) if app else ())
    for key in context.state.get_config(scope):
        click.echo(key)


@access.app_command()
@click.command("config:export")
@global_option
@click.option("--format", "fmt", type=click.Choice(["exports", "envfile", "json", "shell"]), default="exports")
@click.argument("app", required=False)
@pass_context
def config_export(context: Context, is_global: bool, fmt: str, app: str | None) -> None:
    """Print APP's config for a shell (shell-quoted), an env file or JSON."""
    scope, _ = _target(context, is_global, (app,) if app else ())
    config = context.state.get_config(scope) if scope == GLOBAL else context.state.effective_config(scope)
    if fmt == "json":
        click.echo(json.dumps(config, indent=2, sort_keys=True))
    elif fmt == "shell":
        click.echo(" ".join(f"{k}={shlex.quote(v)}" for k, v in config.items()))
    elif fmt == "envfile":
        for key, value in config.items():
            if "\n" in value:
                raise SkiffError(f"{key} has a newline and cannot be written to an env file; use --format json")
            click.echo(f"{key}={value}")
    else:
        for key, value in config.items():
            click.echo(f"export {key}={shlex.quote(value)}")


COMMANDS: list[click.Command] = [
    config_set,
    config_unset,
    config_get,
    config_show,
    config_keys,
    config_export,
    config_clear,
]
