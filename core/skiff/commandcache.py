"""The command cache: a start imports only the plugins the command needs.

A full start imports every plugin, asks each for its commands (``skiff_commands``)
and settings (``skiff_settings``) and builds the whole click tree. The service
account keeps what that start learnt in ``SKIFF_ROOT/cache/commands.json``:

- every command's name, help texts, ``hidden``/``deprecated`` flags, whether it is
  refused over SSH, its declared access level, and its *owner*: the core (``""``),
  the plugin whose ``skiff_commands`` added it last (``"apps"``), or the plugin whose
  namespace the core generated it for (``"settings:nginx"``);
- every plugin's status and the hooks it implements.

The next start with the same *key* (the installed entry points and the install
fingerprint of :func:`skiff.plugins.installed_plugins`, the disabled
plugins from the state store and ``SKIFF_DISABLED_PLUGINS``, ``SKIFF_PLUGINS``,
skiff's version, the interpreter) and unchanged *source files* (the modification
time of every module the full start imported from outside the stdlib and
site-packages: the core, plugins, editable installs) uses it instead:

- ``skiff --help`` lists the commands from the file, importing no plugin;
- a command imports the plugin that owns it and asks only that plugin for its
  commands (:class:`LazySkiffGroup`), so the click object is the real one;
- plugins are *deferred* (:func:`skiff.plugins.build_plugin_manager`): one is
  imported when a caller reaches one of its hooks, so every hook call still sees
  every implementation, in the order a full start gives them.

Installing, removing or upgrading a distribution changes the entry-point
fingerprint (:func:`skiff.plugins.installed_plugins`), ``plugin:enable`` /
``plugin:disable`` and ``SKIFF_DISABLED_PLUGINS`` change the key, an edited source
file changes its time: each makes the next start a full one, which writes the file
again. A plugin that was broken is imported at every start; if it loads now, the
start is a full one. Root never reads or writes the file (the service account can
write it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    import click

    from .plugins import InstalledPlugin, SkiffPluginManager

#: under ``SKIFF_ROOT``
CACHE = Path("cache") / "commands.json"
FORMAT = 1
HELP_WIDTH = 78


def key(
    installed: Iterable[InstalledPlugin], disabled: Iterable[str], fingerprint: list[list[Any]] | None = None
) -> dict[str, Any]:
    """What the cached tree depends on besides the source files.

    ``fingerprint`` is the install fingerprint (:func:`skiff.plugins.install_fingerprint`):
    any install or removal, even of a library a plugin imports, makes a full start, so a
    plugin that no longer imports is named as broken at once.
    """
    return key_of_rows([[p.name, p.value, p.distribution, p.version] for p in installed], disabled, fingerprint)


def key_of_rows(
    installed: list[list[str]], disabled: Iterable[str], fingerprint: list[list[Any]] | None = None
) -> dict[str, Any]:
    """:func:`key` from the installed entry points as ``[name, value, distribution, version]`` rows."""
    from .discovery import EXTRA_ENV

    return {
        "format": FORMAT,
        "skiff": __version__,
        "python": sys.version,
        "executable": sys.executable,
        "plugins": installed,  # rows, not dataclasses.asdict: 10x faster
        "disabled": sorted(disabled),
        "extra": os.environ.get(EXTRA_ENV, ""),
        "installs": fingerprint or [],
    }


class CommandCache:
    """The cache file of one ``SKIFF_ROOT`` for one key; :attr:`index` is what it held, if valid."""

    def __init__(self, path: Path, key: dict[str, Any]):
        self.path = path
        self.key = key
        self.index: dict[str, Any] | None = None

    @classmethod
    def open(cls, root: Path, key: dict[str, Any]) -> CommandCache | None:
        """The cache of ``root``, read if it is valid; ``None`` for root (never cached)."""
        if os.geteuid() == 0:
            return None
        cache = cls(root / CACHE, key)
        cache.index = cache._read()
        return cache

    def _read(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read())
            if data.get("key") != self.key:
                return None
            for path, mark in data["files"]:
                if _mark(path) != mark:
                    return None
            if not isinstance(data["commands"], dict) or not isinstance(data["plugins"], dict):
                return None
            return data  # type: ignore[no-any-return]
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def deferred(self) -> dict[str, list[str]] | None:
        """Plugins that may be deferred, with the hooks each implements (enabled ones only)."""
        if self.index is None:
            return None
        plugins: dict[str, Any] = self.index["plugins"]
        return {name: list(p["hooks"]) for name, p in plugins.items() if p["status"] == "enabled"}

    def agrees_with(self, pm: SkiffPluginManager) -> bool:
        """False when a plugin imported at this start (one that was broken) now has another status."""
        if self.index is None:
            return False
        plugins = self.index["plugins"]
        for name, info in pm.infos.items():
            cached = plugins.get(name)
            if name in pm.deferred:
                continue
            if cached is None or cached["status"] != info.status or sorted(cached["hooks"]) != sorted(info.hooks):
                return False
        return True

    def help_section(self, width: int) -> str | None:
        """The ``Commands:`` section of ``--help`` as the full start rendered it at ``width``."""
        if self.index is None:
            return None
        text = self.index.get("help", {}).get(str(width))
        return text if isinstance(text, str) else None

    def help_page(self, width: int) -> str | None:
        """The whole ``skiff --help`` as the full start printed it at ``width`` (:mod:`skiff.quickhelp`)."""
        if self.index is None:
            return None
        text = self.index.get("page", {}).get(str(width))
        return text if isinstance(text, str) else None

    def save(self, cli: click.Group, owners: Mapping[str, str], pm: SkiffPluginManager) -> None:
        """Write what this full start learnt (best effort: a read-only root just stays uncached)."""
        from .access import declaration

        commands = {}
        for name, command in cli.commands.items():
            if name not in owners:
                return  # added by something we cannot repeat: leave uncached
            declared = declaration(command)
            commands[name] = {
                "owner": owners[name],
                # what the command list of --help shows: click shortens the first paragraph
                "help": (command.help or "").partition("\n\n")[0],
                "short_help": command.short_help,
                "hidden": command.hidden,
                "deprecated": command.deprecated,
                "local_only": bool(getattr(command, "skiff_local_only", False)),
                "level": declared.level if declared else None,
            }
        data = {
            "key": self.key,
            # wrapping ~200 rows is most of what --help costs; terminals of 80 columns or more
            # all get this width (click's default max_width of 80, minus 2)
            "help": {str(HELP_WIDTH): _help_section(cli, HELP_WIDTH)},
            # the whole page of `skiff --help` at that width, which skiff.quickhelp prints
            # without importing click or pluggy
            "page": {str(HELP_WIDTH): _help_page(cli, HELP_WIDTH)},
            "files": [[path, _mark(path)] for path in source_files()],
            "plugins": {name: {"status": i.status, "hooks": i.hooks} for name, i in pm.infos.items()},
            "commands": commands,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps(data))
            os.replace(partial, self.path)
        except OSError:
            pass


def _help_section(cli: click.Group, width: int) -> str:
    import click

    formatter = click.HelpFormatter(width=width)
    with click.Context(cli, info_name="skiff") as ctx:
        cli.format_commands(ctx, formatter)
    return formatter.getvalue()


def _help_page(cli: click.Group, width: int) -> str:
    """What ``skiff --help`` prints (before echo's newline) when the formatter is ``width`` wide."""
    import click

    # as cli.make_context gives them (help_option_names among them): click keeps the help option
    settings = {**cli.context_settings, "terminal_width": width}
    with click.Context(cli, info_name="skiff", **settings) as ctx:
        return ctx.get_help()


def _mark(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def source_files() -> list[str]:
    """Files of the imported modules that no install changes (the core, plugins, editable sources).

    Modules of the stdlib and of site-packages folders are left out: an install
    changes those folders, which the entry-point fingerprint already notices.
    """
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    skip = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    skip.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    if site.ENABLE_USER_SITE and site.USER_SITE:
        skip.add(site.USER_SITE)
    prefixes = tuple(os.path.join(os.path.realpath(p), "") for p in skip)
    files = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        real = os.path.realpath(file)
        if not real.startswith(prefixes):
            files.add(file)
    return sorted(files)
