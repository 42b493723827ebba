"""The ``skiff`` command line: a click group that plugins fill.

:func:`main` builds the plugin manager, then the CLI from it (plugins add
commands through ``skiff_commands``), and turns every error into one
``!     message`` line with exit status 1 (``SKIFF_TRACE=1`` shows the
traceback). ``skiff ssh-command`` is the entry point of SSH logins: it
records the (redacted) command in the event log, splits
``SSH_ORIGINAL_COMMAND`` with shlex, refuses root-only commands, checks the
key's role and access list (:func:`skiff.access.authorize`) and dispatches
it, never to a shell.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__, access, events
from .context import Context, root_from_env
from .errors import SkiffError
from .output import Output
from .plugins import SkiffPluginManager, build_plugin_manager
from .privileges import settle

if TYPE_CHECKING:  # pragma: no cover
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")

R = TypeVar("R")

TRACE_ENV = "SKIFF_TRACE"


def local_only(command: click.Command) -> click.Command:
    """Mark a command as refused over SSH (admin commands, internal hooks)."""
    command.skiff_local_only = True  # type: ignore[attr-defined]
    return command


def is_local_only(command: click.Command | None) -> bool:
    return bool(getattr(command, "skiff_local_only", False))


def unknown_command_message(group: click.Group, ctx: click.Context, name: str, over_ssh: bool = False) -> str:
    """``unknown command 'apps:lst'; did you mean apps:list?`` (only names the caller may run)."""
    names = [n for n in group.list_commands(ctx) if not (over_ssh and is_local_only(group.get_command(ctx, n)))]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; run 'skiff help' for the list"
    return f"unknown command {name!r}{hint}"


class SkiffGroup(click.Group):
    """A click group that suggests the nearest command for a typo."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and self.get_command(ctx, name) is None and not name.startswith("-"):
            raise click.UsageError(unknown_command_message(self, ctx, name), ctx)
        return super().resolve_command(ctx, args)


def pass_context(f: Callable[Concatenate[Context, P], R]) -> Callable[P, R]:
    """Decorator: pass the :class:`Context` (click's ``obj``) as first argument."""
    return click.pass_obj(f)


def build_cli(context: Context) -> click.Group:
    """Make the ``skiff`` group: core commands, then every plugin's."""

    @click.group(cls=SkiffGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", prog_name="skiff", message="%(prog)s %(version)s")
    def cli() -> None:
        """Skiff: git push to deploy, on your own server.

        Commands follow Dokku's names: skiff COMMAND [APP] [ARGS]...
        Over SSH: ssh skiff@HOST COMMAND [APP] [ARGS]...
        """

    from .core_commands import add_core_commands
    from .settings import add_commands

    add_core_commands(cli)
    context.hook.skiff_commands(cli=cli)
    add_commands(context, cli)
    return cli


def _disabled_in_state(root: Path) -> set[str]:
    from .state import State

    if not (root / State.filename).exists():
        return set()
    state = State(root, migrate=False)
    try:
        return state.disabled_plugins()
    except Exception:
        return set()
    finally:
        state.close()


#: where a command keeps the installed entry points between starts (see plugins.installed_plugins)
PLUGIN_CACHE = Path("cache") / "entry-points.json"


def make_context(pm: SkiffPluginManager | None = None, output: Output | None = None) -> Context:
    root = root_from_env()
    if pm is None:
        pm = build_plugin_manager(disabled=_disabled_in_state(root), cache=root / PLUGIN_CACHE)
    return Context(pm, root=root, output=output)


def ssh_arguments(cli: click.Group, context: Context, command: str) -> list[str]:
    """Turn ``SSH_ORIGINAL_COMMAND`` into CLI arguments, refusing what is not ours."""
    if not command.strip():
        return ["help"]
    try:
        args = shlex.split(command)
    except ValueError as exc:
        raise SkiffError(f"cannot parse the command: {exc}") from exc
    if not args:
        return ["help"]
    with click.Context(cli, obj=context) as ctx:
        target = cli.get_command(ctx, args[0])
        if target is None:
            raise SkiffError(unknown_command_message(cli, ctx, args[0], over_ssh=True))
    if is_local_only(target):
        raise SkiffError(f"{args[0]} is not available over SSH: run it in a shell on the server")
    return args


def _settle_user(cli: click.Group, context: Context, args: Sequence[str]) -> None:
    """Drop from root to the service account unless the command needs root."""
    if not args or args[0].startswith("-"):
        settle(None, "")
        return
    with click.Context(cli, obj=context) as ctx:
        settle(cli.get_command(ctx, args[0]), args[0])


def _log_ssh_command(cli: click.Group, context: Context, command: str) -> int:
    """Record the SSH command (redacted) in the event log; return the event's id."""
    try:
        args = shlex.split(command)
    except ValueError:
        return events.start(context, "ssh", "(a command that does not parse)")
    target = None
    if args:
        with click.Context(cli, obj=context) as ctx:
            target = cli.get_command(ctx, args[0])
    declared = access.declaration(target)
    return events.start(context, "ssh", events.command_line(args, bool(declared and declared.log_assignments)))


def run(cli: click.Group, context: Context, args: Sequence[str]) -> int:
    """Invoke the CLI with ``args``; return the exit status (SSH commands go to the event log)."""
    logged: list[int] = []
    try:
        status = _invoke(cli, context, args, logged)
        for event_id in logged:
            with contextlib.suppress(Exception):
                events.finish(context, event_id, status)
        return status
    finally:
        context.close()


def _invoke(cli: click.Group, context: Context, args: Sequence[str], logged: list[int]) -> int:
    out = context.output
    try:
        if args and args[0] == "ssh-command":
            context.via_ssh = True
            context.ssh_key_name = os.environ.get("SKIFF_KEY_NAME")
            command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
            logged.append(_log_ssh_command(cli, context, command))
            args = ssh_arguments(cli, context, command)
            access.authorize(cli, context, args)
        _settle_user(cli, context, args)
        result = cli.main(list(args), prog_name="skiff", standalone_mode=False, obj=context)
        return result if isinstance(result, int) else 0
    except SkiffError as exc:
        _trace()
        out.error(str(exc))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        out.error("aborted")
        return 1
    except click.ClickException as exc:
        _trace()
        cmd = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and ctx.command is not None and ctx.parent is not None:
            cmd = f" (see 'skiff {ctx.command.name} --help')"
        out.error(exc.format_message() + cmd)
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:
        _trace()
        out.error(f"unexpected error: {type(exc).__name__}: {exc} (SKIFF_TRACE=1 shows the traceback)")
        return 1


def _trace() -> None:
    if os.environ.get(TRACE_ENV):
        traceback.print_exc()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``skiff``."""
    os.umask(0o022)
    context = make_context()
    for info in context.pm.broken():
        context.output.warn(f"plugin {info.name} is broken and was skipped: {info.error}")
    cli = build_cli(context)
    sys.exit(run(cli, context, list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":  # pragma: no cover
    main()
