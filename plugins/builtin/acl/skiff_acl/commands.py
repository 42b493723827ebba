"""The acl plugin's commands: acl:add, acl:remove, acl:list (acl:set comes from its declared settings)."""

from __future__ import annotations

import json
import re

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, ValidationError

from .plugin import app_keys, store_keys

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # the names ssh-keys accepts


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


COMMANDS: list[click.Command] = [acl_add, acl_remove, acl_list]  # acl:set is generated (skiff_settings)
