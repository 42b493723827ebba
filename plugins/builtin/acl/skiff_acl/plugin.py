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

from typing import Any

import click

from skiff import access, hookimpl
from skiff.context import Context
from skiff.settings import Namespace, Setting

from . import PLUGIN

KEYS = "keys"
CREATE_APPS = "deployer-create-apps"


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


def app_keys(context: Context, app: str) -> list[str]:
    return list(context.state.get_property(PLUGIN, KEYS, app=app, default=[]))


def store_keys(context: Context, app: str, names: list[str]) -> None:
    if names:
        context.state.set_property(PLUGIN, KEYS, sorted(set(names)), app=app)
    else:
        context.state.delete_property(PLUGIN, KEYS, app=app)


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting(
            CREATE_APPS,
            type=bool,
            default=False,
            scope="global",
            level="admin",
            help="a deployer may create an app by pushing to it",
        ),
    ),
    commands=("set",),  # the access lists are shown by acl:list and apps:report
)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [SETTINGS]


def deployers_create_apps(context: Context) -> bool:
    return bool(SETTINGS.get(context.state, CREATE_APPS))


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
        store_keys(context, app, [*app_keys(context, app), key])


@hookimpl(trylast=True)
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    return {"acl": {"keys": app_keys(context, app)}}


# -- commands -------------------------------------------------------------------------------
