"""acl:add, acl:remove, acl:list, acl:set: which deployer keys may work on which app.

An app's access list is the property ``keys`` of this plugin on the app, so
``apps:destroy`` deletes it with the app's other properties and
``apps:rename`` moves it: an app created again under an old name starts with
an empty list. The global property ``deployer-create-apps`` (off by default)
lets a deployer create an app by pushing to it (or with ``apps:create``); the
creating key then joins the new app's list.

Admin keys are never asked about: the lists only limit deployers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from skiff import access, hookimpl
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError

PLUGIN = "acl"
KEYS = "keys"
CREATE_APPS = "deployer-create-apps"
SETTINGS = (CREATE_APPS,)
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # the names ssh-keys accepts
TRUE, FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    for command in (acl_add, acl_remove, acl_list, acl_set):
        cli.add_command(command)


def key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name or ""):
        raise ValidationError(f"invalid key name {name!r}: use letters, digits, '.', '_', '@' and '-'")
    return name


def app_keys(context: Context, app: str) -> list[str]:
    return list(context.state.get_property(PLUGIN, KEYS, app=app, default=[]))


def _store(context: Context, app: str, names: list[str]) -> None:
    if names:
        context.state.set_property(PLUGIN, KEYS, sorted(set(names)), app=app)
    else:
        context.state.delete_property(PLUGIN, KEYS, app=app)


def deployers_create_apps(context: Context) -> bool:
    return bool(context.state.get_property(PLUGIN, CREATE_APPS, default=False))


# -- hooks ----------------------------------------------------------------------------------


@hookimpl(trylast=True)
def skiff_app_access(context: Context, key: str, app: str, creating: bool) -> bool | None:
    if creating:
        return deployers_create_apps(context)
    return key in app_keys(context, app)


@hookimpl(trylast=True)
def skiff_app_created(context: Context, app: str) -> None:
    """A deployer that creates an app (over SSH) joins its list."""
    key = context.ssh_key_name
    if context.via_ssh and key and access.key_role(context, key) == "deployer":
        _store(context, app, [*app_keys(context, app), key])


@hookimpl(trylast=True)
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    return {"acl": {"keys": app_keys(context, app)}}


# -- commands -------------------------------------------------------------------------------


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
    _store(context, app, [*names, key])
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
    _store(context, app, [n for n in names if n != key])
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
