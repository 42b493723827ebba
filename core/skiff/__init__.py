"""Skiff: a self-hosted, git-push-to-deploy PaaS built on pluggy.

Plugins mark their hook implementations with :data:`hookimpl`; plugins that
declare hooks of their own (through ``skiff_addhooks``) mark them with
:data:`hookspec`.
"""

import os

import pluggy

# The one source of the version of skiff and of every plugin in this repository: the
# top-level VERSION file (core/skiff/VERSION and plugins/*/*/VERSION link to it).
with open(os.path.join(os.path.dirname(__file__), "VERSION"), encoding="utf-8") as _version_file:
    __version__ = _version_file.read().strip()

PROJECT = "skiff"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT"]
