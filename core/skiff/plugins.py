"""Build Skiff's plugin manager from the ``skiff`` entry-point group.

There is no global plugin manager: :func:`build_plugin_manager` makes one.
Entry points load in name order. A plugin that fails to import, or that
implements a hook nobody declared, is recorded as *broken* with a one-line
reason and unregistered; every other plugin keeps working.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import PROJECT, hookspecs
from .discovery import DISABLED_ENV as DISABLED_ENV
from .discovery import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from .discovery import EXTRA_ENV as EXTRA_ENV
from .discovery import disabled_from_env as disabled_from_env
from .discovery import install_fingerprint as install_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from importlib import metadata

DECLARE_HOOKS = "skiff_addhooks"  # the hook through which a plugin declares hooks of its own


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
        #: plugins known (from the command cache) but not imported yet, by name
        self.deferred: dict[str, InstalledPlugin] = {}
        #: registration rank of every plugin: the order a full start registers them in
        self.rank: dict[str, int] = {}
        #: what a caller reaches hooks through: imports deferred plugins a hook needs first
        self.calls = LazyHooks(self)

    def load_deferred(self, name: str) -> None:
        """Import and register the deferred plugin ``name`` (a failure marks it broken)."""
        ep = self.deferred.pop(name, None)
        if ep is None:
            return
        info = self.infos[name]
        try:
            plugin = ep.load()
        except Exception as exc:
            info.status, info.hooks = "broken", []
            info.error = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
            return
        self.register_plugin(plugin, name, info)
        for caller in self.get_hookcallers(plugin) or []:
            self._restore_order(caller)

    def _restore_order(self, caller: pluggy.HookCaller) -> None:
        """Put ``caller``'s implementations in the order a full start gives them.

        pluggy orders implementations by registration (then ``tryfirst``/``trylast``/
        wrappers); a deferred plugin registers late, so its implementations are
        added again in the rank order of their plugins.
        """
        impls = list(caller.get_hookimpls())
        impls.sort(key=lambda impl: self.rank.get(impl.plugin_name, len(self.rank)))
        caller._hookimpls.clear()
        for impl in impls:
            caller._add_hookimpl(impl)

    def load_for_hook(self, hook_name: str) -> None:
        """Register every deferred plugin that implements ``hook_name`` (for a plugin's own hook, and
        every plugin that declares hooks: the hook's spec decides, e.g., whether the first result wins)."""
        if not self.deferred:
            return
        wanted = [n for n in self.deferred if hook_name in self.infos[n].hooks]
        if not hasattr(hookspecs, hook_name):  # a plugin's own hook: the plugins declaring hooks too
            wanted += [n for n in self.deferred if DECLARE_HOOKS in self.infos[n].hooks]
        for name in sorted(set(wanted), key=lambda n: self.rank.get(n, 0)):
            self.load_deferred(name)

    def load_all(self) -> None:
        """Import every deferred plugin (``plugin:list``, anything that walks every plugin)."""
        for name in sorted(self.deferred, key=lambda n: self.rank.get(n, 0)):
            self.load_deferred(name)

    def broken(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if i.status == "broken"]

    def register_plugin(self, plugin: object, name: str, info: PluginInfo | None = None) -> None:
        """Register ``plugin`` as ``name``; a validation error marks it broken."""
        info = info or PluginInfo(name=name, status="enabled", module=getattr(plugin, "__name__", repr(plugin)))
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            info.status, info.error = "broken", one_line(f"{exc}")
        else:
            info.hooks = sorted(c.name for c in self.get_hookcallers(plugin) or [])
        self.infos[name] = info

    def drop_unknown_hooks(self) -> None:
        """Mark plugins whose hooks no spec declares as broken and unregister them.

        That is any hook name, ``skiff_``-prefixed (a typo, a missing plugin) or not
        (not a Skiff hook at all): pluggy's ``check_pending`` would otherwise raise
        and stop every command.
        """
        for hook_name, caller in list(vars(self.hook).items()):
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    self.mark_broken(impl.plugin, unknown_hook_reason(hook_name))
        self._check_pending()

    def mark_broken(self, plugin: object, reason: str) -> bool:
        """Unregister a registered ``plugin`` and record it as broken; False if it was not registered."""
        name = self.get_name(plugin)
        if name is None:
            return False
        self.unregister(plugin)
        info = self.infos.setdefault(name, PluginInfo(name=name, status="broken"))
        info.status, info.error, info.hooks = "broken", reason, []
        return True

    def _check_pending(self) -> None:
        """pluggy's ``check_pending``, turning whatever it still refuses into broken plugins."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                if not self.mark_broken(exc.plugin, one_line(str(exc))):
                    raise


class LazyHooks:
    """``pm.hook`` for callers: ``calls.skiff_x`` first registers the deferred plugins implementing it."""

    def __init__(self, pm: SkiffPluginManager) -> None:
        self._pm = pm

    def __getattr__(self, name: str) -> Any:
        self._pm.load_for_hook(name)
        return getattr(self._pm.hook, name)


def unknown_hook_reason(hook_name: str) -> str:
    if hook_name.startswith(f"{PROJECT}_"):
        return f"implements unknown hook {hook_name} (misspelled, or its plugin is missing)"
    return f"implements hook {hook_name}, which is not a Skiff hook (Skiff hooks are named {PROJECT}_*)"


def one_line(text: str) -> str:
    return " ".join(text.split())


def extra_from_env() -> list[tuple[str, object]]:
    """Plugins named in ``SKIFF_PLUGINS`` (comma-separated module names)."""
    names = [n.strip() for n in os.environ.get(EXTRA_ENV, "").split(",") if n.strip()]
    return [(name, name) for name in names]


@dataclass(frozen=True)
class InstalledPlugin:
    """One entry point of the ``skiff`` group: what :func:`installed_plugins` finds (or cached)."""

    name: str
    value: str  # "module" or "module:attribute"
    distribution: str = ""
    version: str = ""

    def load(self) -> object:
        module, _, attribute = self.value.partition(":")
        found: object = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            found = getattr(found, part)
        return found


def installed_plugins(cache: Path | None = None, fingerprint: list[list[Any]] | None = None) -> list[InstalledPlugin]:
    """The ``skiff`` entry points of every installed distribution, one per name, in name order.

    Scanning the installed distributions (and importing ``importlib.metadata``)
    is most of what a command costs before it runs, so with ``cache`` the answer
    is kept in that file together with a fingerprint of what it was read from:
    every ``sys.path`` folder and each ``*.dist-info``/``*.egg-info`` folder's
    ``entry_points.txt`` (their modification times). Installing, removing or
    reinstalling a distribution changes the fingerprint, so the next command
    scans again. Root never reads or writes the cache (it would trust a file
    the service account can write). ``fingerprint``: :func:`install_fingerprint`'s
    answer, when the caller already has it.
    """
    use_cache = cache is not None and os.geteuid() != 0
    if fingerprint is None:
        fingerprint = install_fingerprint() if use_cache else []
    if use_cache and cache is not None:
        cached = _read_cache(cache, fingerprint)
        if cached is not None:
            return cached
    found = _scan_entry_points()
    if use_cache and cache is not None:
        _write_cache(cache, fingerprint, found)
    return found


def _scan_entry_points() -> list[InstalledPlugin]:
    from importlib import metadata

    if sys.version_info >= (3, 10):
        selected: Iterable[metadata.EntryPoint] = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:  # a dict of groups before 3.10
        selected = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    unique: dict[str, InstalledPlugin] = {}
    for ep in selected:
        if ep.name not in unique:
            dist, version = _dist_of(ep)
            unique[ep.name] = InstalledPlugin(ep.name, ep.value, dist, version)
    return [unique[n] for n in sorted(unique)]


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


def _read_cache(cache: Path, fingerprint: list[list[Any]]) -> list[InstalledPlugin] | None:
    try:
        data = json.loads(cache.read_text())
        if data.get("fingerprint") != fingerprint:
            return None
        return [InstalledPlugin(**entry) for entry in data["plugins"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # unreadable, or not this shape
        return None


def _write_cache(cache: Path, fingerprint: list[list[Any]], found: list[InstalledPlugin]) -> None:
    text = json.dumps({"fingerprint": fingerprint, "plugins": [asdict(p) for p in found]})
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, cache)
    except OSError:  # a read-only root: scan every time
        pass


def build_plugin_manager(
    disabled: Iterable[str] = (),
    plugins: Iterable[tuple[str, object]] = (),
    load_entry_points: bool = True,
    cache: Path | None = None,
    defer: Mapping[str, Sequence[str]] | None = None,
    installed: Sequence[InstalledPlugin] | None = None,
) -> SkiffPluginManager:
    """Make a plugin manager with the core hookspecs and the given plugins.

    ``plugins`` are extra ``(name, module-or-object)`` pairs (tests use them);
    with ``load_entry_points`` every installed plugin of the ``skiff`` group is
    loaded too, except those named in ``disabled`` or ``SKIFF_DISABLED_PLUGINS``;
    ``cache`` is the file :func:`installed_plugins` may keep them in, ``installed``
    what it already answered.

    ``defer`` maps entry-point names to the hooks each implements (as the command
    cache recorded them, see :mod:`skiff.commandcache`): those plugins are not
    imported now but when a caller reaches one of their hooks through
    :attr:`SkiffPluginManager.calls` (or :meth:`SkiffPluginManager.load_all`).
    A plugin that declares hooks (``skiff_addhooks``) is imported before any plugin's
    own hook is reached, and before an imported plugin is checked for unknown hooks.
    """
    pm = SkiffPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.hook.skiff_addhooks.call_historic(kwargs={"pm": pm})
    off = set(disabled) | disabled_from_env()
    defer = defer or {}
    if load_entry_points:
        for ep in installed_plugins(cache) if installed is None else installed:
            pm.rank[ep.name] = len(pm.rank)
            info = PluginInfo(
                name=ep.name, status="enabled", module=ep.value, distribution=ep.distribution, version=ep.version
            )
            if ep.name in off:
                info.status = "disabled"
                pm.infos[ep.name] = info
                continue
            hooks = defer.get(ep.name)
            if hooks is not None:
                info.hooks = sorted(hooks)
                pm.infos[ep.name] = info
                pm.deferred[ep.name] = ep
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
        pm.rank.setdefault(name, len(pm.rank))
        if name in off:
            pm.infos[name] = PluginInfo(name=name, status="disabled", module=getattr(plugin, "__name__", ""))
            continue
        if isinstance(plugin, str):
            try:
                plugin = module_plugin(plugin)
            except Exception as exc:
                pm.infos[name] = PluginInfo(
                    name=name,
                    status="broken",
                    module=str(plugin),
                    error=f"failed to import {plugin}: {type(exc).__name__}: {exc}",
                )
                continue
        pm.register_plugin(plugin, name)
    if any(not caller.has_spec() for caller in vars(pm.hook).values() if isinstance(caller, pluggy.HookCaller)):
        pm.load_for_hook(DECLARE_HOOKS)  # an imported plugin implements a hook a deferred one may declare
    pm.drop_unknown_hooks()
    return pm


def module_plugin(module: ModuleType | str) -> ModuleType:
    """Import a plugin module by name (helper for tests and ``-p`` style loading)."""
    if isinstance(module, str):
        __import__(module)
        return sys.modules[module]
    return module
