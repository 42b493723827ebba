"""Login links and sessions: one SQLite file, ``SKIFF_ROOT/dashboard/sessions.db`` (0600).

Only SHA-256 hashes of link tokens and session ids are stored, so the file alone lets
nobody log in. A link is usable once (:func:`redeem_link` marks it used in the same
statement that checks it) until it expires; a key may make :data:`RATE_LIMIT` links per
:data:`RATE_WINDOW` seconds. A session holds the key's name, its CSRF token and its expiry;
the role and the access list are asked again on every request (a key removed or demoted
since the login sees what it may see now).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from skiff.errors import SkiffError

from . import PLUGIN

FILENAME = "sessions.db"
RATE_LIMIT = 5
RATE_WINDOW = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    hash TEXT PRIMARY KEY, key TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL, used REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY, key TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL
);
"""


class RateLimited(SkiffError):
    """Too many login links for one key in :data:`RATE_WINDOW`."""


@dataclass(frozen=True)
class Session:
    """One browser session of one key."""

    key: str
    csrf: str
    expires: float


def directory(root: Path) -> Path:
    return Path(root) / PLUGIN


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextmanager
def connect(root: Path) -> Iterator[sqlite3.Connection]:
    """The store, created 0600 in a 0700 directory on first use; one transaction."""
    folder = directory(root)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / FILENAME
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def create_link(root: Path, key: str, ttl: float, now: float | None = None) -> str:
    """A new one-time token for ``key``, valid ``ttl`` seconds; :class:`RateLimited` past the limit."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with connect(root) as conn:
        conn.execute("DELETE FROM links WHERE expires < ? AND created < ?", (now, now - RATE_WINDOW))
        (recent,) = conn.execute(
            "SELECT COUNT(*) FROM links WHERE key = ? AND created > ?", (key, now - RATE_WINDOW)
        ).fetchone()
        if recent >= RATE_LIMIT:
            raise RateLimited(
                f"too many login links for key {key!r}: at most {RATE_LIMIT} a minute; wait a minute and try again"
            )
        conn.execute("INSERT INTO links VALUES (?, ?, ?, ?, NULL)", (_hash(token), key, now, now + ttl))
    return token


def redeem_link(root: Path, token: str, now: float | None = None) -> str | None:
    """The key of ``token`` if it is known, unused and not expired (it is used up now); else ``None``."""
    now = time.time() if now is None else now
    with connect(root) as conn:
        rows = conn.execute(
            "UPDATE links SET used = ? WHERE hash = ? AND used IS NULL AND expires >= ? RETURNING key",
            (now, _hash(token), now),
        ).fetchall()
    return rows[0][0] if rows else None


def create_session(root: Path, key: str, ttl: float, now: float | None = None) -> tuple[str, Session]:
    """A new session of ``key``: (the id for the cookie, the session)."""
    now = time.time() if now is None else now
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with connect(root) as conn:
        conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (_hash(sid), key, csrf, now, now + ttl))
    return sid, Session(key, csrf, now + ttl)


def get_session(root: Path, sid: str, now: float | None = None) -> Session | None:
    """The live session of the cookie value ``sid``, or ``None`` (unknown or expired)."""
    now = time.time() if now is None else now
    if not sid or len(sid) > 200:
        return None
    with connect(root) as conn:
        row = conn.execute("SELECT key, csrf, expires FROM sessions WHERE hash = ?", (_hash(sid),)).fetchone()
        if row and row[2] < now:
            conn.execute("DELETE FROM sessions WHERE hash = ?", (_hash(sid),))
            return None
    return Session(row[0], row[1], row[2]) if row else None


def end_session(root: Path, sid: str) -> None:
    with connect(root) as conn:
        conn.execute("DELETE FROM sessions WHERE hash = ?", (_hash(sid),))


def end_sessions_of(root: Path, key: str | None = None) -> int:
    """End every session (of ``key`` only, when given); the number ended."""
    with connect(root) as conn:
        if key is None:
            return conn.execute("DELETE FROM sessions").rowcount
        return conn.execute("DELETE FROM sessions WHERE key = ?", (key,)).rowcount
