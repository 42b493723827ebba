"""The ssh-keys plugin's commands: ssh-keys:add, ssh-keys:list, ssh-keys:remove, ssh-keys:set-role, ssh-keys:set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

import click

from skiff import access
from skiff.cli import local_only, pass_context
from skiff.context import DEFAULT_ROOT, Context
from skiff.errors import NotFound, SkiffError
from skiff.locks import file_lock, lock_path

from . import PLUGIN, keys
from .plugin import PATH_PROPERTY, role_property, settings_namespace, stored_role

DEFAULT_ROLE = "deployer"


role_option = click.option(
    "--role",
    type=click.Choice(access.ROLES),
    default=DEFAULT_ROLE,
    show_default=True,
    help="admin: every SSH command; deployer: only the apps whose access list names it.",
)


def authorized_keys_path(context: Context) -> Path:
    """``$SKIFF_AUTHORIZED_KEYS``, else the global setting, else ``~skiff/.ssh/authorized_keys``."""
    if not (context.root / "skiff.db").exists():  # nothing stored yet: do not create the store here
        return Path(os.environ.get(keys.AUTHORIZED_KEYS_ENV) or keys.default_path())
    return Path(settings_namespace().get(context.state, PATH_PROPERTY) or keys.default_path())


def _lock(context: Context):
    return file_lock(lock_path(context.root, "ssh-keys"), 60)


def _root_for_keys(context: Context) -> Path | None:
    """Write ``SKIFF_ROOT`` into the forced command unless it is the default."""
    root = context.root.resolve()
    return None if str(root) == DEFAULT_ROOT else root


@local_only
@click.command("ssh-keys:add")
@click.argument("name")
@click.argument("keyfile", required=False)
@click.option("--no-pty", is_flag=True, help="Do not allow a terminal for this key (ssh -t).")
@role_option
@pass_context
def ssh_keys_add(context: Context, name: str, keyfile: str | None, no_pty: bool, role: str) -> None:
    """Allow a public key to push and run commands: ssh-keys:add NAME [KEYFILE|-] [--role admin|deployer].

    A deployer (the default) may push to and run app commands on the apps
    whose access list names it (acl:add APP NAME); an admin may run every
    SSH command.
    """
    keys.validate_name(name)
    if keyfile in (None, "-"):
        if keyfile is None and sys.stdin.isatty():
            raise SkiffError("give a KEYFILE, or pipe the public key on stdin")
        text = sys.stdin.read()
    else:
        try:
            text = Path(keyfile).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SkiffError(f"cannot read {keyfile}: {getattr(exc, 'strerror', None) or exc}") from exc
    key = keys.parse_public_key(text)
    path = authorized_keys_path(context)
    options = "restrict" if no_pty else keys.DEFAULT_OPTIONS
    line = keys.key_line(name, key, _root_for_keys(context), options)
    with _lock(context):
        lines = keys.read_lines(path)
        for existing in keys.skiff_keys(lines):
            if existing.name == name:
                raise SkiffError(f"a key named {name} already exists; remove it first (ssh-keys:remove {name})")
            if existing.fingerprint == key.fingerprint or existing.blob == key.blob:
                raise SkiffError(f"this key is already added as {existing.name}")
        for other in lines:
            if keys.parse_line(other) is None and key.blob in keys.line_blobs(other):
                raise SkiffError(f"this key is already in {path} on a line Skiff did not write; remove it there first")
        # the role first: a key line without a stored role would be an admin
        context.state.set_property(PLUGIN, role_property(name), role)
        try:
            keys.write_lines(path, [*lines, line])
        except BaseException:
            context.state.delete_property(PLUGIN, role_property(name))
            raise
    context.output.step(f"Added key {name} ({key.fingerprint}) as {role}")


@access.admin_command
@click.command("ssh-keys:list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_context
def ssh_keys_list(context: Context, fmt: str) -> None:
    """List the keys Skiff manages: name, role and fingerprint."""
    found = keys.skiff_keys(keys.read_lines(authorized_keys_path(context)))
    roles = {k.name: stored_role(context, k.name) for k in found}
    if fmt == "json":
        click.echo(
            json.dumps(
                [{"name": k.name, "role": roles[k.name], "fingerprint": k.fingerprint, "type": k.type} for k in found],
                indent=2,
            )
        )
        return
    if not found:
        context.output.info("no keys; add one with ssh-keys:add NAME KEYFILE")
        return
    width = max(len(k.name) for k in found)
    click.echo(f"{'NAME':<{width}}  {'ROLE':<8}  FINGERPRINT")
    for k in found:
        click.echo(f"{k.name:<{width}}  {roles[k.name]:<8}  {k.fingerprint}")


@local_only
@click.command("ssh-keys:remove")
@click.argument("name")
@pass_context
def ssh_keys_remove(context: Context, name: str) -> None:
    """Remove the key NAME (other lines of the file are kept)."""
    keys.validate_name(name)
    path = authorized_keys_path(context)
    with _lock(context):
        lines = keys.read_lines(path)
        kept = [line for line in lines if not _is_named(line, name)]
        if len(kept) == len(lines):
            raise NotFound(f"no key named {name}; see ssh-keys:list")
        keys.write_lines(path, kept)
        context.state.delete_property(PLUGIN, role_property(name))
    context.output.step(f"Removed key {name}")


@local_only
@click.command("ssh-keys:set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(access.ROLES))
@pass_context
def ssh_keys_set_role(context: Context, name: str, role: str) -> None:
    """Make the key NAME an admin or a deployer: ssh-keys:set-role NAME admin|deployer."""
    keys.validate_name(name)
    with _lock(context):
        if not any(k.name == name for k in keys.skiff_keys(keys.read_lines(authorized_keys_path(context)))):
            raise NotFound(f"no key named {name}; see ssh-keys:list")
        context.state.set_property(PLUGIN, role_property(name), role)
    context.output.step(f"Key {name} is now {'an' if role == 'admin' else 'a'} {role}")


def _is_named(line: str, name: str) -> bool:
    key = keys.parse_line(line)
    return key is not None and key.name == name


@local_only
@click.command("ssh-keys:set")
@click.argument("key", type=click.Choice([PATH_PROPERTY]))
@click.argument("value", required=False)
@pass_context
def ssh_keys_set(context: Context, key: str, value: str | None) -> None:
    """Set where keys are written: ssh-keys:set authorized-keys-file [PATH] (no PATH: default)."""
    stored = settings_namespace().set(context, key, value)
    if stored:
        context.output.step(f"Keys are written to {stored}")
    else:
        context.output.step("Keys are written to the default file (~skiff/.ssh/authorized_keys)")


COMMANDS: list[click.Command] = [ssh_keys_add, ssh_keys_list, ssh_keys_remove, ssh_keys_set, ssh_keys_set_role]


# -- whole-server backup (skiff_backup_parts) --------------------------------------------------


def backup_dump(context: Context, out: IO[bytes]) -> None:
    """The keys Skiff wrote into authorized_keys (their roles are in the state store)."""
    found = keys.skiff_keys(keys.read_lines(authorized_keys_path(context)))
    rows = [
        {"name": k.name, "type": k.type, "blob": k.blob, "fingerprint": k.fingerprint, "options": k.options}
        for k in found
    ]
    out.write(json.dumps(rows, indent=1).encode())


def backup_restore(context: Context, dump: IO[bytes] | None) -> None:
    """Write the backed-up keys that are missing into this server's authorized_keys."""
    try:
        rows = json.loads(dump.read()) if dump is not None else []
    except ValueError:
        raise SkiffError("the keys' dump is not JSON") from None
    wanted = []
    for row in rows if isinstance(rows, list) else []:
        name = keys.validate_name(str(row.get("name")))
        key = keys.PublicKey(str(row.get("type")), str(row.get("blob")), str(row.get("fingerprint")))
        options = str(row.get("options"))
        if not keys.KEY_TYPE.fullmatch(key.type) or not keys.KEY_BLOB.fullmatch(key.blob):
            raise SkiffError(f"the key {name} in the dump is not an OpenSSH public key")
        if options not in (keys.DEFAULT_OPTIONS, "restrict"):
            options = keys.DEFAULT_OPTIONS
        wanted.append((name, key, options))
    path = authorized_keys_path(context)
    with _lock(context):
        lines = keys.read_lines(path)
        present = keys.skiff_keys(lines)
        added = [
            keys.key_line(name, key, _root_for_keys(context), options)
            for name, key, options in wanted
            if not any(k.name == name or k.blob == key.blob for k in present)
        ]
        if added:
            keys.write_lines(path, [*lines, *added])
    context.output.info(f"{len(added)} of {len(wanted)} keys added to {path}")
