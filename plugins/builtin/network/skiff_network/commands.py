"""The ``network:*`` commands (Dokku's names)."""

from __future__ import annotations

import json

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError

from . import networks
from .plugin import report_fields


@access.admin_command
@click.command("network:create")
@click.argument("name")
@pass_context
def network_create(context: Context, name: str) -> None:
    """Create the shared network NAME (a docker bridge network); attach apps with network:set."""
    networks.create(context, name)
    context.output.step(f"Created network {name}")


@access.admin_command
@click.command("network:destroy")
@click.argument("name")
@click.option("--force", "-f", is_flag=True, help="Detach the apps attached to it first.")
@pass_context
def network_destroy(context: Context, name: str, force: bool) -> None:
    """Destroy the shared network NAME (refused while apps are attached, unless --force)."""
    networks.require(context, name)
    attached = networks.apps_on(context, name)
    if attached and not force:
        raise SkiffError(
            f"network {name} is attached to {', '.join(sorted(attached))}: "
            "detach them (network:set APP KEY) or pass --force"
        )
    for app in sorted(attached):
        networks.detach(context, name, app)
        context.output.info(f"detached {app} from {name}")
    networks.destroy(context, name)
    context.output.step(f"Destroyed network {name}")


@access.admin_command
@click.command("network:exists")
@click.argument("name")
@pass_context
def network_exists(context: Context, name: str) -> None:
    """Exit 0 if the shared network NAME exists, 1 if not."""
    networks.require(context, name)
    click.echo(f"network {name} exists")


@access.admin_command
@click.command("network:info")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def network_info(context: Context, name: str, fmt: str) -> None:
    """Show the shared network NAME: its docker id, the apps attached, the containers on it."""
    data = networks.info(context, name)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    shown = dict(data)
    shown["apps"] = " ".join(f"{app}:{','.join(keys)}" for app, keys in data["apps"].items()) or "-"
    shown["containers"] = " ".join(data["containers"]) or "-"
    context.output.fields(f"{name} network information", shown)


@access.admin_command
@click.command("network:list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def network_list(context: Context, fmt: str) -> None:
    """List the shared networks (apps' own networks are not listed)."""
    names = networks.recorded(context)
    if fmt == "json":
        click.echo(json.dumps(names))
        return
    context.output.banner("Networks")
    for name in names:
        click.echo(name)


@access.app_command(app="app")
@click.command("network:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def network_report(context: Context, app: str | None, fmt: str) -> None:
    """Show APP's networks (every app's without APP)."""
    apps = [context.state.require_app(app)] if app else context.state.list_apps()
    reports = {name: report_fields(context, name) for name in apps}
    if fmt == "json":
        click.echo(json.dumps(reports[app] if app else reports, indent=2, sort_keys=True))
        return
    for name, fields in reports.items():
        context.output.fields(f"{name} network information", fields)


def check_deployer(context: Context, app: str, names: list[str]) -> None:
    """A deployer may attach its app only to networks whose other apps are all on its lists:
    otherwise it could reach an app it may not work on."""
    key = context.ssh_key_name
    if not context.via_ssh or key is None or access.key_role(context, key) == "admin":
        return
    for name in names:
        others = [other for other in networks.apps_on(context, name) if other != app]
        if not all(access.may_access(context, key, other) for other in others):
            raise access.AccessDenied(
                f"key {key!r} (deployer) may not attach {app} to network {name}: "
                "apps outside its access list are attached to it"
            )


@access.app_command(app="app")
@click.command("network:set")
@click.argument("app")
@click.argument("key", type=click.Choice(networks.KEYS))
@click.argument("names", nargs=-1)
@pass_context
def network_set(context: Context, app: str, key: str, names: tuple[str, ...]) -> None:
    """Attach APP to shared networks: network:set APP initial-network|attach-post-create|attach-post-deploy
    [NAME[,NAME...]] (no NAME: none). Applies at the next deploy, or now with network:rebuild APP."""
    context.state.require_app(app)
    value = ",".join(names) if names else None
    if key == networks.INITIAL and len(names) > 1:
        raise click.UsageError("initial-network takes one network")
    parsed = networks.SETTINGS.parse(context, key, value, app) if value else None
    if parsed:
        check_deployer(context, app, [parsed] if isinstance(parsed, str) else list(parsed))
    stored = networks.SETTINGS.set(context, key, value, app=app)
    if stored is None:
        context.output.step(f"Reset network {key} of {app}: none")
    else:
        shown = stored if isinstance(stored, str) else ",".join(stored)
        context.output.step(f"Set network {key} of {app} to {shown}")
    context.output.info(f"applies at the next deploy, or now: network:rebuild {app}")


@access.app_command(app="app")
@click.command("network:rebuild")
@click.argument("app")
@pass_context
def network_rebuild(context: Context, app: str) -> None:
    """Put APP's running containers on the networks its settings name now (live, no restart)."""
    from skiff import lifecycle

    context.state.require_app(app)
    with lifecycle.app_lock(context, app):
        changes = networks.rebuild(context, app)
    for container, change in sorted(changes.items()):
        context.output.info(f"{container}: {' '.join(change)}")
    context.output.step(f"Rebuilt the networks of {app}" + ("" if changes else " (nothing to change)"))


COMMANDS: list[click.Command] = [
    network_create,
    network_destroy,
    network_exists,
    network_info,
    network_list,
    network_report,
    network_set,
    network_rebuild,
]
