"""The buildpacks builder: detect the language, install dependencies in a cached layer, add the code.

Language packs are plugins of their own (``buildpack-python``,
``buildpack-node``, ``buildpack-static``) implementing the hooks this plugin
declares in :mod:`skiff_buildpacks.hookspecs`. Commands: ``buildpacks:list``,
``buildpacks:set``, ``buildpacks:report``, ``repo:purge-cache``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from skiff import access, hookimpl
from skiff.builders import BuilderInfo
from skiff.cli import pass_context
from skiff.context import Context
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError
from skiff.state import GLOBAL

from . import hookspecs

PLUGIN = "buildpacks"
SETTINGS = {  # key: (default, scopes)
    "trust-host-ca": (True, ("global", "app")),
    "ca-bundle": ("/etc/ssl/certs/ca-certificates.crt", ("global",)),
    "packs": ("", ("app",)),
    "node-registry": ("https://registry.npmjs.org", ("global",)),
}
PACK_NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,39}\Z")
PACK_ALIASES = {"nodejs": "node", "python3": "python"}
KEEP_DEPS_IMAGES = 2


@hookimpl
def skiff_addhooks(pm) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    for command in (
        buildpacks_list,
        buildpacks_set,
        buildpacks_add,
        buildpacks_remove,
        buildpacks_clear,
        buildpacks_report,
        repo_purge_cache,
    ):
        cli.add_command(command)


# -- settings --------------------------------------------------------------


def settings(context: Context, app: str) -> dict[str, Any]:
    state = context.state
    result = {}
    for key, (default, scopes) in SETTINGS.items():
        value = state.get_property(PLUGIN, key, app=app, default=None) if "app" in scopes else None
        if value is None and "global" in scopes:
            value = state.get_property(PLUGIN, key, default=None)
        result[key] = default if value is None else value
    return result


def describe_packs(context: Context) -> list[dict[str, Any]]:
    packs = [d for d in context.hook.skiff_buildpack_describe() if d]
    return sorted(packs, key=lambda d: (d.get("order", 100), d["name"]))


def _pack_name(raw: str) -> str:
    name = raw.strip().rstrip("/")
    match = re.search(r"heroku-buildpack-([a-z0-9]+)(?:\.git)?(?:#.*)?\Z", name)
    if match:
        name = match.group(1)
    name = PACK_ALIASES.get(name.lower(), name.lower())
    if not PACK_NAME.fullmatch(name):
        raise ValidationError(f"invalid buildpack name {raw!r}")
    return name


def explicit_packs(context: Context, deploy: Deploy, config: dict[str, str]) -> tuple[list[str], str]:
    """Packs chosen by the app (property), the BUILDPACK config var or a .buildpacks file."""
    assert deploy.workdir is not None
    prop = context.state.get_property(PLUGIN, "packs", app=deploy.app, default="")
    if prop:
        return [_pack_name(p) for p in prop.split(",") if p.strip()], "buildpacks:set"
    for var in ("BUILDPACK", "BUILDPACK_URL"):  # BUILDPACK_URL: Dokku's and Heroku's name
        if config.get(var):
            return [_pack_name(p) for p in config[var].split(",") if p.strip()], var
    listing = deploy.workdir / ".buildpacks"
    if listing.is_file() and not listing.is_symlink():
        names = [
            _pack_name(line)
            for line in listing.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        if names:
            return names, ".buildpacks"
    return [], ""


def select_packs(context: Context, deploy: Deploy, build) -> list[str]:
    known = {d["name"]: d for d in describe_packs(context)}
    chosen, where = explicit_packs(context, deploy, build.config)
    hook = context.hook
    if chosen:
        for name in chosen:
            if name not in known:
                raise SkiffError(f"unknown buildpack {name!r} (from {where}); installed: {', '.join(known) or 'none'}")
        return chosen
    for name in known:
        if hook.skiff_buildpack_detect(pack=name, build=build):
            return [name]
    looks = "; ".join(f"{d['name']}: {d.get('looks_for', '?')}" for d in known.values())
    raise SkiffError(
        f"no buildpack detected this app (looked for {looks}); "
        "add one of these files, a Dockerfile, or choose packs with .buildpacks"
    )


# -- the build -------------------------------------------------------------


ORDER = 1000  # detection: last, the catch-all (the dockerfile builder is 100)


@hookimpl(trylast=True)
def skiff_builders() -> list[BuilderInfo]:
    """The ``buildpacks`` builder detects every source: whether a pack fits is checked in the build."""
    return [
        BuilderInfo(
            PLUGIN,
            order=ORDER,
            detect=lambda deploy: True,
            description="language packs: a cached dependency layer and a code layer",
        )
    ]


@hookimpl(trylast=True)
def skiff_build(deploy: Deploy) -> str | None:
    """Build with the packs when ``deploy.builder`` is ``buildpacks`` (see :mod:`skiff_buildpacks.pipeline`)."""
    if deploy.builder != PLUGIN:
        return None
    from .pipeline import build_image

    return build_image(deploy)


DOCKER_TIMEOUT = 900  # seconds per API call: build containers run for long


def docker_client():
    from skiff import dockerclient

    # connecting asks the engine its API version, which fails when it is down: no ping on top
    return dockerclient.client(DOCKER_TIMEOUT, ping=False)


def _image(client, ref: str):
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def deps_images(client, app: str) -> list:
    return client.images.list(filters={"label": f"skiff.deps={app}"})


def _prune_deps(client, app: str, keep: str) -> None:
    """Untag all but the newest dependency layers of ``app`` (images in use keep their layers)."""
    images = sorted(deps_images(client, app), key=lambda i: i.attrs.get("Created", ""), reverse=True)
    others = [i for i in images if i.id != keep]
    for image in others[KEEP_DEPS_IMAGES - 1 :]:
        for tag in image.tags or []:
            try:
                client.images.remove(tag)
            except Exception:
                pass


def remove_cache_volume(client, app: str) -> bool:
    import docker.errors

    from .build import cache_volume

    try:
        client.volumes.get(cache_volume(app)).remove(force=True)
        return True
    except docker.errors.NotFound:
        return False


def remove_app_images(client, app: str) -> int:
    removed = 0
    for image in deps_images(client, app):
        for tag in image.tags or []:
            try:
                client.images.remove(tag)
                removed += 1
            except Exception:
                pass
    return removed


# -- app events ------------------------------------------------------------


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    try:
        client = docker_client()
    except SkiffError:
        return
    from .build import remove_leftover_build_containers

    remove_leftover_build_containers(client, app)
    remove_app_images(client, app)
    remove_cache_volume(client, app)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    """Caches are keyed by app name: the old ones go (the next build makes new ones)."""
    try:
        client = docker_client()
    except SkiffError:
        return
    remove_app_images(client, old)
    remove_cache_volume(client, old)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    s = settings(context, app)
    release = context.state.current_release(app)
    meta = release.meta if release else {}
    return {
        "buildpacks": {
            "packs": s["packs"] or "(detected)",
            "trust-host-ca": s["trust-host-ca"],
            "last-build": ",".join(meta.get("buildpacks", [])) or None,
            "stack": meta.get("stack"),
        }
    }


# -- commands --------------------------------------------------------------


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
    value = context.state.get_property(PLUGIN, "packs", app=app, default="") or ""
    return [p for p in value.split(",") if p]


def _store_packs(context: Context, app: str, names: list[str]) -> None:
    known = {d["name"] for d in describe_packs(context)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError(f"unknown buildpack {unknown[0]!r}; installed: {', '.join(sorted(known))}")
    if names:
        context.state.set_property(PLUGIN, "packs", ",".join(names), app=app)
    else:
        context.state.delete_property(PLUGIN, "packs", app=app)
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
    name = _pack_name(pack)
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
    name = _pack_name(pack)
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


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValidationError(f"{key} must be true or false, got {value!r}")


@access.app_command(app="args")
@click.command("buildpacks:set")
@click.option("--global", "is_global", is_flag=True, help="Set the global default.")
@click.argument("args", nargs=-1, required=True)
@pass_context
def buildpacks_set(context: Context, is_global: bool, args: tuple[str, ...]) -> None:
    """Set a build property: buildpacks:set (--global | APP) KEY [VALUE], or buildpacks:set APP PACK.

    Keys: trust-host-ca true|false, ca-bundle PATH (global only, local only),
    node-registry URL (global only: where Node.js releases come from),
    packs NAME[,NAME] (app only). No VALUE resets the key. With a pack name
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
    if scope != GLOBAL and key not in SETTINGS and len(rest) == 1:  # Dokku's form: buildpacks:set APP PACK
        _store_packs(context, scope, [_pack_name(key)])
        return
    if key not in SETTINGS:
        raise ValidationError(f"unknown buildpacks property {key!r}; known: {', '.join(SETTINGS)}")
    scopes = SETTINGS[key][1]
    if ("global" if scope == GLOBAL else "app") not in scopes:
        raise ValidationError(f"{key} can only be set {'with --global' if 'global' in scopes else 'per app'}")
    if key == "ca-bundle" and context.via_ssh:
        raise SkiffError("ca-bundle names a file on the server: set it on the server, not over SSH")
    label = scope or "global"
    if not value:
        context.state.delete_property(PLUGIN, key, app=scope)
        context.output.step(f"Reset {key} ({label})")
        return
    stored: Any = value
    if key == "trust-host-ca":
        stored = _parse_bool(key, value)
    elif key == "ca-bundle":
        if not value.startswith("/") or not Path(value).is_file():
            raise ValidationError(f"ca-bundle must be an absolute path to a file on this server, got {value!r}")
    elif key == "node-registry":
        from .node_dist import REGISTRY_RE

        if not REGISTRY_RE.fullmatch(value):
            raise ValidationError(f"node-registry must be an http(s) URL without credentials, got {value!r}")
        stored = value.rstrip("/")
    elif key == "packs":
        known = {d["name"] for d in describe_packs(context)}
        names = [_pack_name(p) for p in value.split(",") if p.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValidationError(f"unknown buildpack {unknown[0]!r}; installed: {', '.join(sorted(known))}")
        stored = ",".join(names)
    context.state.set_property(PLUGIN, key, stored, app=scope)
    context.output.step(f"Set {key} to {stored} ({label})")


@access.app_command()
@click.command("buildpacks:report")
@click.argument("app")
@pass_context
def buildpacks_report(context: Context, app: str) -> None:
    """Show the build settings of APP."""
    context.state.require_app(app)
    report = skiff_report(context, app)["buildpacks"]
    context.output.fields(f"{app} buildpacks information", report)


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
