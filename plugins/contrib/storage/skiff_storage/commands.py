"""storage:ensure-directory, storage:mount, storage:unmount, storage:list, storage:report."""

from __future__ import annotations

import json
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.lifecycle import app_lock

from . import directories, mounts


def _adopts(context: Context) -> bool:
    """Admin keys and the server's shells may take over a directory left by a destroyed app."""
    if not context.via_ssh:
        return True
    return access.key_role(context, context.ssh_key_name) == "admin"


@access.app_command(app="name", resolve=directories.resolve_owner)
@click.command("storage:ensure-directory")
@click.argument("name")
@click.option(
    "--chown",
    "owner",
    type=click.Choice(sorted(directories.OWNERS)),
    help="Owner of the directory (default: the stack's user, uid 1000, that builds and processes run as).",
)
@pass_context
def storage_ensure_directory(context: Context, name: str, owner: str | None) -> None:
    """Create SKIFF_ROOT/storage/NAME for the app NAME names (NAME is APP or APP_SUFFIX).

    The directory belongs to that app: its deployers may mount it, a rename hands it
    to the new name, apps:destroy leaves it (and its data) in place. Run again, it
    gives the directory and everything in it to the owner again, never following a
    symlink.
    """
    app = directories.app_of_name(name)
    context.state.require_app(app)
    with app_lock(context, app):
        directory, created = directories.ensure(context, name, owner, adopt=_adopts(context))
    path = directories.path_of(context, name)
    verb = "Created" if created else "Ensured"
    context.output.step(f"{verb} storage directory {path} for {app} (owner uid {directory.uid})")
    context.output.info(f"mount it with: storage:mount {app} {path}:/storage")


@access.app_command()
@click.command("storage:mount")
@click.argument("app")
@click.argument("spec", metavar="HOST_PATH:CONTAINER_PATH")
@pass_context
def storage_mount(context: Context, app: str, spec: str) -> None:
    """Bind-mount HOST_PATH at CONTAINER_PATH in APP's process, release and run containers.

    Over SSH HOST_PATH must be a storage directory (storage:ensure-directory); a
    deployer key only one of its apps'. Other host paths: root in a shell on the
    server only. Append :ro for a read-only mount. Applies from the next deploy or
    ps:restart.
    """
    context.state.require_app(app)
    with app_lock(context, app):
        mount = mounts.add(context, app, spec)
    context.output.step(f"Mounted {mount.spec} in {app}")
    context.output.info(f"it applies from the next deploy (or: ps:restart {app})")


@access.app_command()
@click.command("storage:unmount")
@click.argument("app")
@click.argument("spec", metavar="HOST_PATH:CONTAINER_PATH")
@pass_context
def storage_unmount(context: Context, app: str, spec: str) -> None:
    """Remove a mount from APP (the data stays where it is)."""
    context.state.require_app(app)
    with app_lock(context, app):
        mount = mounts.remove(context, app, spec)
    context.output.step(f"Unmounted {mount.host}:{mount.container} from {app}; the data stays in {mount.host}")
    context.output.info(f"it applies from the next deploy (or: ps:restart {app})")


def _list_entries(context: Context, app: str) -> list[dict[str, Any]]:
    return [
        {"host_path": m.host, "container_path": m.container, "volume_options": "ro" if m.readonly else ""}
        for m in mounts.stored(context, app)
    ]


@access.app_command()
@click.command("storage:list")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def storage_list(context: Context, app: str, fmt: str) -> None:
    """List APP's bind mounts (HOST_PATH:CONTAINER_PATH)."""
    context.state.require_app(app)
    entries = _list_entries(context, app)
    if fmt == "json":
        click.echo(json.dumps(entries, indent=2))
        return
    context.output.banner(f"{app} volume bind-mounts:")
    for entry in entries:
        options = f":{entry['volume_options']}" if entry["volume_options"] else ""
        context.output.info(f"{entry['host_path']}:{entry['container_path']}{options}")


def report_fields(context: Context, app: str) -> dict[str, Any]:
    return {
        "mounts": [m.spec for m in mounts.stored(context, app)],
        "directories": [str(directories.path_of(context, d.name)) for d in directories.owned_by(context, app)],
    }


@access.app_command()
@click.command("storage:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def storage_report(context: Context, app: str | None, fmt: str) -> None:
    """Show mounts and storage directories of APP (without APP: of every app, and the orphans)."""
    if app:
        context.state.require_app(app)
    apps = [app] if app else context.state.list_apps()
    reports = {name: report_fields(context, name) for name in apps}
    orphans = {} if app else {str(directories.path_of(context, d.name)): d.destroyed_app for d in _orphans(context)}
    if fmt == "json":
        click.echo(json.dumps(reports[app] if app else {"apps": reports, "orphans": orphans}, indent=2))
        return
    for name, fields in reports.items():
        context.output.fields(f"{name} storage information", fields)
    if orphans:
        context.output.fields(
            "storage directories of destroyed apps", {path: f"was {was}" for path, was in orphans.items()}
        )


def _orphans(context: Context) -> list[directories.Directory]:
    return [d for d in directories.all_directories(context) if d.app is None]


COMMANDS: list[click.Command] = [
    storage_ensure_directory,
    storage_mount,
    storage_unmount,
    storage_list,
    storage_report,
]
