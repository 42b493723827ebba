"""Safe extraction of a tar or zip archive for ``git:from-archive``.

Members are written one by one (never ``extractall``): absolute names,
``..`` components, symlinks or hard links that leave the tree, and devices
or fifos are refused with one clear error before anything is committed. A
single top-level directory (``project-1.0/``) is stripped, as GitHub
tarballs have one.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Optional

from skiff.errors import SkiffError, ValidationError

MAX_ARCHIVE = 1024 * 1024 * 1024  # bytes read from a URL or stdin
CHUNK = 1024 * 1024


def check_source(source: str) -> str:
    if source != "-" and not source.startswith(("https://", "http://")):
        raise ValidationError(f"give an http(s) URL or - (stdin), not {source!r}")
    return source


def fetch(source: str, dest: Path) -> None:
    """Save the archive from an http(s) URL or ``-`` (stdin) to ``dest``."""
    check_source(source)
    if source == "-":
        stream, close = sys.stdin.buffer, False
    elif source.startswith(("https://", "http://")):
        try:
            stream, close = urllib.request.urlopen(source, timeout=60), True  # noqa: S310 (scheme checked)
        except Exception as exc:
            raise SkiffError(f"cannot download {source}: {exc}")
    total = 0
    try:
        with open(dest, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_ARCHIVE:
                    raise SkiffError(f"the archive is larger than {MAX_ARCHIVE // (1024 * 1024)} MB")
                out.write(chunk)
    finally:
        if close:
            stream.close()
    if total == 0:
        raise SkiffError("the archive is empty")


def _member_name(name: str) -> Optional[str]:
    """The normalised relative name, ``None`` for the root itself; raise if it leaves the tree."""
    if "\x00" in name or name.startswith("/") or "\\" in name:
        raise ValidationError(f"the archive has an unsafe member name: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"the archive has a member outside its tree: {name!r}")
    return "/".join(parts) or None


def _link_target_ok(name: str, target: str) -> bool:
    if target.startswith("/") or "\x00" in target:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return not (joined == ".." or joined.startswith("../"))


def _safe_parent(root: Path, name: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(path.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise ValidationError(f"the archive writes through a link outside its tree: {name!r}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValidationError(f"the archive has {name!r} twice")
    return path


def _write(root: Path, name: str, data: BinaryIO, mode: int) -> None:
    path = _safe_parent(root, name)
    with open(path, "wb") as out:
        shutil.copyfileobj(data, out, CHUNK)
    path.chmod(0o755 if mode & 0o111 else 0o644)


def _symlink(root: Path, name: str, target: str) -> None:
    if not _link_target_ok(name, target):
        raise ValidationError(f"the archive has a link that leaves its tree: {name} -> {target}")
    path = _safe_parent(root, name)
    os.symlink(target, path)


def _extract_tar(path: Path, root: Path) -> None:
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError as exc:
        raise ValidationError(f"not a tar archive: {exc}")
    with archive:
        for member in archive:
            name = _member_name(member.name)
            if name is None or name.split("/")[0] == ".git" or "/.git/" in f"/{name}/":
                continue
            if member.isdir():
                (root / name).mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                data = archive.extractfile(member)
                assert data is not None
                _write(root, name, data, member.mode)
            elif member.issym():
                _symlink(root, name, member.linkname)
            elif member.islnk():
                try:
                    target = _member_name(member.linkname)
                except ValidationError:
                    target = None
                source = root / target if target else None
                if source is None or source.is_symlink() or not source.is_file():
                    raise ValidationError(f"the archive has a hard link that leaves its tree: {name}")
                with open(source, "rb") as data:
                    _write(root, name, data, source.stat().st_mode)
            else:
                raise ValidationError(f"the archive has a special file (device or fifo): {name}")


def _extract_zip(path: Path, root: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _member_name(info.filename)
            if name is None or "/.git/" in f"/{name}/":
                continue
            mode = info.external_attr >> 16
            if info.is_dir():
                (root / name).mkdir(parents=True, exist_ok=True)
            elif stat.S_ISLNK(mode):
                _symlink(root, name, archive.read(info).decode("utf-8", "surrogateescape"))
            else:
                with archive.open(info) as data:
                    _write(root, name, data, mode)


def extract(path: Path, dest: Path) -> Path:
    """Extract ``path`` into the empty directory ``dest``; return the source tree."""
    if zipfile.is_zipfile(path):
        _extract_zip(path, dest)
    else:
        _extract_tar(path, dest)
    entries = list(dest.iterdir())
    if not entries:
        raise ValidationError("the archive holds no files")
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest
