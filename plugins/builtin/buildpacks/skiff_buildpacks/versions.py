"""Python version requests (.python-version, runtime.txt) against a stack's version."""
from __future__ import annotations

import re
from typing import Optional


def version_satisfies(available: str, requested: str) -> bool:
    """``3`` / ``3.13`` / ``3.13.5`` (or ``3.13.x``) match ``3.13.5`` component-wise."""
    want = [p for p in requested.split(".") if p not in ("x", "*", "")]
    have = available.split(".")
    return bool(want) and len(want) <= len(have) and have[: len(want)] == want


VERSION_RE = re.compile(r"^(?:python-?)?(\d+(?:\.\d+){0,2}(?:\.[x*])?)$")


def parse_requested(text: str) -> Optional[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            match = VERSION_RE.match(line)
            return match.group(1) if match else line
    return None
