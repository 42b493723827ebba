"""ssh-keys:add, ssh-keys:list, ssh-keys:remove, ssh-keys:set, ssh-keys:set-role.

Adding, removing, roles and the settings are for a root shell on the server
(``local_only``): ``skiff ssh-command`` refuses them over SSH. Listing works
over SSH for admin keys.

Each key has a role, ``admin`` or ``deployer`` (the default of ``ssh-keys:add``),
kept in the state store as the property ``role:NAME`` of this plugin. A key
without a stored role was added before roles existed and keeps full rights:
it is an admin.
"""

from __future__ import annotations

import click

from skiff import access, hookimpl
from skiff.context import Context

from . import PLUGIN

LEGACY_ROLE = "admin"  # keys added before roles existed


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


def role_property(name: str) -> str:
    return f"role:{name}"


def stored_role(context: Context, name: str) -> str:
    """The key's role; a key without one (added before roles existed) is an admin."""
    if not (context.root / "skiff.db").exists():
        return LEGACY_ROLE
    role = context.state.get_property(PLUGIN, role_property(name))
    return role if role in access.ROLES else LEGACY_ROLE


@hookimpl(trylast=True)
def skiff_key_role(context: Context, key: str) -> str | None:
    return stored_role(context, key)
