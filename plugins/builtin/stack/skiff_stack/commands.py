"""The stack plugin's commands: stack:build, stack:update, stack:report (stack:set is generated)."""

from __future__ import annotations

import json
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError
from skiff.privileges import needs_root

from .ensure import OWN_IMAGE_RE, build_on_push, ensure_run, suite_lock
from .plugin import IMAGE_RE, image_name, stack_image

__all__ = ["COMMANDS", "IMAGE_RE", "image_name"]


@needs_root
@click.command("stack:build")
@click.argument("suite", required=False)
@pass_context
def stack_build(context: Context, suite: str | None) -> None:
    """Build the stack image from Debian's packages (nothing if it exists with this recipe), and its run image.

    Without SUITE: the configured stack image (default skiff/stack:trixie).
    With SUITE (e.g. bookworm, forky): skiff/stack:SUITE, an extra stack apps
    pick by their Python version. A stack an earlier recipe made is rebuilt.
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
    with suite_lock(context, suite, context.output, tag):
        build.build_stack(client, suite, tag, context.output)
    ensure_run(context, tag, context.output, client, always=True)


@needs_root
@click.command("stack:update")
@click.argument("suite", required=False)
@pass_context
def stack_update(context: Context, suite: str | None) -> None:
    """Apply Debian's current security updates to the stacks (every skiff/stack:SUITE, or SUITE's).

    Each stack gets a new image on top with the updated packages (a stack an
    earlier recipe made is rebuilt first); the apps move to it when they are
    built again: 'skiff ps:rebuild --all'.
    """
    from . import build

    client = build.docker_client()
    if suite:
        build.validate_suite(suite)
        suites = [suite]
    else:
        suites = sorted(
            {r["suite"] for r in _stacks(client) if r["suite"] and r["image"] == f"skiff/stack:{r['suite']}"}
        )
        if not suites:
            raise SkiffError("there is no skiff/stack:SUITE image to update: build one with 'skiff stack:build'")
    for name in suites:
        tag = f"skiff/stack:{name}"
        with suite_lock(context, name, context.output, tag):
            build.update_stack(client, name, tag, context.output)
        ensure_run(context, tag, context.output, client, always=True)  # derived again from the updated stack
    context.output.step("Rebuild the apps on the updated stacks with: skiff ps:rebuild --all")


def _stacks(client) -> list[dict[str, Any]]:
    """The stack (build) images present, each with its run image when one is current."""
    from . import run

    rows, runs = [], {}
    for image in client.images.list(filters={"label": "skiff.stack"}):
        labels = image.labels or {}
        for tag in image.tags or []:
            if tag.startswith(f"{run.RUN_REPOSITORY}:"):
                runs[tag] = (labels, image.attrs.get("Size", 0))
            if not tag.startswith("skiff/stack:"):
                continue  # images built FROM a stack (apps, services) inherit its labels
            rows.append(
                {
                    "image": tag,
                    "id": image.short_id.split(":")[-1],
                    "full_id": image.id,
                    "size": image.attrs.get("Size", 0),
                    "suite": labels.get("skiff.stack", ""),
                    "python": labels.get("skiff.stack.python", ""),
                    "node": labels.get("skiff.stack.node", ""),
                    "recipe": labels.get("skiff.stack.version", ""),
                    "updated": labels.get("skiff.stack.updated", ""),
                }
            )
    for row in rows:
        tag = run.run_tag(row["image"]) or ""
        labels, size = runs.get(tag, (None, 0))
        current = run.is_current(labels, row.pop("full_id"))
        row["run"] = {"image": tag, "size": size, "npm": (labels or {}).get(run.NPM_LABEL, "")} if current else None
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
    report = {
        "image": configured,
        "present": build.image_exists(client, configured),
        "build-on-push": build_on_push(context),
        "recipe": build.STACK_VERSION,
        "stacks": stacks,
    }
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    context.output.banner("stack report")
    click.echo(f"Stack image:        {configured}{'' if report['present'] else ' (missing: run stack:build)'}")
    click.echo(f"Build on push:      {'yes' if build_on_push(context) else 'no'} (stack recipe {build.STACK_VERSION})")
    for row in stacks:
        stale = "" if row["recipe"] == build.STACK_VERSION else f"  (stale: recipe {row['recipe'] or 'none'})"
        updated = f"  updated {row['updated']}" if row["updated"] else ""
        versions = f"python {row['python'] or '?'}  node {row['node'] or '-'}"
        click.echo(f"  {row['image']:<28} {row['id']}  {versions}  {row['size'] / 1e6:.0f} MB{updated}{stale}")
        if row["run"]:
            click.echo(f"    run image {row['run']['image']:<18} {row['run']['size'] / 1e6:.0f} MB (no compilers)")
        else:
            click.echo("    no current run image: apps run on the build image (made by stack:build or the next push)")


COMMANDS: list[click.Command] = [stack_build, stack_update, stack_report]
