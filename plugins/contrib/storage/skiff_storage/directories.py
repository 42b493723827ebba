"""Storage directories under ``SKIFF_ROOT/storage``: names, owners, creation, ownership of files.

A directory is named after the app it belongs to: ``APP`` or ``APP_SUFFIX``
(app names hold no ``_``, so ``cat_uploads`` is ``cat``'s and never
``cat-meow``'s). Its owner is recorded when it is created (global property
``dir:NAME`` of the plugin), so a rename hands it to the new name and a
destroyed app leaves it without an owner (the data stays).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff import contracts, validate
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from . import PLUGIN

ROOT_DIR = "storage"
SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
PREFIX = "dir:"
#: Dokku's --chown choices -> uid (= gid); ``None`` stands for the stack's user (contracts.APP_UID)
OWNERS: dict[str, int] = {"heroku": 1000, "herokuish": 32767, "paketo": 2000, "root": 0}


@dataclass
class Directory:
    """What the store knows of one storage directory."""

    name: str
    app: str | None  # None: its app was destroyed; the data stays
    uid: int
    created: float
    destroyed_app: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"app": self.app, "uid": self.uid, "created": self.created, "destroyed_app": self.destroyed_app}


def storage_root(context: Context) -> Path:
    """``SKIFF_ROOT/storage``, created on first use."""
    path = context.path(ROOT_DIR)
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def app_of_name(name: str) -> str:
    """The app a directory name belongs to: ``APP`` or ``APP_SUFFIX``; raise on anything else."""
    app, sep, suffix = name.partition("_")
    try:
        validate.app_name(app)
    except ValidationError:
        raise ValidationError(
            f"invalid storage directory name {name!r}: use APP or APP_SUFFIX (the app it belongs to first)"
        ) from None
    if sep and not SUFFIX.fullmatch(suffix):
        raise ValidationError(
            f"invalid storage directory name {name!r}: the part after '_' takes letters, digits, '.' and '-'"
        )
    return app


def resolve_owner(name: str) -> str:
    """For the access check of ``storage:ensure-directory NAME``: the app NAME is named after."""
    try:
        return app_of_name(name)
    except ValidationError:
        return name  # not an app name: the check refuses it (no such app), the command says why


def uid_of(choice: str | None) -> int:
    if choice is None:
        return contracts.APP_UID
    return OWNERS[choice]


def load(context: Context, name: str) -> Directory | None:
    raw = context.state.get_property(PLUGIN, PREFIX + name)
    if not isinstance(raw, dict):
        return None
    return Directory(
        name,
        raw.get("app"),
        int(raw.get("uid", contracts.APP_UID)),
        float(raw.get("created", 0)),
        raw.get("destroyed_app"),
    )


def save(context: Context, directory: Directory) -> None:
    context.state.set_property(PLUGIN, PREFIX + directory.name, directory.as_json())


def all_directories(context: Context) -> list[Directory]:
    found = []
    for key in context.state.properties(PLUGIN):
        if key.startswith(PREFIX):
            directory = load(context, key[len(PREFIX) :])
            if directory is not None:
                found.append(directory)
    return sorted(found, key=lambda d: d.name)


def owned_by(context: Context, app: str) -> list[Directory]:
    return [d for d in all_directories(context) if d.app == app]


def path_of(context: Context, name: str) -> Path:
    return storage_root(context) / name


def ensure(context: Context, name: str, owner: str | None, *, adopt: bool) -> tuple[Directory, bool]:
    """Create directory ``name`` for its app (or take the existing one); chown it.

    Returns the record and whether the directory was created. A directory of
    another app is refused; one left by a destroyed app is taken over only
    when ``adopt`` (admin keys and root).
    """
    app = app_of_name(name)
    context.state.require_app(app)
    uid = uid_of(owner)
    path = path_of(context, name)
    record = load(context, name)
    if record is not None and record.app not in (None, app):
        raise SkiffError(f"storage directory {name} belongs to app {record.app}")
    if record is not None and record.app is None and not adopt:
        raise SkiffError(
            f"storage directory {name} was left by the destroyed app {record.destroyed_app}: "
            "an admin key or root may take it over"
        )
    if record is None and (path.exists() or path.is_symlink()):
        raise SkiffError(f"{path} exists but is not a storage directory Skiff created; move it away first")
    created = not path.exists()
    if created:
        path.mkdir(mode=0o755)
    elif path.is_symlink() or not path.is_dir():
        raise SkiffError(f"storage directory {name} is not a directory (a symlink?); nothing changed")
    change_owner(path, uid, context.state)
    directory = Directory(name, app, uid, record.created if record else time.time())
    save(context, directory)
    return directory, created


def change_owner(path: Path, uid: int, state: Any = None) -> None:
    """Give ``path`` and everything in it to ``uid:uid``, never following a symlink.

    As root, in this process (``lchown`` of each entry, walking without following
    links); as the service account, which may not chown, in a short-lived container
    of the stack image that sees only this directory and runs ``chown -R -P -h``.
    """
    if os.geteuid() == 0:
        chown_tree(path, uid)
    else:
        chown_in_container(path, uid, state=state)


def chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    for top, dirs, files in os.walk(path, followlinks=False):
        for entry in dirs + files:
            os.chown(os.path.join(top, entry), uid, uid, follow_symlinks=False)


def chown_in_container(path: Path, uid: int, image: str | None = None, state: Any = None) -> None:
    from skiff import dockerclient

    c = dockerclient.client(120)
    image = image or (contracts.stack_image(state) if state is not None else contracts.DEFAULT_STACK_IMAGE)
    container = c.containers.create(
        image,
        ["chown", "-R", "-P", "-h", f"{uid}:{uid}", "/storage"],
        user="0",
        network_mode="none",
        volumes=[f"{path}:/storage"],
        labels={"skiff.role": "storage-chown"},
    )
    try:
        container.start()
        status = int(container.wait().get("StatusCode", 1))
        if status != 0:
            output = container.logs().decode("utf-8", "replace").strip().splitlines()
            raise SkiffError(f"chown of {path} failed: {output[-1] if output else f'exit status {status}'}")
    finally:
        container.remove(force=True)
