"""``skiff --help`` from the command cache, before click and pluggy are imported.

The console script (:mod:`skiff.launcher`) asks :func:`page` first. It answers only
when a start of :func:`skiff.cli.main` would print the same page and do nothing else:
the service account (root never uses the cache), no ``SKIFF_PLUGINS``, a valid
entry-point cache and a valid command cache (:mod:`skiff.commandcache`: the same key,
so the same installed, disabled and enabled plugins, and unchanged source files), no
plugin recorded as broken (a full start would import it again and warn), and a
terminal width the full start rendered the page for. Anything else returns ``None``
and the start goes on as usual (and writes the caches when they were missing or stale).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from . import commandcache, discovery
from .context import root_from_env

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

HELP_ARGS = (["--help"], ["-h"])
_ENTRY_POINT_FIELDS = ["name", "value", "distribution", "version"]


def page(args: Sequence[str]) -> str | None:
    """The page ``skiff ARGS`` prints (without its last newline), if it may come from the cache."""
    if list(args) not in HELP_ARGS or os.geteuid() == 0 or os.environ.get(discovery.EXTRA_ENV):
        return None
    if sys.stdout is None:  # click.echo writes nothing then: leave it to the full start
        return None
    width = formatter_width()
    root = root_from_env()
    fingerprint = discovery.install_fingerprint()
    installed = _installed(root / discovery.PLUGIN_CACHE, fingerprint)
    if installed is None:
        return None
    off = discovery.disabled_in_state(root) | discovery.disabled_from_env()
    cache = commandcache.CommandCache.open(root, commandcache.key_of_rows(installed, off, fingerprint))
    if cache is None or cache.index is None:
        return None
    plugins: dict[str, Any] = cache.index["plugins"]
    if any(not isinstance(p, dict) or p.get("status") not in ("enabled", "disabled") for p in plugins.values()):
        return None
    text = cache.help_page(width)
    if text is None or not _writes_as_click_would(text):
        return None
    return text


def formatter_width() -> int:
    """The width of click's help formatter for this terminal (``click.HelpFormatter``'s default).

    ``max(min(columns, 80) - 2, 50)`` with the columns of ``shutil.get_terminal_size``,
    computed the same way without importing shutil.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
        columns = columns or 80
    return max(min(columns, 80) - 2, 50)


def _installed(path: os.PathLike[str], fingerprint: list[list[Any]]) -> list[list[str]] | None:
    """The entry-point cache's rows when it holds what :func:`skiff.plugins.installed_plugins` would read."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
        if data["fingerprint"] != fingerprint:
            return None
        rows = []
        for entry in data["plugins"]:
            if sorted(entry) != sorted(_ENTRY_POINT_FIELDS) or not all(isinstance(v, str) for v in entry.values()):
                return None
            rows.append([entry[field] for field in _ENTRY_POINT_FIELDS])
        return rows
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _writes_as_click_would(text: str) -> bool:
    """True when writing ``text`` to stdout gives what ``click.echo`` gives.

    echo strips ANSI codes when stdout is not a terminal, and writes to a stream of an
    ASCII encoding through a wrapper of its own.
    """
    if "\x1b" in text:
        return False
    if text.isascii():
        return True
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    import codecs

    try:
        return codecs.lookup(encoding).name != "ascii"
    except LookupError:
        return False
