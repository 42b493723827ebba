"""Contained extraction of a tar or zip archive for ``git:from-archive``.

Members are written one by one (never ``extractall``) into a staging
directory that is renamed into place only when the whole archive passed; any
refusal removes it, so nothing is half-written. Containment rests on three
rules:

* names are normalised first: absolute names, ``..``, NUL and backslashes are
  refused;
* symbolic links are created last, after every directory and file: while
  files are written no link exists in the tree, so no write can pass through
  one; a link whose own path goes through another link is refused;
* when every link exists, each one is resolved step by step inside the tree
  (links followed, like ``openat2(RESOLVE_BENEATH)``): a link that leaves the
  tree at any step (``a -> .`` then ``b -> a/a/..``), an absolute one or a
  loop refuses the archive.

Hard links must name a regular file written earlier (its data is copied);
devices, fifos and other special members are refused. The uncompressed size
and the member count are bounded (settings ``archive-max-size`` and
``archive-max-members``). A single top-level directory (``project-1.0/``) is
stripped, as GitHub tarballs have one; links are checked against the tree that
is kept.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from skiff.errors import SkiffError, ValidationError

from .repo import redact

CHUNK = 1024 * 1024
MAX_LINK_HOPS = 40  # as the kernel's
MAX_LINK_TARGET = 4096


@dataclass(frozen=True)
class Limits:
    """Bounds of one archive: uncompressed bytes and members (every kind)."""

    max_size: int = 1024**3
    max_members: int = 100_000


def check_source(source: str) -> str:
    if source != "-" and not source.startswith(("https://", "http://")):
        raise ValidationError(f"give an http(s) URL or - (stdin), not {redact(source)!r}")
    return source


def _open_url(source: str) -> BinaryIO:
    """Open an http(s) URL; credentials in it go in a header that is not sent on redirects."""
    parts = urllib.parse.urlsplit(source)
    userinfo, at, host = parts.netloc.rpartition("@")
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)))
    if at:
        token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return urllib.request.urlopen(request, timeout=60)  # noqa: S310 (scheme checked)


def fetch(source: str, dest: Path, max_size: int = Limits.max_size) -> None:
    """Save the archive from an http(s) URL or ``-`` (stdin) to ``dest`` (at most ``max_size`` bytes)."""
    check_source(source)
    close = source != "-"
    try:
        stream = sys.stdin.buffer if source == "-" else _open_url(source)
    except Exception as exc:
        raise SkiffError(f"cannot download {redact(source)}: {exc}") from exc
    total = 0
    try:
        with open(dest, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_size:
                    raise SkiffError(f"the archive is larger than {_size(max_size)} (setting archive-max-size)")
                out.write(chunk)
    finally:
        if close:
            stream.close()
    if total == 0:
        raise SkiffError("the archive is empty")


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


# -- names and paths ---------------------------------------------------------------


def _member_name(name: str) -> str | None:
    """The normalised relative name, ``None`` for the root itself; raise if it leaves the tree."""
    if "\x00" in name or name.startswith("/") or "\\" in name:
        raise ValidationError(f"the archive has an unsafe member name: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"the archive has a member outside its tree: {name!r}")
    return "/".join(parts) or None


def _skipped(name: str) -> bool:
    """``.git`` directories of the archive are not part of the source."""
    return ".git" in name.split("/")


def _check_parents(root: Path, name: str) -> None:
    """Every parent of ``name`` is a real directory (not a link) or does not exist yet."""
    path = root
    for part in name.split("/")[:-1]:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise ValidationError(f"the archive writes through a link: {name!r}")
        if not stat.S_ISDIR(mode):
            raise ValidationError(f"the archive has {name!r} under a file")


def _resolve_inside(root: Path, name: str, target: str) -> None:
    """Follow the link ``name -> target`` inside ``root``; raise if any step leaves it."""
    stack = name.split("/")[:-1]
    todo = target.split("/")
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise ValidationError(f"the archive has a link that leaves its tree: {name} -> {target}")
            stack.pop()
            continue
        path = root.joinpath(*stack, part)
        if not path.is_symlink():
            stack.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise ValidationError(f"the archive has a link loop: {name} -> {target}")
        link = os.readlink(path)
        if link.startswith("/"):
            raise ValidationError(f"the archive has a link that leaves its tree: {name} -> {target}")
        todo = link.split("/") + todo


# -- the extractor -----------------------------------------------------------------


@dataclass
class _Extractor:
    root: Path
    limits: Limits
    members: int = 0
    size: int = 0
    current: str = ""
    files: set[str] = field(default_factory=set)
    links: list[tuple[str, str]] = field(default_factory=list)

    def count(self, name: str, size: int = 0) -> None:
        self.current = name
        self.members += 1
        if self.members > self.limits.max_members:
            raise ValidationError(
                f"the archive has more than {self.limits.max_members} members (setting archive-max-members)"
            )
        self.add_size(name, size)

    def add_size(self, name: str, size: int) -> None:
        self.size += size
        if self.size > self.limits.max_size:
            raise ValidationError(
                f"the archive is larger than {_size(self.limits.max_size)} uncompressed "
                f"(at {name}; setting archive-max-size)"
            )

    def _refuse_writes_through_links(self, name: str) -> None:
        """A member under a link of the archive (links are made last, so it would be a folder)."""
        pending = dict(self.links)
        parent = posixpath.dirname(name)
        while parent:
            if parent in pending:
                target = pending[parent]
                if _climbs_out(parent, target):
                    raise ValidationError(f"the archive has a link that leaves its tree: {parent} -> {target}")
                raise ValidationError(f"the archive writes through a link: {name!r} (under its link {parent!r})")
            parent = posixpath.dirname(parent)

    def directory(self, name: str) -> None:
        self._refuse_writes_through_links(name)
        _check_parents(self.root, name)
        path = self.root / name
        if path.is_dir():
            return
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            raise ValidationError(f"the archive has {name!r} twice") from None

    def file(self, name: str, data: IO[bytes], mode: int) -> None:
        self._refuse_writes_through_links(name)
        _check_parents(self.root, name)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise ValidationError(f"the archive has {name!r} twice") from None
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(data, out, CHUNK)  # tarfile and zipfile stop at the declared size
        path.chmod(0o755 if mode & 0o111 else 0o644)
        self.files.add(name)

    def hard_link(self, name: str, target: str) -> None:
        try:
            source = _member_name(target)
        except ValidationError:
            source = None
        if source is None or source not in self.files:
            raise ValidationError(
                f"the archive has a hard link that leaves its tree "
                f"or does not name a file before it: {name} -> {target}"
            )
        path = self.root / source
        self.add_size(name, path.stat().st_size)
        with open(path, "rb") as data:
            self.file(name, data, path.stat().st_mode)

    def symlink(self, name: str, target: str) -> None:
        if not target or target.startswith("/") or "\x00" in target or len(target) > MAX_LINK_TARGET:
            raise ValidationError(f"the archive has a link that leaves its tree: {name} -> {target}")
        self.links.append((name, target))  # created after every file, see finish()

    def finish(self) -> None:
        """Create the links, then check that each resolves inside the tree."""
        for name, target in self.links:
            _check_parents(self.root, name)
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(target, path)
            except FileExistsError:
                raise ValidationError(f"the archive has {name!r} twice") from None

    def special(self, name: str) -> None:
        raise ValidationError(f"the archive has a special file (device or fifo): {name}")


def _climbs_out(name: str, target: str) -> bool:
    """Whether the leading ``..`` of ``target`` climb above the tree from the link's folder.

    The folders of a link are real directories (a link under a link is refused), so leading
    ``..`` are plain text; what follows them may go through other links and is resolved step
    by step in :meth:`_Extractor.finish`.
    """
    ups = 0
    for part in target.split("/"):
        if part == "..":
            ups += 1
        elif part not in ("", "."):
            break
    return ups > len(PurePosixPath(name).parent.parts)


def _extract_tar(path: Path, ex: _Extractor) -> None:
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError:
        raise ValidationError("the archive is neither a tar (plain, gz, bz2, xz) nor a zip archive") from None
    with archive:
        while True:
            try:
                member = archive.next()
            except tarfile.TarError as exc:
                raise ValidationError(f"the tar archive is damaged: {_one_line(exc)}") from exc
            if member is None:
                break
            archive.members = []  # type: ignore[attr-defined]  # (not in typeshed) keep no header in memory
            ex.count(member.name, member.size if member.isreg() else 0)
            name = _member_name(member.name)
            if name is None or _skipped(name):
                continue
            if member.isdir():
                ex.directory(name)
            elif member.isreg():
                data = archive.extractfile(member)
                assert data is not None
                ex.file(name, data, member.mode)
            elif member.issym():
                ex.symlink(name, member.linkname)
            elif member.islnk():
                ex.hard_link(name, member.linkname)
            else:
                ex.special(name)


def _extract_zip(path: Path, ex: _Extractor) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationError(f"not a zip archive: {_one_line(exc)}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > ex.limits.max_members:
            raise ValidationError(
                f"the archive has more than {ex.limits.max_members} members (setting archive-max-members)"
            )
        for info in infos:
            ex.count(info.filename, info.file_size)
            name = _member_name(info.filename)
            if name is None or _skipped(name):
                continue
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if info.is_dir():
                ex.directory(name)
            elif kind == stat.S_IFLNK:
                if info.file_size > MAX_LINK_TARGET:
                    raise ValidationError(f"the archive has a link with a too long target: {name}")
                ex.symlink(name, archive.read(info).decode("utf-8", "surrogateescape"))
            elif kind in (0, stat.S_IFREG):
                with archive.open(info) as data:
                    ex.file(name, data, mode)
            else:
                ex.special(name)


def _kept_tree(staging: Path) -> Path:
    entries = list(staging.iterdir())
    if not entries:
        raise ValidationError("the archive holds no files")
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return staging


def _check_links(tree: Path, links: list[tuple[str, str]], top: str) -> None:
    for name, target in links:
        if top:
            if not name.startswith(f"{top}/"):
                continue  # cannot happen: a single top-level directory holds everything
            name = name[len(top) + 1 :]
        _resolve_inside(tree, name, target)


def extract(path: Path, dest: Path, limits: Limits = Limits()) -> Path:
    """Extract ``path`` into the new directory ``dest``; return the source tree in it.

    ``dest`` appears only if the whole archive was accepted.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        ex = _Extractor(staging, limits)
        try:
            if zipfile.is_zipfile(path):
                _extract_zip(path, ex)
            else:
                _extract_tar(path, ex)
            ex.finish()
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ValidationError(f"the archive is damaged: {_one_line(exc)}") from exc
        except OSError as exc:
            raise ValidationError(f"cannot extract {ex.current!r} from the archive: {exc.strerror or exc}") from exc
        tree = _kept_tree(staging)
        _check_links(tree, ex.links, tree.name if tree != staging else "")
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / tree.name if tree != staging else dest
