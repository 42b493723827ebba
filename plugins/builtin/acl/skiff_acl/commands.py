"""The acl plugin's commands: acl:add, acl:remove, acl:list, acl:set."""

from __future__ import annotations

import json
import re

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError

from . import PLUGIN
from .plugin import CREATE_APPS, app_keys, store_keys

SETTINGS = (CREATE_APPS,)
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # the names ssh-keys accepts
TRUE, FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name or ""):
        raise ValidationError(f"invalid key name {name!r}: use letters, digits, '.', '_', '@' and '-'")
    return name


@access.admin_command
@click.command("acl:add")
@click.argument("app")
@click.argument("key")
@pass_context
def acl_add(context: Context, app: str, key: str) -> None:
    """Let the deployer key KEY push to and run app commands on APP."""
    context.state.require_app(app)
    key_name(key)
    names = app_keys(context, app)
    if key in names:
        context.output.step(f"{key} is already in the access list of {app}")
        return
    store_keys(context, app, [*names, key])
    context.output.step(f"Added {key} to the access list of {app}")


@access.admin_command
@click.command("acl:remove")
@click.argument("app")
@click.argument("key")
@pass_context
def acl_remove(context: Context, app: str, key: str) -> None:
    """Take the key KEY off APP's access list."""
    context.state.require_app(app)
    key_name(key)
    names = app_keys(context, app)
    if key not in names:
        raise NotFound(f"{key} is not in the access list of {app}; see acl:list {app}")
    store_keys(context, app, [n for n in names if n != key])
    context.output.step(f"Removed {key} from the access list of {app}")


@access.app_command(app="app")
@click.command("acl:list")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def acl_list(context: Context, app: str, fmt: str) -> None:
    """List the deployer keys that may work on APP (admin keys may work on every app)."""
    context.state.require_app(app)
    names = app_keys(context, app)
    if fmt == "json":
        click.echo(json.dumps(names))
        return
    context.output.banner(f"{app} access list")
    for name in names:
        click.echo(name)


@access.admin_command
@click.command("acl:set")
@click.option("--global", "is_global", is_flag=True, help="The only scope of acl settings.")
@click.argument("key", type=click.Choice(SETTINGS))
@click.argument("value", required=False)
@pass_context
def acl_set(context: Context, is_global: bool, key: str, value: str | None) -> None:
    """Set an acl setting: acl:set --global deployer-create-apps true|false (no VALUE: default, false)."""
    if not is_global:
        raise click.UsageError("acl settings are global: acl:set --global KEY [VALUE]")
    if value is None:
        context.state.delete_property(PLUGIN, key)
        context.output.step(f"Unset {key} (deployers may not create apps)")
        return
    enabled = _parse_bool(value)
    context.state.set_property(PLUGIN, key, enabled)
    context.output.step(f"Set {key} to {json.dumps(enabled)}")


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise SkiffError(f"expected true or false, got {value!r}")


COMMANDS: list[click.Command] = [acl_add, acl_remove, acl_list, acl_set]
