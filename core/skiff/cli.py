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
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__, commandcache, discovery, timeline
from .commandcache import CommandCache
from .context import Context, root_from_env
from .discovery import disabled_in_state as _disabled_in_state
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
    names = [n for n in group.list_commands(ctx) if not (over_ssh and _local_only_name(group, ctx, n))]
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; run 'skiff help' for the list"
    return f"unknown command {name!r}{hint}"


def _local_only_name(group: click.Group, ctx: click.Context, name: str) -> bool:
    if isinstance(group, LazySkiffGroup):
        return group.is_local_only(name)
    return is_local_only(group.get_command(ctx, name))


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


class LazySkiffGroup(SkiffGroup):
    """The ``skiff`` group of a cached start (:mod:`skiff.commandcache`).

    It knows every command from the cache's index and imports a command's owner
    (a plugin, or the core) only when the command itself is asked for; the
    command list of ``--help`` comes from the index alone.
    """

    def __init__(self, *args: Any, context: Context, index: dict[str, dict[str, Any]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.context = context
        self.index = index
        self._loaded: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.index))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.index:
            self.load(self.index[cmd_name]["owner"])
            if cmd_name not in self.commands:
                self.load_everything()
        return self.commands.get(cmd_name)

    def load_everything(self) -> None:
        """The index names a command its owner did not give: fill the group as a full start does.

        The cache was stale in a way its key and file times did not show; it is written
        again from this start, and the index is no longer trusted here.
        """
        full = _root_group()
        owners = add_every_command(self.context, full)
        for name, command in full.commands.items():
            self.commands.setdefault(name, command)
        self.index = {}
        cache = self.context.command_cache
        if cache is not None:
            cache.index = None
            if owners is not None:
                cache.save(full, owners, self.context.pm)

    def is_local_only(self, name: str) -> bool:
        entry = self.index.get(name)
        return (
            bool(entry["local_only"]) if entry and name not in self.commands else is_local_only(self.commands.get(name))
        )

    def load(self, owner: str) -> None:
        """Add the commands of ``owner`` that the index gives to it (the real click objects)."""
        if owner in self._loaded:
            return
        self._loaded.add(owner)
        scratch = click.Group()
        if owner == "":
            from .core_commands import add_core_commands

            add_core_commands(scratch)
        elif owner.startswith("settings:"):
            from .settings import generated_commands

            plugin = owner.partition(":")[2]
            self.context.pm.load_deferred(plugin)
            for namespace, _ in plugin_namespaces(self.context.pm, plugin):
                for command in generated_commands(namespace):
                    scratch.add_command(command)
        else:
            self.context.pm.load_deferred(owner)
            for impl in self.context.pm.hook.skiff_commands.get_hookimpls():
                if impl.plugin_name == owner:
                    call_alone(impl, cli=scratch)
        for name, command in scratch.commands.items():
            if self.index.get(name, {}).get("owner") == owner:
                self.add_command(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        cache = self.context.command_cache
        rendered = cache.help_section(formatter.width) if cache is not None else None
        if rendered is not None and formatter.current_indent == 0 and not self.commands:
            formatter.write_paragraph()
            formatter.write(rendered)  # what the full start rendered from the real commands
            return
        shown = click.Group(self.name)
        for name in self.list_commands(ctx):
            entry = self.index.get(name)
            if name in self.commands or entry is None:
                command = self.commands.get(name)
                if command is not None:
                    shown.add_command(command, name)
                continue
            stand_in = click.Command(
                name,
                help=entry["help"],
                short_help=entry["short_help"],
                hidden=entry["hidden"],
                deprecated=entry["deprecated"],
            )
            shown.add_command(stand_in)
        click.Group.format_commands(shown, ctx, formatter)


def _root_group(cls: type[click.Group] = SkiffGroup, **attrs: Any) -> click.Group:
    @click.group(cls=cls, context_settings={"help_option_names": ["-h", "--help"]}, **attrs)
    @click.version_option(__version__, "--version", prog_name="skiff", message="%(prog)s %(version)s")
    def cli() -> None:
        """Skiff: git push to deploy, on your own server.

        Commands follow Dokku's names: skiff COMMAND [APP] [ARGS]...
        Over SSH: ssh skiff@HOST COMMAND [APP] [ARGS]...
        """

    return cli


def plugin_namespaces(pm: SkiffPluginManager, only: str | None = None) -> list[tuple[Any, str]]:
    """``(namespace, plugin name)`` of every declared namespace, in the order pluggy calls them.

    The first declaration of a name wins, as in :func:`skiff.settings.namespaces`;
    ``only`` asks that one plugin alone.
    """
    found: dict[str, tuple[Any, str]] = {}
    for impl in reversed(pm.hook.skiff_settings.get_hookimpls()):
        if only is not None and impl.plugin_name != only:
            continue
        declared: Any = call_alone(impl)
        for namespace in declared or ():
            found.setdefault(namespace.name, (namespace, impl.plugin_name))
    return list(found.values())


def call_alone(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation as pluggy would (positionally, only the arguments it names)."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _plain_calls(pm: SkiffPluginManager, *hooks: str) -> bool:
    """True when no wrapper takes part in ``hooks`` (so calling each implementation alone is the same)."""
    return not any(
        impl.hookwrapper or impl.wrapper for hook in hooks for impl in getattr(pm.hook, hook).get_hookimpls()
    )


def build_cli(context: Context) -> click.Group:
    """Make the ``skiff`` group: core commands, then every plugin's.

    With a valid command cache (:mod:`skiff.commandcache`) the group loads each
    command's plugin when the command is asked for; otherwise every plugin adds
    its commands now, and the service account writes the cache for next time.
    """
    cache = context.command_cache
    if cache is not None and cache.index is not None:
        return _root_group(LazySkiffGroup, context=context, index=cache.index["commands"])
    cli = _root_group()
    owners = add_every_command(context, cli)
    if cache is not None and owners is not None:
        cache.save(cli, owners, context.pm)
    return cli


def add_every_command(context: Context, cli: click.Group) -> dict[str, str] | None:
    """Add the core's, every plugin's and every settings namespace's commands to ``cli``.

    Returns each command's owner (see :mod:`skiff.commandcache`), or ``None`` when a
    wrapper takes part in ``skiff_commands``/``skiff_settings`` (then the hooks are
    called as a whole and nothing may be cached).
    """
    from .core_commands import add_core_commands
    from .settings import add_commands, generated_commands

    add_core_commands(cli)
    pm = context.pm
    pm.load_all()
    if not _plain_calls(pm, "skiff_commands", "skiff_settings"):
        context.hook.skiff_commands(cli=cli)
        add_commands(context, cli)
        return None
    owners = dict.fromkeys(cli.commands, "")
    for impl in reversed(pm.hook.skiff_commands.get_hookimpls()):  # the order pluggy calls them in
        before = dict(cli.commands)
        call_alone(impl, cli=cli)
        owners.update((n, impl.plugin_name) for n, c in cli.commands.items() if before.get(n) is not c)
    for namespace, plugin in plugin_namespaces(pm):
        for command in generated_commands(namespace):
            if command.name not in cli.commands:
                cli.add_command(command)
                owners[command.name] = f"settings:{plugin}"
    return owners


#: where a command keeps the installed entry points between starts (see plugins.installed_plugins)
PLUGIN_CACHE = discovery.PLUGIN_CACHE


def make_context(pm: SkiffPluginManager | None = None, output: Output | None = None) -> Context:
    root = root_from_env()
    cache = None
    if pm is None:
        from .plugins import disabled_from_env, install_fingerprint, installed_plugins

        off = _disabled_in_state(root) | disabled_from_env()
        fingerprint = install_fingerprint() if os.geteuid() != 0 else []
        installed = installed_plugins(root / PLUGIN_CACHE, fingerprint)
        cache = CommandCache.open(root, commandcache.key(installed, off, fingerprint))
        pm = build_plugin_manager(disabled=off, installed=installed, defer=cache.deferred() if cache else None)
        if cache is not None and cache.index is not None and not cache.agrees_with(pm):
            cache.index = None
            pm = build_plugin_manager(disabled=off, installed=installed)
    context = Context(pm, root=root, output=output)
    context.command_cache = cache
    return context


def ssh_arguments(cli: click.Group, context: Context, command: str) -> list[str]:
    """Turn ``SSH_ORIGINAL_COMMAND`` into CLI arguments, refusing what is not ours."""
    import shlex

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
    import shlex

    from . import access, events

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
        if logged:
            from . import events
        for event_id in logged:
            with contextlib.suppress(Exception):
                events.finish(context, event_id, status)
        return status
    finally:
        context.close()


def _invoke(cli: click.Group, context: Context, args: Sequence[str], logged: list[int]) -> int:
    def invoke() -> int:
        nonlocal args
        if args and args[0] == "ssh-command":
            context.via_ssh = True
            context.ssh_key_name = os.environ.get("SKIFF_KEY_NAME")
            command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
            logged.append(_log_ssh_command(cli, context, command))
            args = ssh_arguments(cli, context, command)
            from . import access

            access.authorize(cli, context, args)
        _settle_user(cli, context, args)
        result = cli.main(list(args), prog_name="skiff", standalone_mode=False, obj=context)
        return result if isinstance(result, int) else 0

    return run_guarded(context, invoke)


def run_guarded(context: Context, call: Callable[[], int | None]) -> int:
    """Run ``call``; return its status, or turn its error into one ``!     message`` line and a status.

    What :func:`main` does with a command's errors; also for work that runs inside a
    command, like the deploy of a push's pre-receive hook (``skiff_git.receiver``).
    """
    out = context.output
    try:
        result = call()
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
        import traceback

        traceback.print_exc()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``skiff`` (without ``argv``: it leaves by :func:`leave`)."""
    os.umask(0o022)
    args = list(sys.argv[1:] if argv is None else argv)
    timeline.mark(f"{args[0] if args else 'skiff'}.main")
    context = make_context()
    for info in context.pm.broken():
        context.output.warn(f"plugin {info.name} is broken and was skipped: {info.error}")
    cli = build_cli(context)
    status = run(cli, context, args)
    timeline.mark(f"{args[0] if args else 'skiff'}.exit")
    if argv is not None:  # called with arguments (tests): an ordinary SystemExit
        sys.exit(status)
    leave(status)


def leave(status: int) -> None:
    """Exit with ``status`` once the command's work is done, without the interpreter's teardown.

    Freeing every module and object of a process that deployed (docker, requests, the plugins)
    took 50-170 ms before the client got its prompt back. The work a deploy left running
    (:mod:`skiff.background`) is waited for, the streams are flushed and the ``atexit`` handlers
    (temporary directories' finalizers, logging) run, as at a normal exit. While any other
    non-daemon thread still runs, it is a normal exit, which waits for them.
    """
    import atexit
    import threading

    from . import background

    background.wait()
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    for thread in others:
        thread.join(timeout=0.05)
    if any(thread.is_alive() for thread in others):
        sys.exit(status)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
