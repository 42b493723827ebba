"""The apps plugin's commands: apps:create, apps:list, apps:exists, apps:destroy, apps:rename, apps:report,
apps:clone, apps:lock, apps:unlock, apps:locked, and builds:list, builds:output (the core keeps the
builds: skiff.builds)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from skiff import access, validate
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError

# skiff.lifecycle (and the clone module, which needs it) are imported by the commands that
# use them: apps:list and apps:create start without them (docs/performance.md, "Start-up").


@access.app_command(app="app", creates=True)
@click.command("apps:create")
@click.argument("app")
@pass_context
def apps_create(context: Context, app: str) -> None:
    """Create an app."""
    validate.app_name(app)
    context.create_app(app)
    context.output.step(f"Creating {app}... done")


@access.admin_command
@click.command("apps:list")
@pass_context
def apps_list(context: Context) -> None:
    """List apps."""
    context.output.banner("My Apps")
    for app in context.state.list_apps():
        click.echo(app)


@access.app_command()
@click.command("apps:exists")
@click.argument("app")
@pass_context
def apps_exists(context: Context, app: str) -> None:
    """Exit 0 if APP exists, 1 if not."""
    validate.app_name(app)
    if not context.state.app_exists(app):
        raise NotFound(f"app {app} does not exist")
    click.echo(f"app {app} exists")


@access.app_command()
@click.command("apps:destroy")
@click.argument("app")
@click.option("--force", is_flag=True, help="Do not ask for the app name.")
@pass_context
def apps_destroy(context: Context, app: str, force: bool) -> None:
    """Destroy APP: its processes, images, repository, config and releases."""
    context.state.require_app(app)
    if not force:
        if not sys.stdin.isatty() and context.via_ssh:
            raise SkiffError("destroying needs confirmation: pass --force, or run it with a terminal (ssh -t)")
        context.output.warn(f"This will destroy {app} and everything that belongs to it.")
        answer = click.prompt("To proceed, type the app name", default="", show_default=False)
        if answer.strip() != app:
            raise SkiffError("confirmation did not match the app name; nothing was destroyed")
    from skiff.lifecycle import app_lock

    with app_lock(context, app):
        context.output.step(f"Destroying {app}")
        context.hook.skiff_app_destroyed(context=context, app=app)
        context.state.destroy_app(app)
    context.output.step(f"Destroyed {app}")


@access.app_command(app="old")
@click.command("apps:rename")
@click.argument("old")
@click.argument("new")
@pass_context
def apps_rename(context: Context, old: str, new: str) -> None:
    """Rename app OLD to NEW, keeping config, releases and links."""
    context.state.require_app(old)
    validate.app_name(new)
    if context.state.app_exists(new):
        raise SkiffError(f"app {new} already exists")
    from skiff.lifecycle import app_lock

    with app_lock(context, old), app_lock(context, new):
        context.state.rename_app(old, new)
        context.hook.skiff_app_renamed(context=context, old=old, new=new)
    context.output.step(f"Renamed {old} to {new}")


@access.app_command()
@click.command("apps:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def apps_report(context: Context, app: str, fmt: str) -> None:
    """Report everything plugins know about APP."""
    context.state.require_app(app)
    sections: dict[str, dict[str, Any]] = {}
    for result in context.hook.skiff_report(context=context, app=app):
        for name, fields in (result or {}).items():
            sections.setdefault(name, {}).update(fields)
    sections = dict(sorted(sections.items(), key=lambda item: (item[0] != "app", item[0])))
    if fmt == "json":
        click.echo(json.dumps(sections, indent=2, sort_keys=True, default=str))
        return
    for name, fields in sections.items():
        context.output.fields(f"{app} {name} information", fields)


@access.app_command(app="old")
@click.command("apps:clone")
@click.argument("old")
@click.argument("new")
@click.option("--skip-deploy", is_flag=True, help="Copy config and settings only; do not deploy NEW.")
@click.option("--ignore-existing", is_flag=True, help="Exit 0 without changing anything when NEW exists.")
@pass_context
def apps_clone(context: Context, old: str, new: str, skip_deploy: bool, ignore_existing: bool) -> None:
    """Create NEW as a copy of OLD: its config, its settings, and its current image as a release, deployed."""
    context.state.require_app(old)
    validate.app_name(new)
    if context.state.app_exists(new):
        if ignore_existing:
            context.output.warn(f"app {new} already exists; nothing was cloned (--ignore-existing)")
            return
        raise SkiffError(f"app {new} already exists")
    from . import clone

    clone.refuse_unless_may_create(context, new)
    clone.clone_app(context, old, new, deploy=not skip_deploy)


def _lock_command(name: str, locked: bool, doc: str) -> click.Command:
    @access.app_command()
    @click.command(name, help=doc)
    @click.argument("app")
    @pass_context
    def command(context: Context, app: str) -> None:
        context.state.require_app(app)
        from skiff import lifecycle

        lifecycle.lock_deploys(context, app, locked)
        if locked:
            context.output.step(f"Locked {app}: pushes and every deploy are refused until apps:unlock {app}")
        else:
            context.output.step(f"Unlocked {app}: deploys go through again")

    return command


apps_lock = _lock_command(
    "apps:lock", True, "Lock APP: refuse every deploy (push, deploy, ps:rebuild, config changes)."
)
apps_unlock = _lock_command("apps:unlock", False, "Unlock APP's deploys.")


@access.app_command()
@click.command("apps:locked")
@click.argument("app")
@pass_context
def apps_locked(context: Context, app: str) -> None:
    """Exit 0 when APP's deploys are locked, 1 when not."""
    context.state.require_app(app)
    from skiff import lifecycle

    if not lifecycle.deploys_locked(context, app):
        raise SkiffError(f"app {app} is not locked")
    click.echo(f"app {app} is locked")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@access.app_command()
@click.command("builds:list")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def builds_list(context: Context, app: str, fmt: str) -> None:
    """List APP's builds (every deploy's output is kept), newest first."""
    from dataclasses import asdict

    from skiff import builds

    context.state.require_app(app)
    rows = builds.builds(context.state, app)
    if fmt == "json":
        click.echo(json.dumps([asdict(b) | {"duration": b.duration} for b in rows], indent=2))
        return
    context.output.banner(f"{app} builds")
    click.echo(f"{'ID':<5} {'KIND':<9} {'STATUS':<10} {'STARTED':<21} {'DURATION':<9} {'RELEASE':<8} REVISION")
    for b in rows:
        release = f"v{b.release}" if b.release is not None else "-"
        revision = (b.revision or "")[:7] or "-"
        took = _duration(b.duration)
        click.echo(f"{b.id:<5} {b.kind:<9} {b.status:<10} {b.started_at:<21} {took:<9} {release:<8} {revision}")


@access.app_command()
@click.command("builds:output")
@click.argument("app")
@click.argument("build_id", metavar="[ID|latest]", default="latest")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the build runs.")
@pass_context
def builds_output(context: Context, app: str, build_id: str, follow: bool) -> None:
    """Print the output of one of APP's builds (default: the latest; a running one: what it wrote so far)."""
    from skiff import builds

    context.state.require_app(app)
    if build_id == "latest":
        number = builds.latest(context.state, app).id
    elif build_id.isascii() and build_id.isdigit() and len(build_id) <= 18:
        number = builds.build(context.state, app, int(build_id)).id
    else:
        raise ValidationError(f"invalid build id {build_id!r}: a number from builds:list {app}, or latest")
    if not follow:
        sys.stdout.write(builds.read_output(context.root, app, number))
        return
    for chunk in builds.follow(context.root, app, number):
        sys.stdout.write(chunk)
        sys.stdout.flush()


COMMANDS: list[click.Command] = [
    apps_create,
    apps_list,
    apps_exists,
    apps_destroy,
    apps_rename,
    apps_report,
    apps_clone,
    apps_lock,
    apps_unlock,
    apps_locked,
    builds_list,
    builds_output,
]
