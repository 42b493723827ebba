"""Skiff: a self-hosted, git-push-to-deploy PaaS built on pluggy.

Plugins mark their hook implementations with :data:`hookimpl`; plugins that
declare hooks of their own (through ``skiff_addhooks``) mark them with
:data:`hookspec`.
"""
import pluggy

__version__ = "0.1.0"

PROJECT = "skiff"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT"]
