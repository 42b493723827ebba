"""The output of every deploy, kept per app (Dokku's ``builds:list`` / ``builds:output``).

Every run of the lifecycle (a push, ``deploy``, ``ps:rebuild``, a config change, a scale, a
restart, a rollback, ...) is one *build*: :func:`start` records it as ``running`` in the state
store (table ``builds``) under the next id of its app, and everything the deploy writes through
its :class:`~skiff.output.Output` (the ``remote:`` lines of a push) is appended, without ANSI
escapes, to ``SKIFF_ROOT/builds/APP/ID.log`` as it is written, so a running build's output can
be read while it runs. :meth:`Recorder.finish` sets ``succeeded`` or ``failed``, the finish
time, the release it made and the git revision. A deploy killed mid-way leaves its build
``running``; the next deploy of the app marks it ``failed`` (:func:`fail_running`, under the
app's lock, like its pending release).

Records and files of an app go with ``apps:destroy`` and follow ``apps:rename``
(:meth:`skiff.state.State.destroy_app` / ``rename_app`` call :func:`remove_files` /
:func:`move_files`). Only the last ``builds`` / ``keep`` (a global setting the apps plugin
declares: ``builds:set --global keep N``, default :data:`DEFAULT_KEEP`) builds of each app are
kept; older records and their output files are removed when a new build starts. Ids are given
in a write transaction of the store, so concurrent deploys never share one.

Output files are 0600 in 0700 directories owned by the service account (the owner of
``SKIFF_ROOT``), like the state store: a deploy's output may name things a deployer of
another app must not see.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import NotFound, SkiffError
from .locks import owned_like
from .validate import app_name

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

    from .context import Context
    from .output import Output
    from .state import State

#: the directory under SKIFF_ROOT holding one directory of output files per app
DIRECTORY = "builds"
STATUSES = ("running", "succeeded", "failed")
#: the setting (plugin property namespace, key) of how many builds each app keeps
KEEP_SETTING = ("builds", "keep")
DEFAULT_KEEP = 50
#: an output file stops growing at this size (a runaway build cannot fill the disk); a last line says so
MAX_OUTPUT = 16 * 1024 * 1024
TRUNCATED = "-----> (output truncated here: more than 16 MiB; the deploy went on)"
#: CSI sequences (colours, cursor moves), OSC sequences (titles, links) and other two-byte escapes
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
#: first words of deploy descriptions that name what deployed (``Rollback to v3`` -> ``rollback``)
DESCRIBED_KINDS = frozenset(
    {"rebuild", "rollback", "scale", "restart", "start", "restore", "clone", "link", "unlink", "promote", "upgrade"}
)


@dataclass(frozen=True)
class Build:
    """One deploy of one app, as recorded (docs/builds.md)."""

    id: int  # per app, increasing from 1
    app: str
    kind: str  # "push" | "deploy" | "rebuild" | "config" | "rollback" | "scale" | "restart" | ...
    status: str  # "running" | "succeeded" | "failed"
    started_at: str  # ISO 8601 UTC, e.g. "2026-12-06T21:30:00Z"
    finished_at: str | None
    release: int | None  # the release version it made (None if it failed before one)
    revision: str | None  # the git sha of a push, else None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (``None`` while it runs)."""
        if self.finished_at is None:
            return None
        return (_parse_time(self.finished_at) - _parse_time(self.started_at)).total_seconds()


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def _from_row(row: sqlite3.Row) -> Build:
    return Build(
        id=row["id"],
        app=row["app"],
        kind=row["kind"],
        status=row["status"],
        started_at=_iso(row["started"]),
        finished_at=None if row["finished"] is None else _iso(row["finished"]),
        release=row["release"],
        revision=row["revision"],
    )


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return ANSI.sub("", text) if "\x1b" in text else text


def kind_of(description: str, default: str) -> str:
    """What a deploy described as ``description`` is (``Rollback to v3`` -> ``rollback``), else ``default``."""
    word = description.split(" ", 1)[0].lower()
    return word if word in DESCRIBED_KINDS else default


# -- paths -------------------------------------------------------------------------------


def app_directory(root: Path, app: str) -> Path:
    """``SKIFF_ROOT/builds/APP`` (``app`` is validated first)."""
    return Path(root) / DIRECTORY / app_name(app)


def output_path(root: Path, app: str, build_id: int) -> Path:
    """The output file of build ``build_id`` of ``app``."""
    return app_directory(root, app) / f"{int(build_id)}.log"


def _private_dir(path: Path, root: Path) -> None:
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        owned_like(path, root)


def remove_files(root: Path, app: str) -> None:
    """Remove every output file of ``app`` (``apps:destroy``; the store removes the records)."""
    shutil.rmtree(app_directory(root, app), ignore_errors=True)


def move_files(root: Path, old: str, new: str) -> None:
    """Move ``old``'s output files to ``new`` (``apps:rename``; the store renames the records)."""
    source, target = app_directory(root, old), app_directory(root, new)
    if not source.is_dir():
        return
    shutil.rmtree(target, ignore_errors=True)  # a leftover has no records: they were destroyed with its app
    os.rename(source, target)


# -- reading -----------------------------------------------------------------------------


@contextmanager
def _opened(root: Path) -> Iterator[State]:
    from .state import State

    state = State(root)
    try:
        yield state
    finally:
        state.close()


def builds(state: State, app: str) -> list[Build]:
    """``app``'s builds in ``state``, newest first."""
    rows = state.conn.execute("SELECT * FROM builds WHERE app=? ORDER BY id DESC", (app_name(app),))
    return [_from_row(row) for row in rows]


def build(state: State, app: str, build_id: int) -> Build:
    """Build ``build_id`` of ``app`` in ``state``; :class:`NotFound` if there is none."""
    row = state.conn.execute("SELECT * FROM builds WHERE app=? AND id=?", (app_name(app), int(build_id))).fetchone()
    if row is None:
        raise NotFound(f"app {app} has no build {build_id}")
    return _from_row(row)


def latest(state: State, app: str) -> Build:
    """The newest build of ``app``; :class:`NotFound` if it has none."""
    found = state.conn.execute("SELECT * FROM builds WHERE app=? ORDER BY id DESC LIMIT 1", (app_name(app),)).fetchone()
    if found is None:
        raise NotFound(f"app {app} has no builds yet")
    return _from_row(found)


def list_builds(root: Path, app: str) -> list[Build]:
    """Every kept build of ``app`` under ``root`` (SKIFF_ROOT), newest first; ``[]`` for an unknown app."""
    with _opened(root) as state:
        return builds(state, app)


def get_build(root: Path, app: str, build_id: int) -> Build:
    """Build ``build_id`` of ``app``; :class:`~skiff.errors.NotFound` (a ``SkiffError``) if missing."""
    with _opened(root) as state:
        return build(state, app, build_id)


def read_output(root: Path, app: str, build_id: int, offset: int = 0) -> str:
    """The output of build ``build_id`` (what is there so far while it runs), without ANSI escapes.

    ``offset``: skip that many bytes of the file (to read only what was added since).
    :class:`~skiff.errors.NotFound` if the build is not recorded.
    """
    get_build(root, app, build_id)
    return _read(output_path(root, app, build_id), offset)


def _read(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def follow(root: Path, app: str, build_id: int, poll: float = 0.2) -> Iterator[str]:
    """Yield build ``build_id``'s output as it grows, until the build has finished and all is read."""
    path = output_path(root, app, build_id)
    offset = 0
    with _opened(root) as state:
        while True:
            running = build(state, app, build_id).status == "running"
            chunk = _read_bytes(path, offset)
            if chunk:
                # never split a UTF-8 character: keep an incomplete tail for the next read
                complete = chunk if not running else chunk[: _complete_utf8(chunk)]
                offset += len(complete)
                if complete:
                    yield complete.decode("utf-8", errors="replace")
            if not running and not chunk:
                return
            if not running:
                continue
            time.sleep(poll)


def _read_bytes(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _complete_utf8(data: bytes) -> int:
    """The length of ``data`` without a trailing incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        if byte & 0x80 == 0:
            return len(data)
        needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return len(data) if back >= needed else len(data) - back
    return len(data)


# -- recording ---------------------------------------------------------------------------


def keep(state: State) -> int:
    """How many builds each app keeps: the ``builds`` / ``keep`` setting, else :data:`DEFAULT_KEEP`."""
    value = state.get_property(*KEEP_SETTING)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else DEFAULT_KEEP


def fail_running(state: State, app: str) -> int:
    """Mark ``app``'s builds left ``running`` by a killed deploy as failed; return how many.

    Called under the app's deploy lock, so no build of the app is really running then.
    """
    with state.transaction() as conn:
        cur = conn.execute(
            "UPDATE builds SET status='failed', finished=? WHERE app=? AND status='running'", (time.time(), app)
        )
    return cur.rowcount


def _prune(conn: sqlite3.Connection, app: str, keep_count: int) -> list[int]:
    """Delete the finished records of ``app`` beyond the newest ``keep_count``; return their ids.

    A running build is never pruned (its output is still being written)."""
    rows = conn.execute(
        "SELECT id, status FROM builds WHERE app=? ORDER BY id DESC LIMIT -1 OFFSET ?", (app, keep_count)
    ).fetchall()
    ids = [row[0] for row in rows if row[1] != "running"]
    conn.executemany("DELETE FROM builds WHERE app=? AND id=?", [(app, i) for i in ids])
    return ids


class Recorder:
    """The record and the output file of one running build (made by :func:`start`)."""

    def __init__(self, state: State, root: Path, build: Build):
        self.state = state
        self.root = root
        self.build = build
        self.path = output_path(root, build.app, build.id)
        self._file: IO[str] | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        try:
            _private_dir(self.path.parent.parent, self.root)
            _private_dir(self.path.parent, self.root)
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_TRUNC, 0o600)
            owned_like(self.path, self.root)
            self._file = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        except OSError:
            self._file = None  # a build whose output cannot be kept still deploys

    def write(self, line: str, last: bool = False) -> None:
        """Append one line (a newline is added) as it is written, without ANSI escapes.

        Past :data:`MAX_OUTPUT` lines are dropped (one line says so), except the ``last`` one
        (the error line a failed deploy ends with)."""
        if self._file is None:
            return
        text = strip_ansi(line) + "\n"
        try:
            if not last:
                if self._size > MAX_OUTPUT:
                    return
                self._size += len(text.encode("utf-8", errors="replace"))
                if self._size > MAX_OUTPUT:
                    text = TRUNCATED + "\n"
            self._file.write(text)
            self._file.flush()
        except (OSError, ValueError):
            self._close()

    @contextmanager
    def capture(self, outputs: Sequence[Output]) -> Iterator[None]:
        """Tee every line written through each of ``outputs`` (the same object once) into the file."""
        with ExitStack() as stack:
            seen: list[Output] = []
            for output in outputs:
                if not any(output is other for other in seen):
                    seen.append(output)
                    stack.enter_context(output.tee(self.write))
            yield

    def finish(self, succeeded: bool, release: int | None, revision: str | None) -> Build:
        """Record the end of the build; return the finished record."""
        self._close()
        status = "succeeded" if succeeded else "failed"
        now = time.time()
        with self.state.transaction() as conn:
            conn.execute(
                "UPDATE builds SET status=?, finished=?, release=?, revision=? WHERE app=? AND id=?",
                (status, now, release, revision, self.build.app, self.build.id),
            )
        b = self.build
        self.build = Build(b.id, b.app, b.kind, status, b.started_at, _iso(now), release, revision)
        return self.build

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def start(context: Context | Any, app: str, kind: str, revision: str | None = None) -> Recorder:
    """Record a new ``running`` build of ``app`` (the next id), open its output file, apply retention."""
    state: State = context.state
    app_name(app)
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", kind):
        raise SkiffError(f"invalid build kind {kind!r}")
    keep_count = keep(state)
    now = time.time()
    with state.transaction() as conn:
        row = conn.execute("SELECT MAX(id) FROM builds WHERE app=?", (app,)).fetchone()
        build_id = (row[0] or 0) + 1
        conn.execute(
            "INSERT INTO builds (app, id, kind, status, started, revision) VALUES (?, ?, ?, 'running', ?, ?)",
            (app, build_id, kind, now, revision),
        )
        pruned = _prune(conn, app, keep_count)
    for old in pruned:
        try:
            output_path(context.root, app, old).unlink()
        except FileNotFoundError:
            pass
    record = Build(build_id, app, kind, "running", _iso(now), None, None, revision)
    return Recorder(state, Path(context.root), record)
