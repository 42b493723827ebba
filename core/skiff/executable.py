"""Where the running installation's ``skiff`` script is (for hooks, keys, subprocesses)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import SkiffError

EXECUTABLE_ENV = "SKIFF_EXECUTABLE"


def skiff_executable() -> str:
    """Absolute path of ``skiff``: ``$SKIFF_EXECUTABLE``, else the one beside this Python."""
    override = os.environ.get(EXECUTABLE_ENV)
    if override:
        return override
    candidate = Path(sys.executable).parent / "skiff"
    if candidate.exists():
        return str(candidate)
    if Path(sys.argv[0]).name == "skiff" and Path(sys.argv[0]).exists():
        return str(Path(sys.argv[0]).resolve())
    import shutil

    found = shutil.which("skiff")
    if found:
        return str(Path(found).resolve())
    raise SkiffError(f"cannot find the skiff executable; set {EXECUTABLE_ENV}")
