"""Whole-server backups: one gzipped tar of the state store, every plugin's files and dumps.

``state:backup DEST`` gathers the parts plugins declare (``skiff_backup_parts``): files
under ``SKIFF_ROOT`` (repositories, certificates, storage directories) and dumps (each
service's export). The archive holds::

    state/skiff.db        the state store (an online copy)
    root/<path>           each part's files, relative to SKIFF_ROOT
    dumps/<part name>     each part's dump
    manifest.json         format, schema, the parts, and every member's type, size and sha256

It is written to a temp file next to DEST (0600) and renamed, so DEST is either the old
file or a complete archive. ``state:restore ARCHIVE`` reads the whole archive first and
refuses it (one line, nothing written) unless every member is a plain file, directory or
inside-pointing symlink under a name the manifest lists with the same checksum; then it
extracts into a staging directory under SKIFF_ROOT, moves the store and the files into
place, and runs the parts' restore steps (services from their dumps, then every app).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import __version__
from .builds import DIRECTORY
from .context import Context
from .contracts import BACKUP_PART_NAME, BackupPart
from .errors import SkiffError, ValidationError

FORMAT = "skiff-backup"
SCHEMA = 1
MANIFEST = "manifest.json"
STATE_MEMBER = "state/skiff.db"
ROOT_PREFIX = "root/"
DUMP_PREFIX = "dumps/"
#: what lives under SKIFF_ROOT but is never a part's path: the store, locks, scratch space, caches
RESERVED = frozenset({"skiff.db", "skiff.db-wal", "skiff.db-shm", "locks", "tmp", "cache"})
#: the parts of the core itself: every app's build outputs (their records are in the store)
CORE_PARTS = (BackupPart("core:builds", "every app's deploy outputs (builds:output)", paths=(DIRECTORY,)),)
MAX_MANIFEST = 64 * 1024 * 1024
CHUNK = 1024 * 1024


class BadArchive(SkiffError):
    """The archive is not one ``state:restore`` may extract: nothing was written."""


# -- parts ------------------------------------------------------------------------------------


def check_part_path(path: str) -> str:
    """A part's path: relative to SKIFF_ROOT, normalised, no ``..``, not the store or the locks."""
    parts = path.split("/")
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] in RESERVED
        or any(c in path for c in "\x00\n\r\\")
    ):
        raise ValidationError(f"invalid backup path {path!r}: a relative path under SKIFF_ROOT, without '..'")
    return path


def collect_parts(context: Context) -> list[BackupPart]:
    """Every plugin's parts, checked: valid and unique names, valid paths, no path claimed twice."""
    parts: list[BackupPart] = list(CORE_PARTS)
    for answer in context.hook.skiff_backup_parts(context=context):
        parts.extend(answer or [])
    names: set[str] = set()
    paths: dict[str, str] = {}
    for part in parts:
        if not isinstance(part, BackupPart) or not re.fullmatch(BACKUP_PART_NAME, part.name):
            raise SkiffError(f"a plugin declared an invalid backup part {getattr(part, 'name', part)!r}")
        if part.name in names:
            raise SkiffError(f"two plugins declared the backup part {part.name}")
        names.add(part.name)
        for path in part.paths:
            check_part_path(path)
            for other, owner in paths.items():
                if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                    raise SkiffError(f"backup parts {owner} and {part.name} both hold {path}")
            paths[path] = part.name
    return sorted(parts, key=lambda p: (p.order, p.name))


# -- writing ----------------------------------------------------------------------------------


class _Hashing:
    """A reader that hashes what tarfile copies into the archive."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data


@dataclass
class _Writer:
    tar: tarfile.TarFile
    root: Path
    warn: Any
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    def info(self, path: Path, arcname: str) -> tarfile.TarInfo:
        self.tar.inodes.clear()  # type: ignore[attr-defined]  # never a hard link: every file is stored whole
        return self.tar.gettarinfo(str(path), arcname)

    def add_file(self, path: Path, arcname: str, like: Path | None = None) -> None:
        info = self.info(like or path, arcname)
        with open(path, "rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            info.type = tarfile.REGTYPE
            reader = _Hashing(f)
            self.tar.addfile(info, reader)
        self.members[arcname] = {"type": "file", "size": info.size, "sha256": reader.sha.hexdigest()}

    def add_link(self, path: Path, arcname: str) -> None:
        target = os.readlink(path)
        if not link_stays_inside(arcname, target):
            self.warn(f"backup: skipped the link {path} -> {target} (it points outside SKIFF_ROOT)")
            return
        info = self.info(path, arcname)
        self.tar.addfile(info)
        self.members[arcname] = {"type": "symlink", "target": target}

    def add_dir(self, path: Path, arcname: str) -> None:
        self.tar.addfile(self.info(path, arcname))
        self.members[arcname] = {"type": "dir"}

    def add_path(self, path: Path, arcname: str) -> None:
        """A file, link or directory tree (links are stored as links, never followed)."""
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            self.add_link(path, arcname)
        elif stat.S_ISREG(mode):
            self.add_file(path, arcname)
        elif stat.S_ISDIR(mode):
            self.add_dir(path, arcname)
            for entry in sorted(os.listdir(path)):
                self.add_path(path / entry, f"{arcname}/{entry}")
        else:
            self.warn(f"backup: skipped {path} (not a file, directory or link)")

    def add_bytes(self, data: bytes, arcname: str) -> None:
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))


def link_stays_inside(arcname: str, target: str) -> bool:
    """A relative link target that, from the link's directory, stays under ``root/``."""
    if not target or target.startswith("/") or "\x00" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(arcname), target))
    return resolved.startswith(ROOT_PREFIX) and ".." not in resolved.split("/")


def _fail(what: str, exc: OSError) -> SkiffError:
    return SkiffError(f"{what}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""))


def write(context: Context, destination: Path, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the archive of every part to ``destination`` (0600, renamed into place); return the manifest."""
    destination = Path(destination)
    parent = destination.parent
    if destination.is_dir():
        raise SkiffError(f"{destination} is a directory: give the archive's file name")
    if not parent.is_dir():
        raise SkiffError(f"cannot write {destination}: {parent} is not a directory")
    parts = collect_parts(context)
    unknown = sorted(set(exclude) - {p.name for p in parts})
    if unknown:
        raise SkiffError(f"no backup part named {unknown[0]}; the parts: {', '.join(p.name for p in parts)}")
    parts = [p for p in parts if p.name not in exclude]
    out = context.output
    try:
        scratch = tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent)
    except OSError as exc:
        raise _fail(f"cannot write to {parent}", exc) from None
    try:
        archive = Path(scratch) / "archive.tar.gz"
        fd = os.open(archive, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
                writer = _Writer(tar, context.root, out.warn)
                manifest = _write_members(context, writer, parts, Path(scratch))
                writer.add_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode(), MANIFEST)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(archive, destination)
    except OSError as exc:
        raise _fail(f"cannot write {destination}", exc) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def _write_members(context: Context, writer: _Writer, parts: list[BackupPart], scratch: Path) -> dict[str, Any]:
    out = context.output
    out.step("Copying the state store")
    copy = scratch / "skiff.db"
    context.state.backup(copy)
    writer.add_file(copy, STATE_MEMBER, like=context.state.path)
    copy.unlink()
    listed = []
    for part in parts:
        out.step(f"{part.name}: {part.description}")
        paths = []
        for path in part.paths:
            source = context.root / path
            if os.path.lexists(source):
                writer.add_path(source, ROOT_PREFIX + path)
                paths.append(path)
        dump = None
        if part.dump is not None:
            dump_file = scratch / "dump"
            fd = os.open(dump_file, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as f:
                part.dump(f)
                f.flush()
            dump = DUMP_PREFIX + part.name
            writer.add_file(dump_file, dump)
            out.info(f"dump: {writer.members[dump]['size']} bytes")
            dump_file.unlink()
        listed.append(
            {"name": part.name, "description": part.description, "paths": paths, "dump": dump, "order": part.order}
        )
    from .state import SCHEMA_VERSION

    return {
        "format": FORMAT,
        "schema": SCHEMA,
        "created": time.time(),
        "skiff": __version__,
        "state_schema": SCHEMA_VERSION,
        "root": str(context.root),
        # files of the service account (SKIFF_ROOT's owner) go to the new server's account;
        # every other owner (a container's uid: storage, a service's certificate) stays numeric
        "owner": {"uid": os.stat(context.root).st_uid, "gid": os.stat(context.root).st_gid},
        "parts": listed,
        "members": dict(writer.members),
    }


# -- checking ---------------------------------------------------------------------------------


def _member_kind(name: str) -> str:
    """Which kind of member a name is; raise BadArchive for any name restore must not extract."""
    if name == MANIFEST or name == STATE_MEMBER:
        return name
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in name or "\\" in name:
        raise BadArchive(f"the archive holds a member with an unsafe name {name!r}; nothing was restored")
    if name.startswith(DUMP_PREFIX) and len(parts) == 2 and re.fullmatch(BACKUP_PART_NAME, parts[1]):
        return "dump"
    if name.startswith(ROOT_PREFIX) and len(parts) > 1 and parts[1] not in RESERVED:
        return "root"
    raise BadArchive(f"the archive holds a member {name!r} that is not part of a skiff backup; nothing was restored")


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[tuple[tarfile.TarFile, gzip.GzipFile]]:
    try:
        gz = gzip.open(archive, "rb")
    except OSError as exc:
        raise _fail(f"cannot read {archive}", exc) from None
    with gz:
        tar = tarfile.open(fileobj=gz, mode="r|")
        with tar:
            yield tar, gz


def inspect(archive: Path) -> dict[str, Any]:
    """Read the whole archive and check it; return its manifest. Raise BadArchive (nothing written)."""
    archive = Path(archive)
    if not archive.is_file():
        raise SkiffError(f"{archive} is not a file")
    seen: dict[str, dict[str, Any]] = {}
    links: set[str] = set()
    manifest: Any = None
    try:
        with _reading(archive) as (tar, gz):
            for member in tar:
                name = member.name
                kind = _member_kind(name)
                if name in seen or name == MANIFEST and manifest is not None:
                    raise BadArchive(f"the archive holds {name!r} twice; nothing was restored")
                if any(name.startswith(link + "/") for link in links):
                    raise BadArchive(f"the archive holds {name!r} inside a link; nothing was restored")
                if member.issym():
                    if kind != "root" or not link_stays_inside(name, member.linkname):
                        raise BadArchive(
                            f"the archive holds a link {name!r} -> {member.linkname!r} that leaves SKIFF_ROOT; "
                            "nothing was restored"
                        )
                    links.add(name)
                    seen[name] = {"type": "symlink", "target": member.linkname}
                elif member.isdir():
                    if kind != "root":
                        raise BadArchive(f"the archive holds an unexpected directory {name!r}; nothing was restored")
                    seen[name] = {"type": "dir"}
                elif member.isreg():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    if kind == MANIFEST:
                        if member.size > MAX_MANIFEST:
                            raise BadArchive("the archive's manifest is too large; nothing was restored")
                        manifest = _parse_manifest(extracted.read())
                        continue
                    sha = hashlib.sha256()
                    while chunk := extracted.read(CHUNK):
                        sha.update(chunk)
                    seen[name] = {"type": "file", "size": member.size, "sha256": sha.hexdigest()}
                else:
                    raise BadArchive(
                        f"the archive holds {name!r}, which is not a file, directory or link; nothing was restored"
                    )
            while gz.read(CHUNK):  # to the end: gzip checks its CRC and length there
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadArchive(
            f"{archive} is not a complete skiff backup (truncated or corrupt: {exc}); nothing was restored"
        ) from None
    except OSError as exc:
        raise BadArchive(f"cannot read {archive}: {exc.strerror or exc}; nothing was restored") from None
    if manifest is None:
        raise BadArchive(f"{archive} has no manifest (truncated, or not a skiff backup); nothing was restored")
    _check_against_manifest(manifest, seen)
    return dict(manifest)


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BadArchive("the archive's manifest is not JSON; nothing was restored") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadArchive("the archive is not a skiff backup (no skiff-backup manifest); nothing was restored")
    schema = manifest.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA or schema < 1:
        raise BadArchive(f"the archive has backup schema {schema!r}; this skiff reads 1 to {SCHEMA}")
    from .state import SCHEMA_VERSION

    state_schema = manifest.get("state_schema")
    if not isinstance(state_schema, int) or state_schema > SCHEMA_VERSION:
        raise BadArchive(
            f"the archive's state store has schema {state_schema!r}, newer than this skiff's ({SCHEMA_VERSION}): "
            "update skiff first; nothing was restored"
        )
    if not isinstance(manifest.get("members"), dict) or not isinstance(manifest.get("parts"), list):
        raise BadArchive("the archive's manifest lists no members or parts; nothing was restored")
    return manifest


def _check_against_manifest(manifest: dict[str, Any], seen: dict[str, dict[str, Any]]) -> None:
    listed: dict[str, Any] = manifest["members"]
    for name, entry in seen.items():
        if listed.get(name) != entry:
            what = "is not listed in" if name not in listed else "does not match (checksum, size or type)"
            raise BadArchive(f"the member {name!r} {what} the archive's manifest; nothing was restored")
    missing = sorted(set(listed) - set(seen))
    if missing:
        raise BadArchive(f"the archive lacks {missing[0]!r}, which its manifest lists; nothing was restored")
    if STATE_MEMBER not in seen:
        raise BadArchive("the archive holds no state store; nothing was restored")
    paths: list[str] = []
    names: set[str] = set()
    for part in manifest["parts"]:
        if not isinstance(part, dict) or not re.fullmatch(BACKUP_PART_NAME, str(part.get("name"))):
            raise BadArchive("the archive's manifest lists a part with an invalid name; nothing was restored")
        names.add(part["name"])
        if not isinstance(part.get("paths") or [], list):
            raise BadArchive(f"the part {part['name']} lists its paths wrongly; nothing was restored")
        try:
            paths += [check_part_path(str(p)) for p in part.get("paths") or []]
        except ValidationError as exc:
            raise BadArchive(f"{exc}; nothing was restored") from None
        dump = part.get("dump")
        if dump is not None and (dump != DUMP_PREFIX + part["name"] or dump not in seen):
            raise BadArchive(f"the part {part['name']} names a dump the archive lacks; nothing was restored")
    for name in seen:
        if name.startswith(ROOT_PREFIX):
            rel = name[len(ROOT_PREFIX) :]
            if not any(rel == p or rel.startswith(p + "/") for p in paths):
                raise BadArchive(f"the member {name!r} belongs to no part of the archive; nothing was restored")
        elif name.startswith(DUMP_PREFIX) and name[len(DUMP_PREFIX) :] not in names:
            raise BadArchive(f"the dump {name!r} belongs to no part of the archive; nothing was restored")


# -- restoring --------------------------------------------------------------------------------


def occupied(root: Path, manifest: dict[str, Any]) -> list[str]:
    """What ``root`` already holds that a restore would replace (empty: a fresh root)."""
    found = []
    db = root / "skiff.db"
    if db.exists() and db.stat().st_size:
        from .state import State

        state = State(root, migrate=False)
        try:
            apps = state.list_apps()
        except Exception:
            apps = []
        finally:
            state.close()
        if apps:
            found.append(f"{len(apps)} app{'s' if len(apps) != 1 else ''} in its state store")
    for part in manifest["parts"]:
        for path in part.get("paths") or []:
            target = root / path
            if target.is_symlink() or (target.exists() and (not target.is_dir() or any(target.iterdir()))):
                found.append(path)
    return found


def _owned_like_root(path: Path, root: Path) -> None:
    if os.geteuid() == 0:
        owner = root.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def _make_parents(root: Path, path: Path) -> None:
    missing = []
    probe = path.parent
    while probe != root and not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        _owned_like_root(directory, root)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def extract(context: Context, archive: Path, manifest: dict[str, Any]) -> dict[str, IO[bytes]]:
    """Extract a checked archive: the store and every part's files into place; return the dumps, open.

    Everything is extracted into a staging directory under SKIFF_ROOT first (a full disk
    leaves the root as it was), then moved into place. The dumps come back as open files,
    already unlinked, so they stay readable after the process drops to the service account.
    """
    root = context.root
    root.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=root))
    except OSError as exc:
        raise _fail(f"cannot write to {root}", exc) from None
    dumps: dict[str, IO[bytes]] = {}
    try:
        try:
            # the filter where this Python has one (3.11.4+); the checks of inspect() either way
            safe: dict[str, Any] = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            top = os.path.realpath(staging)
            was, now = manifest.get("owner") or {}, os.stat(root)
            with _reading(archive) as (tar, _):
                for member in tar:
                    if member.name == MANIFEST:
                        continue
                    parent = os.path.realpath(os.path.join(top, os.path.dirname(member.name)))
                    if parent != top and not parent.startswith(top + os.sep):
                        raise SkiffError(f"{member.name!r} would land outside SKIFF_ROOT")
                    if member.isreg():
                        member.mode &= ~0o6000  # never a setuid or setgid file out of an archive
                    if member.uid == was.get("uid"):
                        member.uid = now.st_uid
                    if member.gid == was.get("gid"):
                        member.gid = now.st_gid
                    tar.extract(member, staging, set_attrs=True, numeric_owner=True, **safe)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise SkiffError(f"extracting {archive} failed ({exc}); SKIFF_ROOT was not changed") from None
        for part in manifest["parts"]:
            if part.get("dump"):
                dumps[part["name"]] = open(staging / part["dump"], "rb")  # noqa: SIM115 - returned open
        context.close()
        for suffix in ("-wal", "-shm"):
            (root / f"skiff.db{suffix}").unlink(missing_ok=True)
        os.replace(staging / STATE_MEMBER, root / "skiff.db")
        for part in manifest["parts"]:
            for path in part.get("paths") or []:
                source, target = staging / "root" / path, root / path
                if not os.path.lexists(source):
                    continue
                _remove(target)
                _make_parents(root, target)
                os.replace(source, target)
    except BaseException:
        for f in dumps.values():
            f.close()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dumps


def restore_steps(context: Context, manifest: dict[str, Any], dumps: dict[str, IO[bytes]]) -> list[str]:
    """Run the restore step of each part the archive holds, in order; return the failures (one line each)."""
    out = context.output
    live = {part.name: part for part in collect_parts(context)}
    failures = []
    ordered = sorted(
        manifest["parts"],
        key=lambda p: (live[p["name"]].order if p["name"] in live else p.get("order", 500), p["name"]),
    )
    for entry in ordered:
        name = entry["name"]
        part = live.get(name)
        if part is None:
            if entry.get("dump"):
                failures.append(f"{name}: no installed plugin restores it (its dump was not used)")
            continue
        if part.restore is None:
            continue
        out.step(f"Restoring {name}: {part.description}")
        dump = dumps.get(name)
        if dump is not None:
            dump.seek(0)
        try:
            part.restore(dump)
        except SkiffError as exc:
            out.warn(f"{name}: {exc}")
            failures.append(f"{name}: {exc}")
    return failures
