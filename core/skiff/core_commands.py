"""Commands of the core itself: ``version``, ``help`` and ``plugin:*``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, access, validate
from . import events as event_log
from .cli import local_only, pass_context
from .context import Context
from .errors import NotFound, SkiffError
from .plugins import PluginInfo
from .privileges import needs_root


def add_core_commands(cli: click.Group) -> None:
    for command in (
        version,
        help_command,
        plugin_list,
        plugin_install,
        plugin_uninstall,
        plugin_enable,
        plugin_disable,
        state_backup,
        state_restore,
        state_migrate,
        events_command,
    ):
        cli.add_command(command)


@access.public_command
@click.command("version")
def version() -> None:
    """Show Skiff's version."""
    click.echo(f"skiff {__version__}")


@access.public_command
@click.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show the list of commands, or the help of one."""
    group = ctx.parent.command if ctx.parent else ctx.command
    parent = ctx.parent or ctx
    if command:
        assert isinstance(group, click.Group)  # help runs as a subcommand of the skiff group
        sub = group.get_command(parent, command)
        if sub is None:
            raise SkiffError(f"unknown command {command!r}")
        with click.Context(sub, info_name=command, parent=parent) as sub_ctx:
            click.echo(sub.get_help(sub_ctx))
        return
    click.echo(group.get_help(parent))


def _plugin_row(info: PluginInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "distribution": info.distribution,
        "status": info.status,
        "hooks": info.hooks,
        "error": info.error,
    }


@access.admin_command
@click.command("plugin:list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_context
def plugin_list(context: Context, fmt: str) -> None:
    """List plugins with version, distribution, hooks and status."""
    context.pm.load_all()  # a deferred plugin's status is what importing it says now
    rows = [_plugin_row(i) for i in sorted(context.pm.infos.values(), key=lambda i: i.name)]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<16} {'VERSION':<9} {'STATUS':<9} {'DISTRIBUTION':<22} HOOKS")
    for row in rows:
        detail = ", ".join(row["hooks"]) if row["status"] != "broken" else row["error"]
        click.echo(f"{row['name']:<16} {row['version']:<9} {row['status']:<9} {row['distribution']:<22} {detail}")


def _plugins_by_process() -> dict[str, dict[str, Any]]:
    """Ask a fresh skiff process for its plugin list (after a pip change)."""
    proc = subprocess.run(
        [sys.executable, "-m", "skiff", "plugin:list", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SkiffError(f"skiff does not start after the change: {proc.stderr.strip()[-300:]}")
    return {row["name"]: row for row in json.loads(proc.stdout)}


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        check=False,
    )


# pip's own framing around a failed build step: never the line that says what went wrong
_PIP_NOISE = (
    "note:",
    "hint:",
    "error: subprocess-exited-with-error",
    "error: metadata-generation-failed",
    "[end of output]",
    "full command:",
    "cwd:",
    "See above for output",
    "×",
    "╰─>",
    "│",
)


def pip_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The line of pip's output that says what went wrong.

    pip ends a failed build with boilerplate (``note: This error originates
    from a subprocess ...``); the real message is the last line of the build
    backend's own output, or pip's last ``ERROR:`` line.
    """
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith("ERROR:")]
    candidates = [
        line
        for line in lines
        if not line.startswith(_PIP_NOISE)
        and not line.startswith("ERROR:")
        and not line.startswith(("WARNING:", "DEPRECATION:"))
    ]
    if any(line.startswith("error: subprocess-exited-with-error") for line in lines) and candidates:
        return candidates[-1]
    if errors:
        return errors[-1].removeprefix("ERROR:").strip()
    return candidates[-1] if candidates else f"pip exited with status {proc.returncode}"


@needs_root
@click.command("plugin:install")
@click.argument("spec")
@pass_context
def plugin_install(context: Context, spec: str) -> None:
    """Install a plugin with pip (a PyPI name, a path or a URL) and verify it."""
    if spec.startswith("-"):
        raise SkiffError(f"invalid plugin spec {spec!r}")
    out = context.output
    before = set(context.pm.infos)
    out.step(f"Installing {spec}")
    proc = _pip("install", "--quiet", spec)
    if proc.returncode != 0:
        raise SkiffError(f"pip could not install {spec}: {pip_error(proc)}")
    after = _plugins_by_process()
    new = [row for name, row in after.items() if name not in before]
    broken = [row for row in new if row["status"] == "broken"]
    if broken:
        for row in broken:
            out.error(f"plugin {row['name']} is broken: {row['error']}")
        for dist in {row["distribution"] for row in broken if row["distribution"]}:
            _pip("uninstall", "--yes", dist)
        raise SkiffError(f"{spec} was uninstalled again because its plugins do not load")
    if not new:
        out.warn(f"{spec} installed, but it adds no plugin to the 'skiff' entry-point group")
    for row in new:
        out.info(f"{row['name']} {row['version']}: hooks {', '.join(row['hooks']) or '(none)'}")


@needs_root
@click.command("plugin:uninstall")
@click.argument("name")
@pass_context
def plugin_uninstall(context: Context, name: str) -> None:
    """Uninstall the distribution that provides plugin NAME."""
    info = _info(context, name)
    if not info.distribution or info.distribution == "skiff":
        raise SkiffError(f"plugin {name} is part of skiff itself; use plugin:disable")
    proc = _pip("uninstall", "--yes", info.distribution)
    if proc.returncode != 0:
        raise SkiffError(f"pip could not uninstall {info.distribution}: {pip_error(proc)}")
    context.output.step(f"Uninstalled {info.distribution} (plugin {name})")


def _info(context: Context, name: str) -> PluginInfo:
    validate.plugin_name(name)
    info = context.pm.infos.get(name)
    if info is None:
        raise NotFound(f"no plugin named {name}; see plugin:list")
    return info


@local_only
@click.command("plugin:enable")
@click.argument("name")
@pass_context
def plugin_enable(context: Context, name: str) -> None:
    """Enable a plugin that plugin:disable turned off."""
    _info(context, name)
    context.state.set_plugin_enabled(name, True)
    context.output.step(f"Plugin {name} enabled")


@local_only
@click.command("plugin:disable")
@click.argument("name")
@pass_context
def plugin_disable(context: Context, name: str) -> None:
    """Disable a plugin (kept in the state store) without uninstalling it."""
    _info(context, name)
    context.state.set_plugin_enabled(name, False)
    context.output.step(f"Plugin {name} disabled")


@needs_root
@click.command("state:backup")
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--state-only", is_flag=True, help="Copy only the state database (an SQLite file), as before.")
@click.option("--exclude", multiple=True, metavar="PART", help="Leave a part out (see the list it prints).")
@pass_context
def state_backup(context: Context, destination: str, state_only: bool, exclude: tuple[str, ...]) -> None:
    """Back up the whole server to DESTINATION (a .tar.gz, 0600): the state store,
    repositories, certificates, storage directories and every service's dump.

    Root shell only: it reads every plugin's files. Restore it with state:restore
    onto a fresh SKIFF_ROOT (docs/backup.md). With --state-only, DESTINATION is a copy
    of the state database, safe while deploys run.
    """
    if state_only:
        if exclude:
            raise SkiffError("--exclude applies to a whole-server backup, not to --state-only")
        context.state.backup(destination)
        context.output.step(f"State database copied to {destination}")
        return
    from . import backup

    manifest = backup.write(context, Path(destination), exclude)
    size = Path(destination).stat().st_size
    context.output.banner(f"Backed up {len(manifest['parts'])} parts to {destination} ({size} bytes)")


@needs_root
@click.command("state:restore")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Restore onto a SKIFF_ROOT that already holds apps or files.")
@pass_context
def state_restore(context: Context, archive: str, force: bool) -> None:
    """Restore a state:backup archive onto this SKIFF_ROOT and bring every app back.

    The archive is read and checked whole before anything is written. The store,
    repositories, certificates and storage directories go back into place, services
    are recreated from their dumps, and every app is started again (from its release
    image, else rebuilt from its repository). Root shell only.
    """
    import os

    from . import backup
    from .privileges import USER_ENV, drop_to

    path = Path(archive)
    context.output.step(f"Checking {path}")
    manifest = backup.inspect(path)
    found = backup.occupied(context.root, manifest)
    if found and not force:
        raise SkiffError(
            f"{context.root} is not empty ({', '.join(found)}): restore onto a fresh SKIFF_ROOT, "
            "or pass --force to replace what is there"
        )
    context.output.info(
        f"{len(manifest['members'])} members, {len(manifest['parts'])} parts, "
        f"made by skiff {manifest.get('skiff')} from {manifest.get('root')}"
    )
    context.output.step(f"Restoring the state store and files into {context.root}")
    dumps = backup.extract(context, path, manifest)
    try:
        user = os.environ.get(USER_ENV)
        if os.geteuid() == 0 and user:
            drop_to(user)  # services and apps start as the service account, as every other command does
        if manifest.get("skiff") != __version__ or context.state.migrated:
            # made by another version: what state:migrate does after an update, before anything starts
            for line in [line for lines in context.hook.skiff_upgrade(context=context) if lines for line in lines]:
                context.output.info(line)
        failures = backup.restore_steps(context, manifest, dumps)
    finally:
        for dump in dumps.values():
            dump.close()
    if failures:
        raise SkiffError(f"restored, but {len(failures)} part(s) did not come back: " + "; ".join(failures))
    context.output.banner(f"Restored {path}: {len(context.state.list_apps())} apps")


@local_only
@click.command("state:migrate")
@pass_context
def state_migrate(context: Context) -> None:
    """Bring the state store to this version's schema and say what changed (make install runs it)."""
    from .state import SCHEMA_VERSION

    state = context.state
    version = state.schema_version
    if version > SCHEMA_VERSION:
        context.output.warn(
            f"State store {state.path}: schema {version} is newer than this skiff's "
            f"({SCHEMA_VERSION}); was skiff downgraded? Nothing changed"
        )
        return
    if not state.migrated:
        context.output.step(f"State store {state.path}: schema {version}, up to date")
    else:
        first = state.migrated[0][0] - 1
        context.output.step(f"State store {state.path}: migrated schema {first} -> {version}")
        for number, description in state.migrated:
            context.output.info(f"{number}: {description}")
    changes = [line for lines in context.hook.skiff_upgrade(context=context) if lines for line in lines]
    if changes:
        context.output.step("Brought forward what earlier versions stored")
        for line in changes:
            context.output.info(line)


@access.admin_command
@click.command("events")
@click.option(
    "-n", "--num", type=click.IntRange(1, 100000), default=50, show_default=True, help="How many of the last events."
)
@click.option("-t", "--tail", "follow", is_flag=True, help="Keep printing new events.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def events_command(context: Context, num: int, follow: bool, fmt: str) -> None:
    """Show the event log: every SSH command and deploy, with key, time and result."""
    import time

    last = 0
    while True:
        for event in context.state.events(limit=num, after=last):
            last = event["id"]
            click.echo(json.dumps(event, sort_keys=True) if fmt == "json" else event_log.format_event(event))
        if not follow:
            return
        sys.stdout.flush()
        num = 100000
        time.sleep(0.5)
