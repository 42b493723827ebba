"""The buildpacks builder: detect the language, install dependencies in a cached layer, add the code.

Language packs are plugins of their own (``buildpack-python``, ``buildpack-node``,
``buildpack-ruby``, ``buildpack-php``, ``buildpack-go``, ``buildpack-static``, ``buildpack-null``)
implementing the hooks this plugin declares in :mod:`skiff_buildpacks.hookspecs`. Commands: ``buildpacks:list``,
``buildpacks:set``, ``buildpacks:report``, ``repo:purge-cache``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from skiff import hookimpl
from skiff.builders import BuilderInfo
from skiff.context import Context
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError
from skiff.settings import Namespace, Setting, choice

from . import PLUGIN, hookspecs

PACK_NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,39}\Z")
PACK_ALIASES = {"nodejs": "node", "python3": "python"}
NULL_BUILDPACK_URL = re.compile(r"(?:\A|/)null-buildpack(?:\.git)?(?:#.*)?\Z", re.IGNORECASE)
KEEP_DEPS_IMAGES = 2


@hookimpl
def skiff_addhooks(pm) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


# -- settings --------------------------------------------------------------


def _bundle_file(context: Context, value: str) -> None:
    if not value.startswith("/") or not Path(value).is_file():
        raise ValidationError(f"ca-bundle must be an absolute path to a file on this server, got {value!r}")


def _registry_url(value: str) -> str:
    from .node_dist import REGISTRY_RE

    if not REGISTRY_RE.fullmatch(value):
        raise ValidationError(f"node-registry must be an http(s) URL without credentials, got {value!r}")
    return value.rstrip("/")


def _index_url(value: str) -> str:
    from .wheels import INDEX_RE

    if not INDEX_RE.fullmatch(value):
        raise ValidationError(f"python-index must be an http(s) URL without credentials, got {value!r}")
    return value.rstrip("/")


def _pack_names(value: str) -> str:
    return ",".join(pack_name(p) for p in value.split(",") if p.strip())


def _installed_packs(context: Context, value: str) -> None:
    known = {d["name"] for d in describe_packs(context)}
    unknown = [n for n in value.split(",") if n and n not in known]
    if unknown:
        raise ValidationError(f"unknown buildpack {unknown[0]!r}; installed: {', '.join(sorted(known))}")


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting("trust-host-ca", type=bool, default=True, scope="both", help="mount the host's CA bundle in builds"),
        Setting(
            "ca-bundle",
            default="/etc/ssl/certs/ca-certificates.crt",
            scope="global",
            level="root",
            validate=_bundle_file,
            help="the CA bundle builds trust (a file on the server)",
        ),
        Setting("packs", type=_pack_names, default="", validate=_installed_packs, help="NAME[,NAME]: skip detection"),
        Setting(
            "python-accept-newer",
            type=bool,
            default=False,
            help="a Python minor no stack has: build on the nearest newer one (with a warning)",
        ),
        Setting(
            "node-registry",
            type=_registry_url,
            default="https://registry.npmjs.org",
            scope="global",
            level="admin",
            help="the npm registry Node.js and package manager (npm, yarn, pnpm) releases come from",
        ),
        Setting(
            "run-image",
            type=bool,
            default=True,
            scope="both",
            help="base app images on the stack's run image (no compilers at run time); false: on the build image",
        ),
        Setting(
            "python-installer",
            type=choice("uv", "pip"),
            default="uv",
            help="what installs Python dependencies: uv (the server's shared wheel cache) or pip",
        ),
        Setting(
            "python-index",
            type=_index_url,
            default="https://pypi.org/simple",
            scope="global",
            level="admin",
            help="the package index of Python builds, of the uv download and of the shared wheel cache",
        ),
    ),
    noun="property",
    commands=(),  # buildpacks:set APP PACK (Dokku's form) and buildpacks:report are the plugin's own
)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [SETTINGS]


def settings(context: Context, app: str) -> dict[str, Any]:
    """Every build setting of ``app``, resolved (:meth:`skiff.settings.Namespace.get`)."""
    return SETTINGS.values(context.state, app)


def describe_packs(context: Context) -> list[dict[str, Any]]:
    packs = [d for d in context.hook.skiff_buildpack_describe() if d]
    return sorted(packs, key=lambda d: (d.get("order", 100), d["name"]))


def pack_name(raw: str) -> str:
    name = raw.strip().rstrip("/")
    match = re.search(r"heroku-buildpack-([a-z0-9]+)(?:\.git)?(?:#.*)?\Z", name)
    if match:
        name = match.group(1)
    elif NULL_BUILDPACK_URL.search(name):  # Dokku's null buildpack (and its forks)
        name = "null"
    name = PACK_ALIASES.get(name.lower(), name.lower())
    if not PACK_NAME.fullmatch(name):
        raise ValidationError(f"invalid buildpack name {raw!r}")
    return name


def explicit_packs(context: Context, deploy: Deploy, config: dict[str, str]) -> tuple[list[str], str]:
    """Packs chosen by the app (property), the BUILDPACK config var or a .buildpacks file."""
    assert deploy.workdir is not None
    prop = SETTINGS.get(context.state, "packs", app=deploy.app)
    if prop:
        return [pack_name(p) for p in prop.split(",") if p.strip()], "buildpacks:set"
    for var in ("BUILDPACK", "BUILDPACK_URL"):  # BUILDPACK_URL: Dokku's and Heroku's name
        if config.get(var):
            return [pack_name(p) for p in config[var].split(",") if p.strip()], var
    listing = deploy.workdir / ".buildpacks"
    if listing.is_file() and not listing.is_symlink():
        names = [
            pack_name(line)
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
    """Untag the app's dependency layers (on the build image and copied onto the run image)."""
    removed = 0
    run_layers = client.images.list(filters={"label": f"skiff.deps.run={app}"})
    for image in [*deps_images(client, app), *run_layers]:
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
            "installer": s["python-installer"],
            "last-build": ",".join(meta.get("buildpacks", [])) or None,
            "stack": meta.get("stack"),
            "run-image": s["run-image"],
            "runs-on": meta.get("run_image") or meta.get("stack"),  # the run image, or the build image
        }
    }


# -- commands --------------------------------------------------------------
