"""The embedded state store: one SQLite database under ``SKIFF_ROOT``.

It holds apps, global and per-app config (values verbatim), per-plugin
properties (JSON values), the release history, the event log, the build
records (:mod:`skiff.builds`; their output files live under ``SKIFF_ROOT/builds``)
and disabled plugins. WAL
mode; the schema version is SQLite's ``user_version`` and ``MIGRATIONS``
brings an older database forward. Writes that must not interleave use
``BEGIN IMMEDIATE`` so concurrent ``skiff`` processes never lose an update.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

from . import validate
from .contracts import MetaFields, ReleaseMeta
from .errors import NotFound, SkiffError

GLOBAL = ""  # the ``app`` column value of global config and global properties

# Each entry brings the schema from version N to N + 1; its first line is a ``--`` comment that
# ``state:migrate`` (run by ``make install``) prints. Never edit a released entry: append one.
MIGRATIONS: list[str] = [
    """
    -- version 1: apps, config, properties, releases, disabled plugins
    CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        current_release INTEGER
    );
    CREATE TABLE config (
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, key)
    );
    CREATE TABLE properties (
        plugin TEXT NOT NULL,
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (plugin, app, key)
    );
    CREATE TABLE releases (
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        description TEXT NOT NULL,
        image TEXT,
        revision TEXT,
        config TEXT NOT NULL,
        processes TEXT NOT NULL,
        meta TEXT NOT NULL,
        timings TEXT NOT NULL,
        created REAL NOT NULL,
        finished REAL,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE disabled_plugins (name TEXT PRIMARY KEY);
    """,
    """
    -- version 2: events (the audit log)
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        app TEXT,
        command TEXT NOT NULL,
        status INTEGER,
        finished REAL
    );
    CREATE INDEX events_time ON events (time);
    """,
    """
    -- version 3: builds (the output of every deploy, kept per app: builds:list, builds:output)
    CREATE TABLE builds (
        app TEXT NOT NULL,
        id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        release INTEGER,
        revision TEXT,
        PRIMARY KEY (app, id)
    );
    """,
]

RELEASE_STATUSES = ("pending", "succeeded", "failed")
SCHEMA_VERSION = len(MIGRATIONS)


def migration_description(index: int) -> str:
    """The ``-- version N: ...`` comment of ``MIGRATIONS[index]``, without the marker."""
    for line in MIGRATIONS[index].splitlines():
        line = line.strip()
        if line.startswith("--"):
            return line.lstrip("- ").partition(": ")[2] or line.lstrip("- ")
    return f"version {index + 1}"


@dataclass
class Release(MetaFields):
    """One entry of an app's release history.

    ``meta`` is what plugins stored with it (:class:`~skiff.contracts.ReleaseMeta`);
    the most shared keys read as typed properties (``release.upstreams``, ...).
    """

    app: str
    version: int
    status: str
    description: str
    image: str | None
    revision: str | None
    config: dict[str, str]
    processes: dict[str, str]
    meta: ReleaseMeta = field(default_factory=lambda: ReleaseMeta())
    timings: dict[str, float] = field(default_factory=dict)
    created: float = 0.0
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, without the config values (they may be secrets)."""
        return {
            "app": self.app,
            "version": self.version,
            "status": self.status,
            "description": self.description,
            "image": self.image,
            "revision": self.revision,
            "config_keys": sorted(self.config),
            "processes": self.processes,
            "meta": self.meta,
            "timings": self.timings,
            "created": self.created,
            "finished": self.finished,
        }


def _release_from_row(row: sqlite3.Row) -> Release:
    return Release(
        app=row["app"],
        version=row["version"],
        status=row["status"],
        description=row["description"],
        image=row["image"],
        revision=row["revision"],
        config=json.loads(row["config"]),
        processes=json.loads(row["processes"]),
        meta=json.loads(row["meta"]),
        timings=json.loads(row["timings"]),
        created=row["created"],
        finished=row["finished"],
    )


class State:
    """Access to the state database of one ``SKIFF_ROOT``."""

    filename = "skiff.db"

    def __init__(self, root: Path | str, migrate: bool = True):
        self.root = Path(root)
        #: ``False``: read as it is (start-up reads the disabled plugins before ``state:migrate`` may run)
        self.migrate = migrate
        self.path = self.root / self.filename
        self._conn: sqlite3.Connection | None = None
        #: ``(version, description)`` of each migration this process applied
        self.migrated: list[tuple[int, str]] = []

    # -- connection -----------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA synchronous=NORMAL")
        if self.migrate:
            self._migrate(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")
                self.migrated.append((number + 1, migration_description(number)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self.migrated = []
            raise

    @property
    def schema_version(self) -> int:
        version: int = self.conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock up front."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- apps -----------------------------------------------------------
    def app_exists(self, app: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM apps WHERE name=?", (app,)).fetchone()
        return row is not None

    def require_app(self, app: str) -> str:
        """Validate ``app`` and make sure it exists; return it."""
        validate.app_name(app)
        if not self.app_exists(app):
            raise NotFound(f"app {app} does not exist")
        return app

    def list_apps(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM apps ORDER BY name")]

    def create_app(self, app: str) -> None:
        validate.app_name(app)
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM apps WHERE name=?", (app,)).fetchone():
                raise SkiffError(f"app {app} already exists")
            conn.execute("INSERT INTO apps (name, created) VALUES (?, ?)", (app, time.time()))

    def destroy_app(self, app: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM apps WHERE name=?", (app,))
            conn.execute("DELETE FROM config WHERE app=?", (app,))
            conn.execute("DELETE FROM properties WHERE app=?", (app,))
            conn.execute("DELETE FROM releases WHERE app=?", (app,))
            conn.execute("DELETE FROM builds WHERE app=?", (app,))
        from . import builds

        builds.remove_files(self.root, app)

    def rename_app(self, old: str, new: str) -> None:
        validate.app_name(new)
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM apps WHERE name=?", (old,)).fetchone():
                raise NotFound(f"app {old} does not exist")
            if conn.execute("SELECT 1 FROM apps WHERE name=?", (new,)).fetchone():
                raise SkiffError(f"app {new} already exists")
            for table, column in (
                ("apps", "name"),
                ("config", "app"),
                ("properties", "app"),
                ("releases", "app"),
                ("builds", "app"),
            ):
                conn.execute(f"UPDATE {table} SET {column}=? WHERE {column}=?", (new, old))
        from . import builds

        builds.move_files(self.root, old, new)

    def app_created(self, app: str) -> float:
        row = self.conn.execute("SELECT created FROM apps WHERE name=?", (app,)).fetchone()
        if row is None:
            raise NotFound(f"app {app} does not exist")
        created: float = row[0]
        return created

    # -- config ---------------------------------------------------------
    def get_config(self, app: str = GLOBAL) -> dict[str, str]:
        rows = self.conn.execute("SELECT key, value FROM config WHERE app=? ORDER BY key", (app,))
        return {k: v for k, v in rows}

    def set_config(self, app: str, values: dict[str, str]) -> dict[str, str]:
        """Set keys atomically; return the keys whose value changed."""
        for key, value in values.items():
            validate.config_key(key)
            validate.config_value(key, value)
        changed = {}
        with self.transaction() as conn:
            for key, value in values.items():
                row = conn.execute("SELECT value FROM config WHERE app=? AND key=?", (app, key)).fetchone()
                if row is None or row[0] != value:
                    changed[key] = value
                conn.execute(
                    "INSERT INTO config (app, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (app, key) DO UPDATE SET value=excluded.value",
                    (app, key, value),
                )
        return changed

    def unset_config(self, app: str, keys: list[str]) -> list[str]:
        """Remove keys atomically; return the ones that were set."""
        removed = []
        with self.transaction() as conn:
            for key in keys:
                cur = conn.execute("DELETE FROM config WHERE app=? AND key=?", (app, key))
                if cur.rowcount:
                    removed.append(key)
        return removed

    def clear_config(self, app: str) -> list[str]:
        with self.transaction() as conn:
            keys = [r[0] for r in conn.execute("SELECT key FROM config WHERE app=?", (app,))]
            conn.execute("DELETE FROM config WHERE app=?", (app,))
        return keys

    def effective_config(self, app: str) -> dict[str, str]:
        """Global config overlaid with the app's own."""
        merged = self.get_config(GLOBAL)
        merged.update(self.get_config(app))
        return merged

    # -- plugin properties ----------------------------------------------
    def get_property(self, plugin: str, key: str, app: str = GLOBAL, default: Any = None) -> Any:
        row = self.conn.execute(
            "SELECT value FROM properties WHERE plugin=? AND app=? AND key=?", (plugin, app, key)
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def set_property(self, plugin: str, key: str, value: Any, app: str = GLOBAL) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO properties (plugin, app, key, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (plugin, app, key) DO UPDATE SET value=excluded.value",
                (plugin, app, key, json.dumps(value)),
            )

    def delete_property(self, plugin: str, key: str, app: str = GLOBAL) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM properties WHERE plugin=? AND app=? AND key=?", (plugin, app, key))

    def properties(self, plugin: str, app: str = GLOBAL) -> dict[str, Any]:
        rows = self.conn.execute(
            "SELECT key, value FROM properties WHERE plugin=? AND app=? ORDER BY key", (plugin, app)
        )
        return {k: json.loads(v) for k, v in rows}

    # -- releases -------------------------------------------------------
    def create_release(
        self,
        app: str,
        *,
        description: str,
        image: str | None,
        revision: str | None,
        config: dict[str, str],
        processes: dict[str, str],
        meta: ReleaseMeta,
    ) -> Release:
        """Record a new pending release with the next version number."""
        with self.transaction() as conn:
            row = conn.execute("SELECT MAX(version) FROM releases WHERE app=?", (app,)).fetchone()
            version = (row[0] or 0) + 1
            now = time.time()
            conn.execute(
                "INSERT INTO releases (app, version, status, description, image, revision, config,"
                " processes, meta, timings, created) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, '{}', ?)",
                (
                    app,
                    version,
                    description,
                    image,
                    revision,
                    json.dumps(config),
                    json.dumps(processes),
                    json.dumps(meta),
                    now,
                ),
            )
        return Release(
            app,
            version,
            "pending",
            description,
            image,
            revision,
            dict(config),
            dict(processes),
            cast(ReleaseMeta, dict(meta)),
            {},
            now,
        )

    def finish_release(self, release: Release, status: str, timings: dict[str, float]) -> None:
        """Mark a release succeeded (it becomes current) or failed."""
        if status not in RELEASE_STATUSES:
            raise ValueError(status)
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE releases SET status=?, timings=?, meta=?, image=?, finished=? WHERE app=? AND version=?",
                (
                    status,
                    json.dumps(timings),
                    json.dumps(release.meta),
                    release.image,
                    now,
                    release.app,
                    release.version,
                ),
            )
            if status == "succeeded":
                conn.execute("UPDATE apps SET current_release=? WHERE name=?", (release.version, release.app))
        release.status, release.timings, release.finished = status, dict(timings), now

    def fail_pending_releases(self, app: str) -> int:
        """Mark releases left pending by a killed deploy as failed; return how many."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE releases SET status='failed', finished=? WHERE app=? AND status='pending'",
                (time.time(), app),
            )
        return cur.rowcount

    def get_release(self, app: str, version: int) -> Release:
        row = self.conn.execute("SELECT * FROM releases WHERE app=? AND version=?", (app, version)).fetchone()
        if row is None:
            raise NotFound(f"app {app} has no release v{version}")
        return _release_from_row(row)

    def current_release(self, app: str) -> Release | None:
        row = self.conn.execute(
            "SELECT r.* FROM releases r JOIN apps a ON a.name=r.app AND a.current_release=r.version WHERE a.name=?",
            (app,),
        ).fetchone()
        return None if row is None else _release_from_row(row)

    def rewrite_release_descriptions(self, transform: Callable[[str], str]) -> int:
        """Replace every release description ``d`` by ``transform(d)``; return how many changed."""
        with self.transaction() as conn:
            rows = conn.execute("SELECT app, version, description FROM releases").fetchall()
            changed = [
                (transform(r["description"]), r["app"], r["version"])
                for r in rows
                if transform(r["description"]) != r["description"]
            ]
            conn.executemany("UPDATE releases SET description=? WHERE app=? AND version=?", changed)
        return len(changed)

    def releases(self, app: str, status: str | None = None) -> list[Release]:
        if status:
            rows = self.conn.execute("SELECT * FROM releases WHERE app=? AND status=? ORDER BY version", (app, status))
        else:
            rows = self.conn.execute("SELECT * FROM releases WHERE app=? ORDER BY version", (app,))
        return [_release_from_row(r) for r in rows]

    # -- events (the audit log; commands arrive already redacted) ----------
    def add_event(self, key: str, kind: str, command: str, app: str | None = None) -> int:
        """Record the start of a command or deploy; return its id (``finish_event`` sets the result)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO events (time, key, kind, app, command) VALUES (?, ?, ?, ?, ?)",
                (time.time(), key, kind, app, command),
            )
        return int(cur.lastrowid or 0)

    def finish_event(self, event_id: int, status: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE events SET status=?, finished=? WHERE id=?", (status, time.time(), event_id))

    def events(self, limit: int = 50, after: int = 0) -> list[dict[str, Any]]:
        """The last ``limit`` events with an id above ``after``, oldest first."""
        rows = self.conn.execute("SELECT * FROM events WHERE id>? ORDER BY id DESC LIMIT ?", (after, limit))
        return [dict(row) for row in reversed(rows.fetchall())]

    # -- backup ---------------------------------------------------------
    def backup(self, destination: Path | str) -> None:
        """Copy the database to ``destination`` (0600) while others keep writing."""
        destination = Path(destination)
        fd = os.open(destination, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.close(fd)
        target = sqlite3.connect(destination)
        try:
            self.conn.backup(target)
        finally:
            target.close()

    # -- plugins --------------------------------------------------------
    def disabled_plugins(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM disabled_plugins")}

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        with self.transaction() as conn:
            if enabled:
                conn.execute("DELETE FROM disabled_plugins WHERE name=?", (name,))
            else:
                conn.execute("INSERT OR IGNORE INTO disabled_plugins (name) VALUES (?)", (name,))
