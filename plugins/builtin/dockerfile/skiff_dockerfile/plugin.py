"""The Dockerfile builder, and builder:set / builder:report.

An app with a ``Dockerfile`` at its root (or at ``builder:set APP
dockerfile-path PATH``) is built with the Docker SDK (``docker build``, the
engine's layer cache, no pulls): the builder ``dockerfile`` (detection order
100, before buildpacks). ``builder:set APP selected NAME`` forces any
installed builder (:mod:`skiff.builders`). Build args come only from the config keys
the operator lists with ``builder:set APP build-args KEY,KEY`` (build args
are visible in ``docker history``, so nothing is passed by default).

Shared properties (plugin ``builder``, per app): ``selected``,
``dockerfile-path``, ``build-args``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import PurePosixPath
from typing import Any

import click

from skiff import access, builders, hookimpl, validate
from skiff.builders import BuilderInfo
from skiff.cli import pass_context
from skiff.context import Context
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError

PLUGIN = "dockerfile"
PROPS = "builder"  # the shared property namespace
ORDER = 100  # detection: before buildpacks (1000)
KEYS = ("selected", "dockerfile-path", "build-args")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOISE = re.compile(r"^( ---> [0-9a-f]{12}$| ---> Running in |Removing intermediate container )")


def dockerfile_path(deploy_or_context, app: str) -> str:
    state = deploy_or_context.state
    return state.get_property(PROPS, "dockerfile-path", app=app, default="") or "Dockerfile"


def validate_path(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not value or "\x00" in value or len(value) > 255:
        raise ValidationError(f"dockerfile-path must be a relative path inside the app, got {value!r}")
    return str(path)


def dockerfile_in_source(deploy: Deploy) -> str | None:
    """The Dockerfile's relative path when it is a regular file of the source, else ``None``."""
    assert deploy.workdir is not None
    rel = validate_path(dockerfile_path(deploy, deploy.app))
    path = deploy.workdir / rel
    return rel if path.is_file() and not path.is_symlink() else None


@hookimpl(trylast=True)
def skiff_builders() -> list[BuilderInfo]:
    return [
        BuilderInfo(
            PLUGIN,
            order=ORDER,
            detect=lambda deploy: dockerfile_in_source(deploy) is not None,
            description="docker build of the app's Dockerfile",
        )
    ]


@hookimpl
def skiff_pre_build(deploy: Deploy) -> None:
    """Check the Dockerfile is there when this builder was chosen (e.g. forced with ``builder:set``)."""
    if deploy.builder != PLUGIN:
        return
    rel = dockerfile_in_source(deploy)
    if rel is None:
        missing = validate_path(dockerfile_path(deploy, deploy.app))
        raise SkiffError(f"builder is set to dockerfile but {missing} is missing from the source")
    deploy.scratch_for(PLUGIN)["dockerfile"] = rel


@hookimpl(trylast=True)
def skiff_build(deploy: Deploy) -> str | None:
    rel = deploy.scratch_for(PLUGIN).get("dockerfile")
    if deploy.builder != PLUGIN or not rel:
        return None
    out = deploy.output
    client = _client()
    tag = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    ref = f"skiff/{deploy.app}:{tag}"
    args = build_args(deploy)
    out.step(f"Dockerfile app detected ({rel})")
    if args:
        out.info(f"build args from config: {', '.join(sorted(args))}")
    extra = docker_build_options(deploy)
    args = {**extra.pop("buildargs", {}), **args}
    ensure_base_images(deploy, client, rel, args)
    labels = {**extra.pop("labels", {}), "skiff.app": deploy.app, "skiff.build": tag, "skiff.builder": PLUGIN}
    t0 = time.monotonic()
    error = None
    import requests.exceptions
    import urllib3.exceptions

    try:
        for chunk in client.api.build(
            path=str(deploy.workdir),
            dockerfile=rel,
            tag=ref,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            buildargs=args or None,
            labels=labels,
            **extra,
        ):
            if "stream" in chunk:
                for line in ANSI.sub("", chunk["stream"]).splitlines():
                    if line.strip() and not NOISE.match(line):
                        out.info(line)
            if "error" in chunk:
                error = chunk["error"].strip()
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise SkiffError(
            f"lost the connection to the Docker engine during the build ({type(exc).__name__}); is dockerd running?"
        ) from exc
    if error:
        raise SkiffError(f"docker build failed: {error.splitlines()[0] if error else 'unknown error'}")
    image = client.images.get(ref)
    ports = exposed_ports(image.attrs)
    deploy.meta.update({"builder": PLUGIN, "exposed_ports": ports, "image_id": image.id, "dockerfile": rel})
    out.step(
        f"Built {ref} in {time.monotonic() - t0:.1f}s" + (f" (exposes {', '.join(map(str, ports))})" if ports else "")
    )
    return ref


def ensure_base_images(deploy: Deploy, client: Any, rel: str, args: dict[str, str]) -> None:
    """Check every base image is on the engine, pulling the missing ones first.

    An image that is missing and cannot be pulled fails the build with one
    line naming it and the remedies, instead of the engine's registry error
    in the middle of the build.
    """
    from skiff import dockerclient

    from . import froms

    assert deploy.workdir is not None
    with open(deploy.workdir / rel, encoding="utf-8", errors="replace") as handle:
        text = handle.read(froms.MAX_DOCKERFILE)
    for base in froms.base_images(text, args):
        if dockerclient.has_image(client, base.reference):
            continue
        deploy.output.info(f"pulling base image {base.reference} (line {base.line})")
        reason = dockerclient.pull(client, base.reference)
        if reason is not None:
            raise SkiffError(
                f"base image {json.dumps(base.reference)} is not on this server and could not be pulled "
                f"({reason}): load it with docker load, or change FROM"
            )


def exposed_ports(attrs: dict[str, Any]) -> list[int]:
    ports = []
    for spec in (attrs.get("Config") or {}).get("ExposedPorts") or {}:
        number, _, proto = spec.partition("/")
        if proto in ("", "tcp") and number.isdigit():
            ports.append(int(number))
    return sorted(ports)


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def docker_build_options(deploy: Deploy) -> dict[str, Any]:
    """SDK arguments from the docker plugin's ``docker-options`` (phase ``build``, validated there).

    A minimal rule of its own (this plugin does not import the docker plugin):
    only ``--build-arg``, ``--label``, ``--add-host`` and ``--shm-size`` are
    applied, none of which reaches the host; anything else in the stored value
    (``--network=host``, a volume, ...; written by any path) is ignored with a
    warning. See docs/security.md, "Host-reaching options".
    """
    options = deploy.state.get_property("docker", "docker-options", app=deploy.app, default=None) or {}
    result: dict[str, Any] = {}
    for option in options.get("build", []) if isinstance(options, dict) else []:
        flag, _, value = option.partition("=")
        if flag == "--build-arg":
            key, _, val = value.partition("=")
            result.setdefault("buildargs", {})[key] = val
        elif flag == "--label":
            key, _, val = value.partition("=")
            result.setdefault("labels", {})[key] = val
        elif flag == "--add-host":
            host, _, address = value.partition(":")
            result.setdefault("extra_hosts", {})[host] = address
        elif flag == "--shm-size":
            match = re.fullmatch(r"([0-9]+)([bkmgBKMG]?)", value)
            if match:
                result["shmsize"] = int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]
        else:
            deploy.output.warn(f"docker option {flag} is not applied by the Dockerfile builder; ignored")
    return result


def build_args(deploy: Deploy) -> dict[str, str]:
    allowed = deploy.state.get_property(PROPS, "build-args", app=deploy.app, default="") or ""
    if not allowed:
        return {}
    config = deploy.state.effective_config(deploy.app)
    return {k: config[k] for k in allowed.split(",") if k in config}


DOCKER_TIMEOUT = 900  # seconds per API call: a build streams for long


def _client():
    from skiff import dockerclient

    return dockerclient.client(DOCKER_TIMEOUT)


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    cli.add_command(builder_set)
    cli.add_command(builder_report)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    props = context.state.properties(PROPS, app=app)
    release = context.state.current_release(app)
    return {
        "builder": {
            "selected": props.get("selected") or "(detected)",
            "installed": builders.listing(builders.installed(context)),
            "last-build": (release.meta.get("builder") if release else None) or None,
            "dockerfile-path": props.get("dockerfile-path") or "Dockerfile",
            "build-args": props.get("build-args") or "",
        }
    }


@access.app_command()
@click.command("builder:set")
@click.argument("app")
@click.argument("key")
@click.argument("value", required=False)
@pass_context
def builder_set(context: Context, app: str, key: str, value: str | None) -> None:
    """Set a builder property of APP: selected NAME (any installed builder), dockerfile-path PATH,
    build-args KEY[,KEY] (config keys passed as docker build args). No VALUE resets it."""
    context.state.require_app(app)
    if key not in KEYS:
        raise ValidationError(f"unknown builder property {key!r}; known: {', '.join(KEYS)}")
    if key == "build-args" and context.via_ssh:
        raise SkiffError("build-args is an operator setting: set it on the server, not over SSH")
    if not value:
        context.state.delete_property(PROPS, key, app=app)
        context.output.step(f"Reset {key} of {app}")
        return
    if key == "selected":
        value = builders.validate_name(context, value)
    if key == "dockerfile-path":
        value = validate_path(value)
    if key == "build-args":
        keys = [k.strip() for k in value.split(",") if k.strip()]
        for k in keys:
            validate.config_key(k)
        value = ",".join(keys)
    context.state.set_property(PROPS, key, value, app=app)
    context.output.step(f"Set {key} of {app} to {value}")


@access.app_command()
@click.command("builder:report")
@click.argument("app")
@pass_context
def builder_report(context: Context, app: str) -> None:
    """Show APP's builder settings."""
    context.state.require_app(app)
    context.output.fields(f"{app} builder information", skiff_report(context, app)["builder"])
