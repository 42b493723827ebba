"""stack:build, stack:report, stack:set: the image builds and apps run on.

The stack image is the global property ``("stack", "image")``, default
``skiff/stack:trixie``. Other plugins read that property; they never import
this package.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context

from . import PLUGIN

DEFAULT_IMAGE = "skiff/stack:trixie"


def stack_image(context: Context) -> str:
    """The configured stack image name (without creating a state database just to read it)."""
    from skiff.state import State

    if not (context.root / State.filename).exists():
        return DEFAULT_IMAGE
    return context.state.get_property(PLUGIN, "image", default=None) or DEFAULT_IMAGE


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    return {"stack": {"image": stack_image(context)}}
