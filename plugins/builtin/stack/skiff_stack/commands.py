"""The stack plugin's commands: stack:build, stack:report (stack:set is generated from its settings)."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError
from skiff.privileges import needs_root

from .plugin import IMAGE_RE, image_name, stack_image

__all__ = ["COMMANDS", "IMAGE_RE", "image_name"]
OWN_IMAGE_RE = re.compile(r"\Askiff/stack:([a-z][a-z0-9-]{1,31})\Z")


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


COMMANDS: list[click.Command] = [stack_build, stack_report]
