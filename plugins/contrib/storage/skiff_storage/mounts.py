"""An app's mounts: parsing ``HOST_PATH:CONTAINER_PATH``, who may mount what, the binds.

Stored as the app's property ``mounts`` (a list of ``{"host", "container",
"readonly", "root"}``), so a rename moves them with the app and a destroy
forgets them. ``root`` names the app root confirmed a host path for (from a
root shell): a mount outside ``SKIFF_ROOT/storage`` applies only when that mark
names the app, so a copy of the property to another app applies nothing.

Every mount is checked again when a container is created (:func:`binds`): a
storage path must still be a storage directory itself, without a symlink on
the way.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Callable

from skiff import access
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from . import PLUGIN, directories

KEY = "mounts"
#: characters of a path in a mount (``:`` and ``,`` separate docker's bind fields)
PATH = re.compile(r"/[A-Za-z0-9._@+=/-]*")


@dataclass(frozen=True)
class Mount:
    host: str
    container: str
    readonly: bool = False
    root: str | None = None  # the app root confirmed this host path for

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.readonly else "")

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "container": self.container, "readonly": self.readonly, "root": self.root}


def _clean_path(value: str, what: str) -> str:
    if not PATH.fullmatch(value or ""):
        raise ValidationError(f"invalid {what} {value!r}: an absolute path of letters, digits and ._@+=/-")
    if ".." in value.split("/"):
        raise ValidationError(f"invalid {what} {value!r}: '..' is not allowed")
    normal = posixpath.normpath(value)
    if normal == "/":
        raise ValidationError(f"invalid {what} {value!r}: not the root directory")
    return normal


def parse(spec: str) -> tuple[str, str, bool]:
    """``HOST_PATH:CONTAINER_PATH[:ro]`` -> (host, container, readonly), normalised."""
    parts = (spec or "").split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        readonly = parts[2] == "ro"
        parts = parts[:2]
    else:
        readonly = False
    if len(parts) != 2:
        raise ValidationError(f"invalid mount {spec!r}: use HOST_PATH:CONTAINER_PATH")
    return _clean_path(parts[0], "host path"), _clean_path(parts[1], "container path"), readonly


def storage_name(context: Context, host: str) -> str | None:
    """The storage directory ``host`` lies in (``SKIFF_ROOT/storage/NAME[/...]``), or ``None``."""
    root = str(directories.storage_root(context))
    if host == root or not host.startswith(root + "/"):
        return None
    return host[len(root) + 1 :].split("/", 1)[0]


def check_storage_path(context: Context, host: str, name: str) -> directories.Directory:
    """``host`` is exactly an existing storage directory and reaches nothing else.

    Not a path inside one: the app owns what is inside and could swap a
    subdirectory for a symlink between this check and the engine's bind, which
    follows it on the host. The directory itself sits in ``SKIFF_ROOT/storage``,
    which only Skiff writes. No component may be a symlink: the resolved path
    must be the path itself.
    """
    top = directories.path_of(context, name)
    if host != str(top):
        raise SkiffError(
            f"{host} is inside the storage directory {name}: mount the directory itself ({top}); "
            "what is inside belongs to the app"
        )
    record = directories.load(context, name)
    if record is None:
        raise SkiffError(f"{host} is not a storage directory (create it with storage:ensure-directory {name})")
    expected = os.path.join(os.path.realpath(directories.storage_root(context)), name)
    if os.path.realpath(host) != expected or top.is_symlink():
        raise SkiffError(f"{host} leads out of its storage directory through a symlink")
    if not top.is_dir():
        raise SkiffError(f"{host} does not exist or is not a directory")
    return record


def authorize(context: Context, app: str, host: str) -> str | None:
    """Check that this session may mount ``host`` into ``app``; return root's mark (or ``None``).

    Storage directories: a deployer key only those of apps in its access list; an
    admin key and the server's shells any. Any other host path: root in a shell on
    the server only (never over SSH, whatever the key).
    """
    name = storage_name(context, host)
    if name is None:
        if not context.from_root_shell:
            raise SkiffError(
                f"{host} is not under {directories.storage_root(context)}: only root on the server may mount "
                "other host paths (storage:mount from a root shell)"
            )
        if not os.path.isdir(host):
            raise SkiffError(f"{host} does not exist or is not a directory (Skiff never creates host paths)")
        return app
    record = check_storage_path(context, host, name)
    key = context.ssh_key_name if context.via_ssh else None
    if key is not None and access.key_role(context, key) != "admin":
        owner = record.app
        if owner is None or not access.may_access(context, key, owner):
            whose = f"app {owner}" if owner else f"the destroyed app {record.destroyed_app}"
            raise SkiffError(f"key {key!r} (deployer) may not mount {name}: it belongs to {whose}")
    return None


def stored(context: Context, app: str) -> list[Mount]:
    raw = context.state.get_property(PLUGIN, KEY, app=app) or []
    mounts = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("host"), str) and isinstance(entry.get("container"), str):
            mounts.append(
                Mount(entry["host"], entry["container"], bool(entry.get("readonly")), entry.get("root") or None)
            )
    return mounts


def store(context: Context, app: str, mounts: list[Mount]) -> None:
    if mounts:
        context.state.set_property(PLUGIN, KEY, [m.as_json() for m in mounts], app=app)
    else:
        context.state.delete_property(PLUGIN, KEY, app=app)


def add(context: Context, app: str, spec: str) -> Mount:
    host, container, readonly = parse(spec)
    mark = authorize(context, app, host)
    mounts = stored(context, app)
    for existing in mounts:
        if existing.container == container:
            raise SkiffError(f"{app} already mounts {existing.host} at {container}")
    mount = Mount(host, container, readonly, mark)
    store(context, app, [*mounts, mount])
    return mount


def remove(context: Context, app: str, spec: str) -> Mount:
    host, container, readonly = parse(spec)
    mounts = stored(context, app)
    keep = [m for m in mounts if (m.host, m.container) != (host, container)]
    if len(keep) == len(mounts):
        raise SkiffError(f"{host}:{container} is not mounted in {app}")
    store(context, app, keep)
    return next(m for m in mounts if (m.host, m.container) == (host, container))


def binds(context: Context, app: str, warn: Callable[[str], None]) -> list[str]:
    """The ``-v`` binds of ``app``'s containers, each checked again now; what fails is left out."""
    result = []
    for mount in stored(context, app):
        name = storage_name(context, mount.host)
        try:
            if name is None:
                if mount.root != app:
                    raise SkiffError("host paths need root's confirmation (storage:mount from a root shell)")
            else:
                check_storage_path(context, mount.host, name)
        except (SkiffError, ValidationError) as exc:
            warn(f"storage: {mount.host}:{mount.container} is not mounted: {exc}")
            continue
        result.append(mount.spec)
    return result


def renamed(context: Context, old: str, new: str) -> None:
    """The mounts moved with the app's properties; root's marks follow the app's new name."""
    mounts = stored(context, new)
    moved = [Mount(m.host, m.container, m.readonly, new if m.root == old else m.root) for m in mounts]
    if moved != mounts:
        store(context, new, moved)
