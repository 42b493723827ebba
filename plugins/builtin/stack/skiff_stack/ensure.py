"""The stack a push needs: built on the push when missing (once), rebuilt when its recipe is stale."""

from __future__ import annotations

import re
from typing import Any

from skiff import locks
from skiff.context import Context
from skiff.errors import SkiffError
from skiff.output import Output

from . import build

OWN_IMAGE_RE = re.compile(r"\Askiff/stack:([a-z][a-z0-9-]{1,31})\Z")
LOCK_TIMEOUT = 3600.0  # seconds a push waits for another push's build of the same suite


def suite_of(image: str) -> str | None:
    """``forky`` for ``skiff/stack:forky``; ``None`` for images this plugin does not make."""
    match = OWN_IMAGE_RE.fullmatch(image)
    return match.group(1) if match else None


def describe(suite: str) -> str:
    python = build.suite_recipe(suite).python
    return f"Debian {suite}" + (f", Python {python}" if python else "")


def build_on_push(context: Context) -> bool:
    from .plugin import SETTINGS

    return bool(SETTINGS.get(context.state, "build-on-push"))


def suite_lock(context: Context, suite: str, output: Output, image: str):
    """The per-suite lock: one build of a suite's stack at a time on this server."""
    return locks.file_lock(
        locks.lock_path(context.root, f"stack-{suite}"),
        timeout=LOCK_TIMEOUT,
        on_wait=lambda: output.info(f"Waiting for another build of {image} to finish"),
    )


def ensure(context: Context, image: str, output: Output, client: Any = None) -> dict[str, str] | None:
    """Labels of the current stack ``image``, building or rebuilding it first when needed."""
    suite = suite_of(image)
    if suite is None:
        return None
    client = client or build.docker_client()
    labels = build.labels_of(client, image)
    if build.is_current(labels):
        return labels
    if not build_on_push(context):
        if labels is None:
            raise SkiffError(
                f"the stack {image} ({describe(suite)}) is not built on this server and build-on-push is off: "
                f"build it with 'skiff stack:build {suite}' (or 'stack:set --global build-on-push true')"
            )
        output.warn(
            f"stack {image}: {build.stale_reason(labels)}; build-on-push is off, so it is kept: "
            f"rebuild it with 'skiff stack:build {suite}'"
        )
        return labels
    with suite_lock(context, suite, output, image):
        labels = build.labels_of(client, image)
        if build.is_current(labels):
            output.step(f"Using {image}, which another push built meanwhile")
            return labels
        if labels is None:
            output.step(f"No stack image {image} yet ({describe(suite)}): building it now, once for this server")
        build.build_stack(client, suite, image, output)
    return build.labels_of(client, image)


def ensure_run(
    context: Context, image: str, output: Output, client: Any = None, always: bool = False
) -> dict[str, str] | None:
    """The run image of the current stack ``image`` (see the ``skiff_stack_run_image`` hook).

    ``always``: derive a missing or stale one even when build-on-push is off (``stack:build``).
    """
    from . import run

    suite = suite_of(image)
    tag = run.run_tag(image)
    if suite is None or tag is None:
        return None
    client = client or build.docker_client()
    stack = client.images.get(image)
    labels = build.labels_of(client, tag)
    if not run.is_current(labels, stack.id):
        if not always and not build_on_push(context):
            return None
        with suite_lock(context, suite, output, tag):
            stack = client.images.get(image)
            labels = build.labels_of(client, tag)
            if not run.is_current(labels, stack.id):
                try:
                    labels = run.build_run(client, image, output)
                except SkiffError as exc:
                    if always:
                        raise
                    output.warn(f"{exc}: this build's app image is based on the build image {image}")
                    return None
    assert labels is not None
    return {
        "image": tag,
        "id": client.images.get(tag).id,
        "python": labels.get("skiff.stack.python", ""),
        "node": labels.get("skiff.stack.node", ""),
        "npm": labels.get(run.NPM_LABEL, ""),
        "of": stack.id,
    }


def stale_stacks(client: Any) -> list[tuple[str, dict[str, str]]]:
    """The ``skiff/stack:SUITE`` images present that another recipe made."""
    found = []
    for row in client.api.images(filters={"reference": "skiff/stack"}):
        labels = row.get("Labels") or {}
        for tag in sorted(row.get("RepoTags") or []):
            if suite_of(tag) and labels.get("skiff.stack") and not build.is_current(labels):
                found.append((tag, labels))
    return found
