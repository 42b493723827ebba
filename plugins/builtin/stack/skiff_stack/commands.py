"""The stack plugin's commands: stack:build, stack:report, stack:set."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from skiff import access
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError
from skiff.privileges import needs_root

from . import PLUGIN
from .plugin import DEFAULT_IMAGE, stack_image

IMAGE_RE = re.compile(r"\A[a-z0-9][a-z0-9._/:@-]{0,254}\Z")
OWN_IMAGE_RE = re.compile(r"\Askiff/stack:([a-z][a-z0-9-]{1,31})\Z")


def image_name(value: str) -> str:
    """Return ``value`` if it is a plausible docker image reference, else raise ValidationError."""
    if not isinstance(value, str) or not IMAGE_RE.fullmatch(value):
        raise ValidationError(f"invalid image name {value!r}")
    return value


@needs_root
@click.command("stack:build")
@click.argument("suite", required=False)
@pass_context
def stack_build(context: Context, suite: str | None) -> None:
    """Build the stack image from Debian's packages (nothing if it exists).

    Without SUITE: the configured stack image (default skiff/stack:trixie).
    With SUITE (e.g. bookworm): skiff/stack:SUITE, an extra stack apps may pick.
    """
    from . import build

    if suite:
        build.validate_suite(suite)
        tag = f"skiff/stack:{suite}"
    else:
        tag = stack_image(context)
        match = OWN_IMAGE_RE.fullmatch(tag)
        if not match:
            client = build.docker_client()
            if build.image_exists(client, tag):
                context.output.step(f"Stack image {tag} already exists; nothing to do")
                return
            raise SkiffError(
                f"the stack image {tag} is not a skiff/stack:SUITE image and is not present: "
                f"load or pull it (docker pull {tag}), or reset it with stack:set --global image"
            )
        suite = match.group(1)
    client = build.docker_client()
    build.build_stack(client, suite, tag, context.output)


def _stacks(client) -> list[dict[str, Any]]:
    rows = []
    for image in client.images.list(filters={"label": "skiff.stack"}):
        labels = image.labels or {}
        for tag in image.tags or []:
            if not tag.startswith("skiff/stack:"):
                continue  # images built FROM a stack (apps, services) inherit its labels
            rows.append(
                {
                    "image": tag,
                    "id": image.short_id.split(":")[-1],
                    "suite": labels.get("skiff.stack", ""),
                    "python": labels.get("skiff.stack.python", ""),
                    "node": labels.get("skiff.stack.node", ""),
                }
            )
    return sorted(rows, key=lambda r: r["image"])


@access.admin_command
@click.command("stack:report")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def stack_report(context: Context, fmt: str) -> None:
    """Show the configured stack image and every stack image present."""
    from . import build

    configured = stack_image(context)
    client = build.docker_client()
    stacks = _stacks(client)
    report = {"image": configured, "present": build.image_exists(client, configured), "stacks": stacks}
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    context.output.banner("stack report")
    click.echo(f"Stack image:        {configured}{'' if report['present'] else ' (missing: run stack:build)'}")
    for row in stacks:
        click.echo(f"  {row['image']:<28} {row['id']}  python {row['python'] or '?'}  node {row['node'] or '-'}")


@local_only
@click.command("stack:set")
@click.option("--global", "is_global", is_flag=True, help="Set the global stack (the only scope).")
@click.argument("key")
@click.argument("value", required=False)
@pass_context
def stack_set(context: Context, is_global: bool, key: str, value: str | None) -> None:
    """Set a stack property: stack:set --global image NAME (no NAME: the default)."""
    if not is_global:
        raise click.UsageError("the stack is a global setting: use stack:set --global image NAME")
    if key != "image":
        raise ValidationError(f"unknown stack property {key!r}; the only one is 'image'")
    if not value:
        context.state.delete_property(PLUGIN, "image")
        context.output.step(f"Stack image reset to {DEFAULT_IMAGE}")
        return
    context.state.set_property(PLUGIN, "image", image_name(value))
    context.output.step(f"Stack image set to {value}; new builds use it")


COMMANDS: list[click.Command] = [stack_build, stack_report, stack_set]
