"""Skiff: a self-hosted, git-push-to-deploy PaaS built on pluggy.

Plugins mark their hook implementations with :data:`hookimpl`; plugins that
declare hooks of their own (through ``skiff_addhooks``) mark them with
:data:`hookspec`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)

# The one source of the version of skiff and of every plugin in this repository: the
# top-level VERSION file (core/skiff/VERSION and plugins/*/*/VERSION link to it).
with open(os.path.join(os.path.dirname(__file__), "VERSION"), encoding="utf-8") as _version_file:
    __version__ = _version_file.read().strip()

PROJECT = "skiff"

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    import pluggy

    hookspec = pluggy.HookspecMarker(PROJECT)
    hookimpl = pluggy.HookimplMarker(PROJECT)


def __getattr__(name: str) -> Any:
    """``hookspec`` and ``hookimpl``, made on first use: ``skiff --help`` from the command cache
    (skiff.quickhelp) never imports pluggy."""
    if name not in ("hookspec", "hookimpl"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import pluggy

    globals().update(hookspec=pluggy.HookspecMarker(PROJECT), hookimpl=pluggy.HookimplMarker(PROJECT))
    return globals()[name]


__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT"]
