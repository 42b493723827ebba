"""Build Skiff's plugin manager from the ``skiff`` entry-point group.

There is no global plugin manager: :func:`build_plugin_manager` makes one.
Entry points load in name order. A plugin that fails to import, or that
implements a hook nobody declared, is recorded as *broken* with a one-line
reason and unregistered; every other plugin keeps working.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Iterable, Optional

import pluggy

from . import PROJECT, hookspecs

ENTRY_POINT_GROUP = "skiff"
DISABLED_ENV = "SKIFF_DISABLED_PLUGINS"
EXTRA_ENV = "SKIFF_PLUGINS"  # extra plugin modules to load, like PYTEST_PLUGINS


@dataclass
class PluginInfo:
    """What ``plugin:list`` shows about one plugin."""

    name: str
    status: str  # "enabled", "disabled" or "broken"
    module: str = ""
    distribution: str = ""
    version: str = ""
    error: str = ""
    hooks: list[str] = field(default_factory=list)


class SkiffPluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers what it loaded and what broke."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.infos: dict[str, PluginInfo] = {}

    def broken(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if i.status == "broken"]

    def register_plugin(self, plugin: object, name: str, info: Optional[PluginInfo] = None) -> None:
        """Register ``plugin`` as ``name``; a validation error marks it broken."""
        info = info or PluginInfo(name=name, status="enabled", module=getattr(plugin, "__name__", repr(plugin)))
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            info.status, info.error = "broken", f"{exc}"
        else:
            info.hooks = sorted(c.name for c in self.get_hookcallers(plugin) or [])
        self.infos[name] = info

    def drop_unknown_hooks(self) -> None:
        """Mark plugins whose hooks no spec declares as broken and unregister them."""
        for hook_name, caller in list(vars(self.hook).items()):
            if not hook_name.startswith(f"{PROJECT}_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                name = self.get_name(impl.plugin)
                if name is None:
                    continue
                self.unregister(impl.plugin)
                info = self.infos.get(name)
                if info:
                    info.status = "broken"
                    info.error = f"implements unknown hook {hook_name} (misspelled, or its plugin is missing)"
                    info.hooks = []
        self.check_pending()


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLED_ENV, "").split(",") if n.strip()}


def extra_from_env() -> list[tuple[str, object]]:
    """Plugins named in ``SKIFF_PLUGINS`` (comma-separated module names)."""
    names = [n.strip() for n in os.environ.get(EXTRA_ENV, "").split(",") if n.strip()]
    return [(name, name) for name in names]


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points()
    selected = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    unique: dict[str, metadata.EntryPoint] = {}
    for ep in selected:
        unique.setdefault(ep.name, ep)
    return [unique[n] for n in sorted(unique)]


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


def build_plugin_manager(
    disabled: Iterable[str] = (),
    plugins: Iterable[tuple[str, object]] = (),
    load_entry_points: bool = True,
) -> SkiffPluginManager:
    """Make a plugin manager with the core hookspecs and the given plugins.

    ``plugins`` are extra ``(name, module-or-object)`` pairs (tests use them);
    with ``load_entry_points`` every installed plugin of the ``skiff`` group is
    loaded too, except those named in ``disabled`` or ``SKIFF_DISABLED_PLUGINS``.
    """
    pm = SkiffPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.hook.skiff_addhooks.call_historic(kwargs={"pm": pm})
    off = set(disabled) | disabled_from_env()
    if load_entry_points:
        for ep in _entry_points():
            dist, version = _dist_of(ep)
            info = PluginInfo(name=ep.name, status="enabled", module=ep.value, distribution=dist, version=version)
            if ep.name in off:
                info.status = "disabled"
                pm.infos[ep.name] = info
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop skiff
                info.status = "broken"
                info.error = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
                pm.infos[ep.name] = info
                continue
            pm.register_plugin(plugin, ep.name, info)
    for name, plugin in [*plugins, *extra_from_env()]:
        if name in off:
            pm.infos[name] = PluginInfo(name=name, status="disabled", module=getattr(plugin, "__name__", ""))
            continue
        if isinstance(plugin, str):
            try:
                plugin = module_plugin(plugin)
            except Exception as exc:
                pm.infos[name] = PluginInfo(name=name, status="broken", module=str(plugin),
                                            error=f"failed to import {plugin}: {type(exc).__name__}: {exc}")
                continue
        pm.register_plugin(plugin, name)
    pm.drop_unknown_hooks()
    return pm


def module_plugin(module: ModuleType | str) -> ModuleType:
    """Import a plugin module by name (helper for tests and ``-p`` style loading)."""
    if isinstance(module, str):
        __import__(module)
        return sys.modules[module]
    return module
