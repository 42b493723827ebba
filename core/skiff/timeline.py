"""An opt-in trail of timestamped events, for the push timeline of ``bench/deploy.py``.

When ``SKIFF_TIMELINE`` names a file, :func:`mark` appends one line per event::

    NAME MONOTONIC WALL PID

``NAME`` is one token (whitespace becomes ``-``), ``MONOTONIC`` is
``time.monotonic()`` (``CLOCK_MONOTONIC``: one clock for every process of the
host, so the marks of the ``ssh-command``, the pre-receive hook and the
benchmark itself line up), ``WALL`` is ``time.time()``, both in seconds with
microseconds. Each line is one ``write`` on an ``O_APPEND`` descriptor, so
processes writing at once do not interleave within a line.

Unset (the default) it costs one environment look-up per mark. It never
raises: a timeline that cannot be written is skipped, the deploy goes on.
"""

from __future__ import annotations

import os
import time

ENV = "SKIFF_TIMELINE"


def mark(name: str) -> None:
    """Append ``name`` and the current times to ``$SKIFF_TIMELINE``; nothing when unset."""
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        token = "-".join(str(name).split()) or "-"
        line = f"{token} {time.monotonic():.6f} {time.time():.6f} {os.getpid()}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except Exception:  # noqa: BLE001 - a measurement aid must never break a deploy
        pass


def read(path: str | os.PathLike[str]) -> list[tuple[str, float, float, int]]:
    """The events of a timeline file as ``(name, monotonic, wall, pid)``, malformed lines skipped."""
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4:
                    continue
                try:
                    events.append((parts[0], float(parts[1]), float(parts[2]), int(parts[3])))
                except ValueError:
                    continue
    except OSError:
        return []
    return events
