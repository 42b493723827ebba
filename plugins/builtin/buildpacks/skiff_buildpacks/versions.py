"""Python version requests (.python-version, runtime.txt) against a stack's version."""

from __future__ import annotations

import re


def version_satisfies(available: str, requested: str) -> bool:
    """``3`` / ``3.13`` / ``3.13.5`` (or ``3.13.x``) match ``3.13.5`` component-wise."""
    want = [p for p in requested.split(".") if p not in ("x", "*", "")]
    have = available.split(".")
    return bool(want) and len(want) <= len(have) and have[: len(want)] == want


VERSION_RE = re.compile(r"\A(?:python-?)?([0-9]+(?:\.[0-9]+){0,2}(?:\.[x*])?)\Z")


def parse_requested(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            match = VERSION_RE.fullmatch(line)
            return match.group(1) if match else line
    return None


def node_satisfies(available: str, requested: str) -> bool:
    """``engines.node`` ranges as npm reads them (``>=18 <21``, ``20.x``, ``^20``, ``18 || 20``)."""
    from .semver import satisfies

    return satisfies(available, requested)
