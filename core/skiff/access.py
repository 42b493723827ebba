"""Who may run which command over SSH: command levels, key roles, access lists.

Every click command declares its level with one decorator line above
``@click.command``:

``@access.public_command``
    any key (``help``, ``version``).
``@access.app_command(app="app")``
    a deployer key may run it on the apps whose access list names it; ``app``
    is the parameter that names the app (a variadic parameter counts with its
    first value; the value ``--global`` means the global scope). ``creates=True``:
    running it on an app that does not exist creates that app, which a deployer
    may do only when the ``deployer-create-apps`` setting is on. ``resolve``
    turns the parameter into an app name (e.g. git's ``'/APP.git'``).
``@access.service_command(service="name", kind="postgres", app=None)``
    a deployer may run it on a service only if every app the service is linked
    to is in its list (and the service is linked to at least one); if ``app`` is
    given, that app must be in its list too.
``@access.admin_command``
    admin keys only. A command that declares nothing is treated the same.
``@access.root_command`` (or ``skiff.cli.local_only`` / ``skiff.privileges.needs_root``)
    a root shell on the server only; refused over SSH.

:func:`authorize` is called by ``skiff ssh-command`` after the command is
resolved. Admin keys (and forced commands without ``SKIFF_KEY_NAME``, which
only root can write by hand) may run every SSH command; a deployer is
checked against the declaration. A refusal is one line and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import click

from .errors import SkiffError

PUBLIC, APP, ADMIN, ROOT = "public", "app", "admin", "root"
LEVELS = (PUBLIC, APP, ADMIN, ROOT)
ROLES = ("admin", "deployer")
ATTR = "skiff_access"
GLOBAL_PARAMS = ("is_global", "global_")
GLOBAL_VALUE = "--global"


@dataclass(frozen=True)
class Declaration:
    """What a command acts on, and so who may run it."""

    level: str
    app: str | None = None
    service: str | None = None
    kind: str | None = None
    creates: bool = False
    resolve: Callable[[str], str] | None = None
    #: ``KEY=VALUE`` arguments are logged as they are (``ps:scale web=2``), not as ``KEY=***``
    log_assignments: bool = False


class AccessDenied(SkiffError):
    """A key may not run a command (over SSH)."""


def _declare(declaration: Declaration) -> Callable[[click.Command], click.Command]:
    def mark(command: click.Command) -> click.Command:
        if not isinstance(command, click.Command):
            raise TypeError("put the access declaration above @click.command")
        setattr(command, ATTR, declaration)
        if declaration.level == ROOT:
            command.skiff_local_only = True  # type: ignore[attr-defined]
        return command

    return mark


def app_command(
    app: str = "app",
    *,
    creates: bool = False,
    resolve: Callable[[str], str] | None = None,
    log_assignments: bool = False,
) -> Callable[[click.Command], click.Command]:
    """Declare an app-level command whose parameter ``app`` names the app."""
    return _declare(Declaration(APP, app=app, creates=creates, resolve=resolve, log_assignments=log_assignments))


def service_command(
    service: str = "name", *, kind: str, app: str | None = None
) -> Callable[[click.Command], click.Command]:
    """Declare a command on a service of ``kind`` (the plugin's name) named by parameter ``service``."""
    return _declare(Declaration(APP, app=app, service=service, kind=kind))


def admin_command(command: click.Command) -> click.Command:
    """Declare an admin-only command (global settings, every app at once, keys)."""
    return _declare(Declaration(ADMIN))(command)


def public_command(command: click.Command) -> click.Command:
    """Declare a command any key may run (it shows nothing about apps)."""
    return _declare(Declaration(PUBLIC))(command)


def root_command(command: click.Command) -> click.Command:
    """Declare a command for a root shell on the server only (refused over SSH)."""
    return _declare(Declaration(ROOT))(command)


def declaration(command: click.Command | None) -> Declaration | None:
    """The command's declaration; ``local_only``/``needs_root`` commands are ``root``."""
    if command is None:
        return None
    if getattr(command, "skiff_local_only", False) or getattr(command, "skiff_needs_root", False):
        return Declaration(ROOT)
    return getattr(command, ATTR, None)


def effective(command: click.Command | None) -> Declaration:
    """The declaration, or ``admin`` for a command that declares nothing."""
    return declaration(command) or Declaration(ADMIN)


# -- roles and lists (answered by plugins) -----------------------------------------------


def key_role(context: Any, key: str | None) -> str:
    """``admin`` or ``deployer``. No key name: a hand-written forced command (admin).

    No plugin answering ``skiff_key_role`` means ``deployer``: fail closed.
    """
    if key is None:
        return "admin"
    role = context.hook.skiff_key_role(context=context, key=key)
    return role if role in ROLES else "deployer"


def key_exists(context: Any, key: str) -> bool:
    """Whether the key ``key`` is installed now (``skiff_key_exists``); no answer: ``False``."""
    return bool(context.hook.skiff_key_exists(context=context, key=key))


def may_access(context: Any, key: str, app: str, creating: bool = False) -> bool:
    return bool(context.hook.skiff_app_access(context=context, key=key, app=app, creating=creating))


def visible_apps(context: Any, key: str | None) -> list[str]:
    """The apps ``key`` may see and act on, sorted: every app for an admin, else its access list.

    The same answer :func:`authorize` gives app by app (``skiff_app_access``), for
    views that list apps (the dashboard). ``key=None`` (root's shell) sees every app.
    """
    apps = context.state.list_apps()
    if key_role(context, key) == "admin":
        return sorted(apps)
    return sorted(app for app in apps if may_access(context, key or "", app))


def service_apps(context: Any, kind: str, service: str) -> list[str] | None:
    apps: list[str] | None = context.hook.skiff_service_apps(context=context, kind=kind, service=service)
    return apps


# -- the check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One SSH command of one key, parsed."""

    key: str
    role: str
    name: str
    command: click.Command
    params: Mapping[str, Any]
    args: Sequence[str]

    def refuse(self, what: str = "") -> AccessDenied:
        return AccessDenied(f"key {self.key!r} ({self.role}) may not run {self.name}{what}")


def parse_params(
    cli: click.Group, context: Any, command: click.Command, name: str, args: Sequence[str]
) -> dict[str, Any]:
    """The command's parameters as click would pass them (no callbacks, prompts or help)."""
    with click.Context(cli, obj=context, info_name="skiff") as parent:
        with command.make_context(name, list(args), parent=parent, resilient_parsing=True) as ctx:
            return dict(ctx.params)


def authorize(cli: click.Group, context: Any, args: Sequence[str]) -> None:
    """Refuse ``args`` (an SSH command line) if the session's key may not run it."""
    key = context.ssh_key_name
    role = key_role(context, key)
    if role == "admin" or not args:
        return
    with click.Context(cli, obj=context) as ctx:
        command = cli.get_command(ctx, args[0])
    if command is None:
        return  # ssh_arguments already refused it
    decl = effective(command)
    if decl.level == PUBLIC:
        return
    if decl.level != APP:
        raise Request(key, role, args[0], command, {}, args[1:]).refuse()
    params = parse_params(cli, context, command, args[0], args[1:])
    request = Request(key, role, args[0], command, params, args[1:])
    _check_global(request)
    app = app_of(decl, params)
    if app == GLOBAL_VALUE:
        raise request.refuse(" --global")
    if decl.service:
        _check_service(context, request, decl)
    if app is not None:
        _check_app(context, request, decl, app)
    elif not decl.service and not _asks_for_help(command, args[1:]):
        raise request.refuse(" without an app")


def app_of(decl: Declaration, params: Mapping[str, Any]) -> str | None:
    """The app a parsed command acts on (``--global`` for the global scope)."""
    if not decl.app:
        return None
    value = params.get(decl.app)
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    if not value:
        return None
    value = str(value)
    if value == GLOBAL_VALUE or decl.resolve is None:
        return value
    return decl.resolve(value)


def _check_global(request: Request) -> None:
    if any(request.params.get(name) for name in GLOBAL_PARAMS):
        raise request.refuse(" --global")


def _check_app(context: Any, request: Request, decl: Declaration, app: str) -> None:
    creating = decl.creates and not context.state.app_exists(app)
    if not may_access(context, request.key, app, creating=creating):
        raise request.refuse(f" on app {app!r}")


def _check_service(context: Any, request: Request, decl: Declaration) -> None:
    service = request.params.get(decl.service or "")
    if not service:
        if _asks_for_help(request.command, request.args):
            return
        raise request.refuse(" without a service")
    apps = service_apps(context, decl.kind or "", str(service))
    if not apps or not all(may_access(context, request.key, app) for app in apps):
        raise request.refuse(f" on {decl.kind} service {str(service)!r}")


def _asks_for_help(command: click.Command, args: Sequence[str]) -> bool:
    names = command.get_help_option_names(click.Context(command))
    before = list(args)[: list(args).index("--")] if "--" in args else list(args)
    return any(arg in names for arg in before)
