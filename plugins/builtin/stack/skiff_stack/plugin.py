"""stack:build, stack:update, stack:report, stack:set: the images builds and apps run on.

The stack image is the declared global setting ``image`` (the property
``("stack", "image")``, set by root with ``stack:set --global image NAME``),
default ``skiff/stack:trixie``. Other plugins read that property; they never
import this package. Builders reach the stacks of other Debian suites through
this plugin's hooks (``skiff_stack_suites``, ``skiff_stack_ensure``: built on
a push that needs one unless ``build-on-push`` is off).
"""

from __future__ import annotations

import re
from typing import Any

import click

from skiff import contracts, hookimpl
from skiff.context import Context
from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting

from . import PLUGIN, hookspecs

DEFAULT_IMAGE = contracts.DEFAULT_STACK_IMAGE
IMAGE_RE = re.compile(r"\A[a-z0-9][a-z0-9._/:@-]{0,254}\Z")


def image_name(value: str) -> str:
    """Return ``value`` if it is a plausible docker image reference, else raise ValidationError."""
    if not isinstance(value, str) or not IMAGE_RE.fullmatch(value):
        raise ValidationError(f"invalid image name {value!r}")
    return value


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting(
            "image",
            type=image_name,
            default=DEFAULT_IMAGE,
            scope="global",
            level="root",
            help="the image builds and apps run on",
        ),
        Setting(
            "build-on-push",
            type=bool,
            default=True,
            scope="global",
            level="admin",
            env="SKIFF_STACK_BUILD_ON_PUSH",
            help="build a missing or stale skiff/stack:SUITE on the push that needs it",
        ),
    ),
    noun="property",
    commands=("set",),  # stack:report is the plugin's own: it also lists the images present
)


@hookimpl
def skiff_addhooks(pm) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [SETTINGS]


def stack_image(context: Context) -> str:
    """The configured stack image name (without creating a state database just to read it)."""
    from skiff.state import State

    if not (context.root / State.filename).exists():
        return DEFAULT_IMAGE
    return str(SETTINGS.get(context.state, "image"))


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    return {"stack": {"image": stack_image(context)}}


@hookimpl
def skiff_stack_suites(context: Context) -> list[dict[str, str]]:
    from .build import SUITES

    return [{"suite": s.name, "image": f"skiff/stack:{s.name}", "python": s.python} for s in SUITES.values()]


@hookimpl
def skiff_stack_ensure(context: Context, image: str, output) -> dict[str, str] | None:
    from .ensure import ensure

    return ensure(context, image, output)


@hookimpl
def skiff_stack_run_image(context: Context, image: str, output) -> dict[str, str] | None:
    from .ensure import ensure_run

    return ensure_run(context, image, output)


@hookimpl
def skiff_upgrade(context: Context) -> list[str] | None:
    """Name the stacks an earlier recipe made: each is rebuilt at the next push that uses it."""
    from skiff import dockerclient

    from . import build
    from .ensure import stale_stacks, suite_of

    try:
        client = dockerclient.client(30)  # a short wait: an install without an engine goes on
        stale = stale_stacks(client)
    except Exception:  # no engine during an install: nothing to say
        return None
    return [
        f"stack {tag}: {build.stale_reason(labels)}; rebuilt at the next push that uses it "
        f"(or now: skiff stack:build {suite_of(tag)})"
        for tag, labels in stale
    ]
