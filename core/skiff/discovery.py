"""What a start reads before it imports pluggy or click: the install fingerprint, the disabled plugins.

:mod:`skiff.plugins` (the plugin manager) and :mod:`skiff.quickhelp` (the ``skiff --help``
of the command cache) both use these; this module imports only the stdlib, and
``sqlite3`` only when the state database exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

ENTRY_POINT_GROUP = "skiff"
DISABLED_ENV = "SKIFF_DISABLED_PLUGINS"
EXTRA_ENV = "SKIFF_PLUGINS"  # extra plugin modules to load, like PYTEST_PLUGINS
#: under ``SKIFF_ROOT``: where a command keeps the installed entry points between starts
#: (:func:`skiff.plugins.installed_plugins`)
PLUGIN_CACHE = Path("cache") / "entry-points.json"


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLED_ENV, "").split(",") if n.strip()}


def install_fingerprint() -> list[list[Any]]:
    """What an install, removal or upgrade of any distribution changes (see :func:`skiff.plugins.installed_plugins`)."""
    marks: list[list[Any]] = []
    try:
        here: str | None = os.getcwd()
    except OSError:
        here = None
    for entry in sys.path:
        folder = entry or "."
        try:
            # the working directory (python -m skiff, python -c) changes with every file written
            # there, e.g. SQLite's journal when it is SKIFF_ROOT: only its distributions count
            working = folder == "." or (here is not None and os.path.abspath(folder) == here)
            marks.append([folder, None if working else os.stat(folder).st_mtime_ns])
            with os.scandir(folder) as children:
                names = sorted(c.name for c in children if c.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # gone, or a zip file
            continue
        for name in names:
            try:
                marks.append([name, os.stat(os.path.join(folder, name, "entry_points.txt")).st_mtime_ns])
            except OSError:
                marks.append([name, None])
    return marks


def disabled_in_state(root: Path) -> set[str]:
    """``plugin:disable``'s list, read without importing the state store when the file allows."""
    path = root / "skiff.db"  # skiff.state.State.filename
    if not path.exists():
        return set()
    import sqlite3

    try:  # read-only: root must not create the WAL files of the service account's database
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM disabled_plugins")}
        finally:
            conn.close()
    except sqlite3.Error:
        pass
    from .state import State

    state = State(root, migrate=False)
    try:
        return state.disabled_plugins()
    except Exception:
        return set()
    finally:
        state.close()
