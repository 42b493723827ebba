"""Declared settings: a plugin says what it can be configured with, the core does the rest.

A plugin answers the ``skiff_settings`` hook with :class:`Namespace` objects, each a
list of :class:`Setting`. It then gets typed getters (:meth:`Namespace.get`) and, unless
it asks otherwise, the commands ``NS:set [--global] [APP] KEY [VALUE]`` (no VALUE:
back to the default, as in Dokku) and ``NS:report [APP] [--format text|json]``, with
access declarations derived from each setting's ``level``.

Values are plugin properties of the state store (``state.get_property(store, name,
app=...)``), stored as the setting's parser returns them (``True``, ``500``, ``"25m"``).

Precedence of :meth:`Namespace.get` for ``app=APP`` (first one set wins):

1. the app's value (settings of scope ``app`` or ``both``);
2. the environment variable ``env`` (settings of scope ``global`` or ``both``), which
   overrides the stored global value so tests and packagers can pin it;
3. the stored global value (``NS:set --global KEY VALUE``);
4. the ``default``.

An empty stored value counts as not set.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import SkiffError, ValidationError
from .validate import shown

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context

GLOBAL = ""  # the ``app`` of global values (skiff.state.GLOBAL)
SCOPES = ("app", "global", "both")
LEVELS = ("app", "admin", "root")  # who may change it: the app's deployers, admin keys, root on the server
N = TypeVar("N", int, float)
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


# -- parsers: text from the command line -> the stored value -------------------------------


def parse_bool(value: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``, any case)."""
    lowered = str(value).strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValidationError(f"must be true or false, got {shown(value)}")


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers (ASCII digits, optional ``-``) within ``minimum``..``maximum``."""

    def parse(value: str) -> int:
        text = str(value).strip()
        digits = text[1:] if text.startswith("-") else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
            raise ValidationError(f"must be a whole number, got {shown(value)}")
        return _bounded(int(text), minimum, maximum)

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A parser of finite decimal numbers within ``minimum``..``maximum``."""

    def parse(value: str) -> float:
        try:
            result = float(str(value).strip())
        except ValueError:
            raise ValidationError(f"must be a number, got {shown(value)}") from None
        if not math.isfinite(result):
            raise ValidationError(f"must be a number, got {shown(value)}")
        return _bounded(result, minimum, maximum)

    return parse


def _bounded(value: N, minimum: float | None, maximum: float | None) -> N:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f"from {minimum} "
        high = "" if maximum is None else f"to {maximum}"
        raise ValidationError(f"must be a number {low}{high}".rstrip() + f", got {value}")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting exactly one of ``allowed``."""

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValidationError(f"must be one of {', '.join(allowed)}, got {shown(value)}")
        return value

    return parse


PARSERS: dict[Any, Callable[[str], Any]] = {str: str, bool: parse_bool, int: integer(), float: number()}


# -- declarations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting a plugin declares.

    ``type``: ``str``, ``int``, ``bool``, ``float``, or a parser ``(text) -> value``
    raising :class:`ValidationError` (e.g. :func:`integer` with bounds, :func:`choice`).
    ``default``: what :meth:`Namespace.get` returns when nothing is set. ``scope``:
    ``app`` (per app), ``global`` (``--global`` only) or ``both`` (per app, falling
    back to the global value). ``env``: an environment variable overriding the global
    value. ``level``: who may change it (``app``: the app's deployers; ``admin``:
    admin keys; ``root``: root on the server only, never over SSH); global values
    always need at least ``admin``. ``validate(context, value)``: a check that needs
    the running system (installed builders, files), raising one-line
    :class:`ValidationError`. ``help``: one line for ``NS:set --help``.
    """

    name: str
    type: Any = str
    default: Any = None
    scope: str = "app"
    env: str | None = None
    level: str = "app"
    validate: Callable[[Context, Any], None] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"setting {self.name}: scope must be one of {SCOPES}")
        if self.level not in LEVELS:
            raise ValueError(f"setting {self.name}: level must be one of {LEVELS}")

    @property
    def per_app(self) -> bool:
        return self.scope in ("app", "both")

    @property
    def is_global(self) -> bool:
        return self.scope in ("global", "both")

    def parse(self, value: str) -> Any:
        """The stored form of the text ``value``; :class:`ValidationError` names the setting."""
        parser = PARSERS.get(self.type, self.type)
        try:
            return parser(value)
        except ValidationError as exc:
            message = str(exc)
            raise ValidationError(f"{self.name} {message}" if message.startswith("must ") else message) from None

    def level_for(self, scope: str) -> str:
        """The level needed to change it in ``scope`` (an app, or :data:`GLOBAL`)."""
        if scope == GLOBAL and self.level == "app":
            return "admin"
        return self.level


def _loaded(setting: Setting, value: Any) -> Any:
    """A stored or environment value as the setting's type (text is parsed; bad text: unset)."""
    if isinstance(value, str) and setting.type is not str:
        try:
            return setting.parse(value)
        except ValidationError:
            return None
    return value


def _unset(value: Any) -> bool:
    return value is None or value == ""


def _resolved(setting: Setting, own: Any, shared: Any) -> Any:
    """The precedence of the module docstring, given the app's and the global stored values."""
    for value in (
        own if setting.per_app else None,
        os.environ.get(setting.env) if setting.is_global and setting.env else None,
        shared if setting.is_global else None,
    ):
        loaded = _loaded(setting, value)
        if not _unset(loaded):
            return loaded
    return setting.default


@dataclass(frozen=True)
class Namespace:
    """The settings of one plugin, and what the core generates for them.

        ``name`` is the command prefix (``hello`` -> ``hello:set``, ``hello:report``);
        ``store`` the property namespace the values live in (default: ``name``).
        ``commands``: which of ``set`` and ``report`` the core generates (a plugin with a
        command of its own, e.g. ``buildpacks:set APP PACK``, leaves it out and stores
        through :meth:`set`). ``apply(context, scope, setting, store)`` wraps each change:
        it must call ``store()`` (e.g. inside a config rebuild that undoes it on failure).
        ``report(context, app)`` adds fields to the generated report. ``noun`` names a
        setting in errors ("unknown stack property 'colour'"), ``title`` the namespace there
    and in report titles (default: ``name``).
    """

    name: str
    settings: tuple[Setting, ...]
    store: str = ""
    commands: tuple[str, ...] = ("set", "report")
    title: str = ""
    noun: str = "setting"
    apply: Callable[[Context, str, Setting, Callable[[], None]], None] | None = None
    report: Callable[[Context, str | None], Mapping[str, Any]] | None = None
    by_name: dict[str, Setting] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", tuple(self.settings))
        object.__setattr__(self, "by_name", {s.name: s for s in self.settings})
        if len(self.by_name) != len(self.settings):
            raise ValueError(f"settings namespace {self.name}: a name is declared twice")

    @property
    def prop(self) -> str:
        return self.store or self.name

    def setting(self, name: str, scope: str | None = None) -> Setting:
        """The declared setting ``name``; with ``scope``, it must be settable there."""
        found = self.by_name.get(name)
        if found is None:
            known = ", ".join(sorted(s.name for s in self.settings if scope is None or _fits(s, scope)))
            raise ValidationError(f"unknown {self.title or self.name} {self.noun} {shown(name)}; known: {known}")
        if scope is not None and not _fits(found, scope):
            where = "with --global" if scope != GLOBAL else "per app"
            usage = f"{self.name}:set --global {name}" if scope != GLOBAL else f"{self.name}:set APP {name}"
            raise ValidationError(f"{name} can only be set {where} ({usage} VALUE)")
        return found

    # -- typed getters ---------------------------------------------------------------------

    def get(self, state: Any, name: str, app: str = GLOBAL) -> Any:
        """The value of ``name`` for ``app`` (or the global one): see the module's precedence."""
        setting = self.setting(name)
        own = state.get_property(self.prop, name, app=app) if app and setting.per_app else None
        shared = state.get_property(self.prop, name) if setting.is_global and _unset(_loaded(setting, own)) else None
        return _resolved(setting, own, shared)

    def stored(self, state: Any, name: str, app: str = GLOBAL) -> Any:
        """The value stored for exactly ``app`` (or globally), ``None`` when unset."""
        value = state.get_property(self.prop, name, app=app)
        return None if value in (None, "") else value

    def values(self, state: Any, app: str = GLOBAL) -> dict[str, Any]:
        """Every setting resolved for ``app`` (without an app: every global one) -> its value.

        Two reads of the store, whatever the number of settings: a snapshot.
        """
        own = state.properties(self.prop, app=app) if app else {}
        shared = state.properties(self.prop)
        return {
            s.name: _resolved(s, own.get(s.name) if s.per_app else None, shared.get(s.name))
            for s in self.settings
            if app or s.is_global
        }

    # -- changes -----------------------------------------------------------------------------

    def parse(self, context: Context, name: str, value: str, app: str = GLOBAL) -> Any:
        """Check ``value`` for ``name`` in ``app``'s scope; return what would be stored."""
        setting = self.setting(name, app)
        parsed = setting.parse(value)
        if setting.validate is not None:
            setting.validate(context, parsed)
        return parsed

    def set(self, context: Context, name: str, value: str | None, app: str = GLOBAL) -> Any:
        """Store the parsed ``value`` (``None`` or ``""``: unset); return what was stored."""
        setting = self.setting(name, app)
        parsed = None if value in (None, "") else self.parse(context, name, str(value), app)

        def store() -> None:
            if parsed is None:
                context.state.delete_property(self.prop, name, app=app)
            else:
                context.state.set_property(self.prop, name, parsed, app=app)

        if self.apply is not None:
            self.apply(context, app, setting, store)
        else:
            store()
        return parsed

    def unset(self, context: Context, name: str, app: str = GLOBAL) -> None:
        """Remove ``name``'s value for ``app`` (or the global one): back to the default."""
        self.set(context, name, None, app)


def _fits(setting: Setting, scope: str) -> bool:
    return setting.is_global if scope == GLOBAL else setting.per_app


def namespaces(context: Context) -> dict[str, Namespace]:
    """Every declared namespace by name (the first declaration of a name wins)."""
    found: dict[str, Namespace] = {}
    for result in context.hook.skiff_settings():
        for namespace in result or ():
            found.setdefault(namespace.name, namespace)
    return found


# -- who may change what -------------------------------------------------------------------


def require_level(context: Context, namespace: Namespace, setting: Setting, scope: str) -> None:
    """Refuse the change of ``setting`` in ``scope`` if the caller's level is too low."""
    level = setting.level_for(scope)
    if level == "app" or not context.via_ssh:
        return
    if level == "root":
        raise SkiffError(
            f"{namespace.name} {setting.name} can only be changed on the server itself (as root), not over SSH"
        )
    from . import access

    role = access.key_role(context, context.ssh_key_name)
    if role != "admin":
        raise access.AccessDenied(
            f"key {context.ssh_key_name!r} ({role}) may not change {namespace.name} {setting.name}"
        )


def command_level(namespace: Namespace) -> str:
    """The level of ``NS:set``: the lowest any of its settings needs (per app before global)."""
    levels = {s.level_for("app" if s.per_app else GLOBAL) for s in namespace.settings}
    return next((level for level in LEVELS if level in levels), "root")


# -- the generated commands -------------------------------------------------------------------


def report_fields(context: Context, namespace: Namespace, app: str | None) -> dict[str, Any]:
    """The report of ``app`` (or the global values): ``name_with_underscores -> value``."""
    fields = {key.replace("-", "_"): value for key, value in namespace.values(context.state, app or GLOBAL).items()}
    if namespace.report is not None:
        fields.update(namespace.report(context, app))
    return fields


def print_report(context: Context, title: str, fields: Mapping[str, Any], fmt: str) -> None:
    """``--format json``: the fields as sorted JSON; text: ``=====> title`` and aligned lines."""
    import click

    if fmt == "json":
        click.echo(json.dumps(dict(fields), indent=2, sort_keys=True, default=str))
    else:
        context.output.fields(title, fields)


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def set_command(namespace: Namespace) -> Any:
    """``NS:set [--global] [APP] KEY [VALUE]``: store a setting, or with no VALUE reset it."""
    import click

    from . import access

    names = ", ".join(
        f"{s.name}{'' if s.per_app else ' (global)'}{' (app only)' if not s.is_global else ''}"
        for s in namespace.settings
    )
    level = command_level(namespace)
    declare = {"app": access.app_command(app="args"), "admin": access.admin_command, "root": access.root_command}

    @click.command(
        f"{namespace.name}:set",
        help=f"Set a {namespace.name} {namespace.noun}: {namespace.name}:set [--global] [APP] KEY [VALUE] "
        f"(no VALUE: the default).\n\nKeys: {names}.",
    )
    @click.option("--global", "is_global", is_flag=True, help="Set the global value (the default of every app).")
    @click.argument("args", nargs=-1, required=True)
    @click.pass_obj
    def command(context: Context, is_global: bool, args: tuple[str, ...]) -> None:
        rest = list(args)
        scope = GLOBAL
        if not is_global:
            if not any(s.per_app for s in namespace.settings):
                raise click.UsageError(
                    f"{namespace.name} settings are global: use {namespace.name}:set --global KEY VALUE"
                )
            scope = context.state.require_app(rest.pop(0))
        if not rest or len(rest) > 2:
            raise click.UsageError(f"usage: {namespace.name}:set [--global] [APP] KEY [VALUE]")
        key, value = rest[0], (rest[1] if len(rest) == 2 else None)
        setting = namespace.setting(key, scope)
        require_level(context, namespace, setting, scope)
        stored = namespace.set(context, key, value, scope)
        where = f"of {scope}" if scope else "(global)"
        if stored is None:
            context.output.step(f"Reset {namespace.name} {key} {where} to the default")
        else:
            context.output.step(f"Set {namespace.name} {key} {where} to {_shown(stored)}")

    return declare[level](command)


def report_command(namespace: Namespace) -> Any:
    """``NS:report [APP] [--format text|json]``: the settings of APP (or the global ones)."""
    import click

    from . import access

    @click.command(f"{namespace.name}:report", help=f"Show the {namespace.name} settings of APP (or the global ones).")
    @click.argument("app", required=False)
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
    @click.pass_obj
    def command(context: Context, app: str | None, fmt: str) -> None:
        if app:
            context.state.require_app(app)
        title = f"{app + ' ' if app else 'global '}{namespace.title or namespace.name} information"
        print_report(context, title, report_fields(context, namespace, app), fmt)

    if any(s.per_app for s in namespace.settings):
        return access.app_command()(command)
    return access.admin_command(command)


def generated_commands(namespace: Namespace) -> Iterable[Any]:
    """The click commands the core makes for ``namespace``."""
    if "set" in namespace.commands:
        yield set_command(namespace)
    if "report" in namespace.commands:
        yield report_command(namespace)


def add_commands(context: Context, cli: Any) -> None:
    """Add every declared namespace's generated commands (a plugin's own command of that name wins)."""
    for namespace in namespaces(context).values():
        for command in generated_commands(namespace):
            if command.name not in cli.commands:
                cli.add_command(command)
