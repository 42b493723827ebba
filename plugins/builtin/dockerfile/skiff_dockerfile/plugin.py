"""The Dockerfile builder, and builder:set / builder:report.

An app with a ``Dockerfile`` at its root (or at ``builder:set APP
dockerfile-path PATH``) is built with the Docker SDK (``docker build``, the
engine's layer cache, no pulls): the builder ``dockerfile`` (detection order
100, before buildpacks). ``builder:set APP selected NAME`` forces any
installed builder (:mod:`skiff.builders`). Build args come only from the config keys
the operator lists with ``builder:set APP build-args KEY,KEY`` (build args
are visible in ``docker history``, so nothing is passed by default).

Shared properties (plugin ``builder``, per app): ``selected``,
``dockerfile-path``, ``build-args``, declared as the settings :data:`SETTINGS`
(``builder:set`` is generated from them; ``build-args`` is root's only).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import PurePosixPath
from typing import Any

import click

from skiff import builders, contracts, hookimpl, validate
from skiff.builders import BuilderInfo
from skiff.context import Context
from skiff.contracts import StashKey
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError
from skiff.settings import Namespace, Setting

from . import PLUGIN

PROPS = "builder"  # the shared property namespace
ORDER = 100  # detection: before buildpacks (1000)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOISE = re.compile(r"^( ---> [0-9a-f]{12}$| ---> Running in |Removing intermediate container )")
DOCKERFILE: StashKey[str] = StashKey(PLUGIN, "dockerfile")  # the Dockerfile to build, from skiff_pre_build


def validate_path(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not value or "\x00" in value or len(value) > 255:
        raise ValidationError(f"dockerfile-path must be a relative path inside the app, got {value!r}")
    return str(path)


def config_keys(value: str) -> str:
    """``KEY[,KEY]``: config keys, comma-separated, blanks dropped."""
    return ",".join(validate.config_key(k.strip()) for k in value.split(",") if k.strip())


def _installed(context: Context, name: str) -> None:
    builders.validate_name(context, name)


SETTINGS = Namespace(
    "builder",
    (
        Setting(
            builders.SELECTED,
            default="",
            validate=lambda context, name: _installed(context, name),
            help="force an installed builder (no VALUE: detect)",
        ),
        Setting("dockerfile-path", type=validate_path, default="Dockerfile", help="the Dockerfile, relative"),
        Setting("build-args", type=config_keys, default="", level="root", help="config keys passed as build args"),
    ),
    store=PROPS,
    noun="property",
    commands=("set",),  # builder:report is the plugin's own: it adds the installed builders and the last build
)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [SETTINGS]


def dockerfile_path(deploy_or_context, app: str) -> str:
    return str(SETTINGS.get(deploy_or_context.state, "dockerfile-path", app=app))


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
    deploy.stash[DOCKERFILE] = rel


@hookimpl(trylast=True)
def skiff_build(deploy: Deploy) -> str | None:
    rel = deploy.stash.get(DOCKERFILE)
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
    ports = contracts.image_exposed_ports(image.attrs)
    deploy.meta["builder"] = PLUGIN
    deploy.meta["dockerfile"] = rel
    deploy.exposed_ports = ports
    deploy.image_id = image.id
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


#: the ``deploy.build_options`` keys the SDK's ``docker build`` takes (as keyword arguments)
SDK_BUILD_OPTIONS = ("buildargs", "labels", "extra_hosts", "shmsize")


def docker_build_options(deploy: Deploy) -> dict[str, Any]:
    """SDK arguments of ``docker build`` from ``deploy.build_options``.

    The docker plugin publishes the app's ``build`` docker-options there,
    checked against its allow-list (nothing host-reaching: docs/security.md,
    "Host-reaching options"; docs/contracts.md). The SDK's build takes no
    ulimits: those are left out with a warning.
    """
    published: dict[str, Any] = dict(deploy.build_options)
    result = {key: published[key] for key in SDK_BUILD_OPTIONS if key in published}
    if published.get("ulimits"):
        deploy.output.warn("docker option --ulimit is not applied by the Dockerfile builder; ignored")
    return result


def build_args(deploy: Deploy) -> dict[str, str]:
    allowed = str(SETTINGS.get(deploy.state, "build-args", app=deploy.app))
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
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    values = SETTINGS.values(context.state, app)
    release = context.state.current_release(app)
    return {
        "builder": {
            "selected": values["selected"] or "(detected)",
            "installed": builders.listing(builders.selectable(context)),
            "last-build": (release.meta.get("builder") if release else None) or None,
            "dockerfile-path": values["dockerfile-path"],
            "build-args": values["build-args"],
        }
    }
