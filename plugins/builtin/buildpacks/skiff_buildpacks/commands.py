"""The buildpacks plugin's commands: buildpacks:* and repo:purge-cache."""

from __future__ import annotations

import click

from skiff import access, settings
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import ValidationError
from skiff.state import GLOBAL

from .plugin import (
    SETTINGS,
    describe_packs,
    docker_client,
    pack_name,
    remove_app_images,
    remove_cache_volume,
    skiff_report,
)


@access.app_command()
@click.command("buildpacks:list")
@click.argument("app", required=False)
@pass_context
def buildpacks_list(context: Context, app: str | None) -> None:
    """List the installed language packs (or the packs APP is set to)."""
    if app:
        context.state.require_app(app)
        context.output.banner(f"{app} buildpacks urls")
        for name in _app_packs(context, app):
            click.echo(name)
        return
    context.output.banner("Buildpacks (tried in this order)")
    for d in describe_packs(context):
        click.echo(f"{d['name']:<10} v{d.get('version', '?'):<4} {d.get('looks_for', '')}")


def _app_packs(context: Context, app: str) -> list[str]:
    return [p for p in str(SETTINGS.get(context.state, "packs", app=app)).split(",") if p]


def _store_packs(context: Context, app: str, names: list[str]) -> None:
    SETTINGS.set(context, "packs", ",".join(names), app=app)
    context.output.step(f"Buildpacks of {app}: {', '.join(names) or '(detected)'}")


@access.app_command()
@click.command("buildpacks:add")
@click.argument("app")
@click.argument("pack")
@pass_context
def buildpacks_add(context: Context, app: str, pack: str) -> None:
    """Add a pack (name, or a heroku-buildpack-NAME URL) to APP's explicit packs."""
    context.state.require_app(app)
    names = _app_packs(context, app)
    name = pack_name(pack)
    if name in names:
        raise ValidationError(f"{app} already uses the {name} buildpack")
    _store_packs(context, app, names + [name])


@access.app_command()
@click.command("buildpacks:remove")
@click.argument("app")
@click.argument("pack")
@pass_context
def buildpacks_remove(context: Context, app: str, pack: str) -> None:
    """Remove a pack from APP's explicit packs."""
    context.state.require_app(app)
    names = _app_packs(context, app)
    name = pack_name(pack)
    if name not in names:
        raise ValidationError(f"{app} does not use the {name} buildpack")
    _store_packs(context, app, [n for n in names if n != name])


@access.app_command()
@click.command("buildpacks:clear")
@click.argument("app")
@pass_context
def buildpacks_clear(context: Context, app: str) -> None:
    """Forget APP's explicit packs: detection picks again."""
    context.state.require_app(app)
    _store_packs(context, app, [])


@access.app_command(app="args")
@click.command("buildpacks:set")
@click.option("--global", "is_global", is_flag=True, help="Set the global default.")
@click.argument("args", nargs=-1, required=True)
@pass_context
def buildpacks_set(context: Context, is_global: bool, args: tuple[str, ...]) -> None:
    """Set a build property: buildpacks:set (--global | APP) KEY [VALUE], or buildpacks:set APP PACK.

    Keys: trust-host-ca true|false, ca-bundle PATH (global only, local only),
    packs NAME[,NAME], python-accept-newer true|false, python-installer uv|pip,
    node-registry URL, python-index URL (global only).
    No VALUE resets the key. With a pack name
    (or a heroku-buildpack-NAME URL) instead of a key, APP uses that pack only.
    """
    if is_global:
        scope, rest = GLOBAL, list(args)
    else:
        if len(args) < 2:
            raise click.UsageError("usage: buildpacks:set (--global | APP) KEY [VALUE]")
        scope, rest = context.state.require_app(args[0]), list(args[1:])
    if not rest or len(rest) > 2:
        raise click.UsageError("usage: buildpacks:set (--global | APP) KEY [VALUE]")
    key, value = rest[0], (rest[1] if len(rest) > 1 else "")
    if scope != GLOBAL and key not in SETTINGS.by_name and len(rest) == 1:  # Dokku's form: buildpacks:set APP PACK
        _store_packs(context, scope, [pack_name(key)])
        return
    setting = SETTINGS.setting(key, scope)
    settings.require_level(context, SETTINGS, setting, scope)
    stored = SETTINGS.set(context, key, value, app=scope)
    label = scope or "global"
    context.output.step(f"Reset {key} ({label})" if stored is None else f"Set {key} to {stored} ({label})")


@access.app_command()
@click.command("buildpacks:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def buildpacks_report(context: Context, app: str, fmt: str) -> None:
    """Show the build settings of APP."""
    context.state.require_app(app)
    settings.print_report(context, f"{app} buildpacks information", skiff_report(context, app)["buildpacks"], fmt)


@access.app_command()
@click.command("repo:purge-cache")
@click.argument("app")
@pass_context
def repo_purge_cache(context: Context, app: str) -> None:
    """Delete APP's build cache: package downloads and dependency layers."""
    context.state.require_app(app)
    client = docker_client()
    had_volume = remove_cache_volume(client, app)
    removed = remove_app_images(client, app)
    context.output.step(
        f"Purged the build cache of {app}"
        + ("" if had_volume or removed else " (it was empty)")
        + (f": {removed} dependency layer(s) removed" if removed else "")
    )


@access.admin_command
@click.command("buildpacks:purge-shared-cache")
@pass_context
def buildpacks_purge_shared_cache(context: Context) -> None:
    """Delete the wheels and virtualenv layers every app's Python build shares (the next builds make them again)."""
    from .venvs import SharedVenvs
    from .wheels import WheelCache

    cache = WheelCache(context.path("cache", "buildpacks"))
    count, size = cache.stats()
    removed = cache.purge()
    layers = SharedVenvs(context.path("cache", "buildpacks"), "").purge(docker_client)
    context.output.step(
        f"Purged the shared wheel cache: {removed} file(s), {size / 2**20:.1f} MiB"
        + (f", {layers} shared virtualenv layer(s)" if layers else "")
        if count or layers
        else "Purged the shared wheel cache (it was empty)"
    )


COMMANDS: list[click.Command] = [
    buildpacks_list,
    buildpacks_set,
    buildpacks_add,
    buildpacks_remove,
    buildpacks_clear,
    buildpacks_report,
    repo_purge_cache,
    buildpacks_purge_shared_cache,
]
