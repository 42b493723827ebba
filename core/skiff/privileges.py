"""Which user a command runs as on an installed server.

``make install`` puts a wrapper at ``/usr/local/bin/skiff`` that sets
``SKIFF_USER`` (the service account, ``skiff``). When root runs it, every
command drops to that user before it touches the state store, the repositories
or the engine, except the few that need root itself (building the stack
image with debootstrap, installing plugins into the root-owned venv); those
are marked :func:`needs_root` and stay root. Over SSH every command already
runs as the service account, and ``needs_root`` commands are refused there.
"""

from __future__ import annotations

import os

import click

from .errors import SkiffError

USER_ENV = "SKIFF_USER"


def needs_root(command: click.Command) -> click.Command:
    """Mark a command as one that runs as root on the server (and never over SSH)."""
    command.skiff_needs_root = True  # type: ignore[attr-defined]
    command.skiff_local_only = True  # type: ignore[attr-defined]
    return command


def is_root_command(command: click.Command | None) -> bool:
    return bool(getattr(command, "skiff_needs_root", False))


def settle(command: click.Command | None, name: str) -> None:
    """Run ``command`` as the right user: keep root for root commands, else drop to ``SKIFF_USER``."""
    if is_root_command(command):
        if os.geteuid() != 0:
            raise SkiffError(f"{name} needs root: run it as root on the server (e.g. sudo skiff {name})")
        return
    user = os.environ.get(USER_ENV)
    if os.geteuid() == 0 and user:
        drop_to(user)


def drop_to(user: str) -> None:
    """Become ``user`` (its groups too, e.g. docker) for the rest of this process."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SkiffError(f"the service account {user!r} ({USER_ENV}) does not exist; run make install") from None
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    if not os.access(".", os.R_OK | os.X_OK):
        os.chdir("/")
