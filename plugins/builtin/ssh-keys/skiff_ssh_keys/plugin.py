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

import functools
import os
from typing import TYPE_CHECKING

from skiff import access, hookimpl
from skiff.context import Context
from skiff.errors import ValidationError

from . import AUTHORIZED_KEYS_ENV, PLUGIN

if TYPE_CHECKING:  # pragma: no cover
    import click

    from skiff.contracts import BackupPart
    from skiff.settings import Namespace

# Every SSH command asks this plugin for the key's role (skiff_key_role): the module
# imports only what that needs. The key file code, the settings and the commands are
# imported when a hook that needs them is called.

LEGACY_ROLE = "admin"  # keys added before roles existed
PATH_PROPERTY = "authorized-keys-file"


def _absolute(value: str) -> str:
    if not os.path.isabs(value) or any(c in value for c in "\n\r\x00"):
        raise ValidationError("give an absolute path")
    return value


@functools.cache
def settings_namespace() -> Namespace:
    """The plugin's settings: ``ssh-keys:set authorized-keys-file PATH`` (no ``--global``: it has no other form)."""
    from skiff.settings import Namespace, Setting

    return Namespace(
        PLUGIN,
        (
            Setting(
                PATH_PROPERTY,
                type=_absolute,
                default="",
                scope="global",
                env=AUTHORIZED_KEYS_ENV,
                level="root",
                help="the authorized_keys file keys are written to (default ~skiff/.ssh/authorized_keys)",
            ),
        ),
        commands=(),
    )


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


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [settings_namespace()]


@hookimpl(trylast=True)
def skiff_key_role(context: Context, key: str) -> str | None:
    return stored_role(context, key)


@hookimpl(trylast=True)
def skiff_key_exists(context: Context, key: str) -> bool:
    """A line of authorized_keys that Skiff wrote names ``key``."""
    from . import keys
    from .commands import authorized_keys_path

    return any(k.name == key for k in keys.skiff_keys(keys.read_lines(authorized_keys_path(context))))


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The keys in authorized_keys (a host file, so a dump); restored before services and apps."""
    from skiff.contracts import BackupPart

    from .commands import backup_dump, backup_restore

    return [
        BackupPart(
            "ssh-keys:keys",
            "the SSH keys in authorized_keys",
            dump=lambda out: backup_dump(context, out),
            restore=lambda dump: backup_restore(context, dump),
            order=100,
        )
    ]
