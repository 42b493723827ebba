"""Find the stack images present and what they hold (from their labels, or a probe)."""

from __future__ import annotations

import re

from skiff import contracts
from skiff.context import Context
from skiff.errors import SkiffError

from .build import DEFAULT_PATH, DEFAULT_USER, Stack
from .versions import parse_requested, version_satisfies  # noqa: F401 (re-exported)

DEFAULT_IMAGE = contracts.DEFAULT_STACK_IMAGE
VERSION = re.compile(r"\A[0-9]+(?:\.[0-9]+){1,2}[A-Za-z0-9.+-]*\Z")  # 3.13.5, 3.14.0rc1, 20.19.2
PROBE = (
    "import platform, shutil, subprocess\n"
    "node = shutil.which('node')\n"
    "v = subprocess.run([node, '--version'], capture_output=True, text=True).stdout if node else ''\n"
    "v = v.strip().lstrip('v')\n"
    "print(platform.python_version() + ' ' + (v or '-'))\n"
)


def configured_image(context: Context) -> str:
    """The stack image (the ``stack`` plugin's global property ``image``)."""
    return contracts.stack_image(context.state)


def _path_of(attrs: dict) -> str:
    for item in (attrs.get("Config") or {}).get("Env") or []:
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


def stack_from_image(context: Context, client, ref: str) -> Stack:
    import docker.errors

    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        hint = "run 'skiff stack:build'" if ref.startswith("skiff/stack:") else f"pull or load {ref}"
        raise SkiffError(f"the stack image {ref} is missing: {hint}") from None
    labels = image.labels or {}
    python, node = labels.get("skiff.stack.python"), labels.get("skiff.stack.node")
    if python is None:
        python, node = _probe(context, client, image.id)
    return Stack(
        image=ref,
        id=image.id,
        python=python or "",
        node=node or "",
        user=labels.get("skiff.stack.user") or DEFAULT_USER,
        path=_path_of(image.attrs),
    )


def _probe(context: Context, client, image_id: str) -> tuple[str, str]:
    """Versions of an unlabelled (e.g. registry) stack image; cached per image id.

    Only a probe that found Python is cached: a failed one (the engine busy, the
    image without python3) is tried again on the next build. A cached entry
    without a Python version (a failure cached by older versions) is ignored.
    """
    key = f"probe-{image_id.split(':')[-1][:32]}"
    cached = context.state.get_property("buildpacks", key)
    if cached and cached[0]:
        return cached[0], cached[1]
    result = _run_probe(client, image_id)
    if result[0]:
        context.state.set_property("buildpacks", key, list(result))
    return result


def _run_probe(client, image_id: str) -> tuple[str, str]:
    """``(python, node)`` versions printed by the probe; ``("", "")`` when it fails."""
    try:
        raw = client.containers.run(image_id, ["python3", "-c", PROBE], remove=True, network_disabled=True)
    except Exception:
        return "", ""
    python, _, node = raw.decode("utf-8", "replace").strip().partition(" ")
    if not VERSION.fullmatch(python) or not (node == "-" or VERSION.fullmatch(node)):
        return "", ""
    return python, "" if node == "-" else node


def ensure_stack(context: Context, client, ref: str, output) -> None:
    """Let the stack plugin build ``ref`` if it is missing, or rebuild it if an earlier recipe made it."""
    hook = getattr(context.hook, "skiff_stack_ensure", None)
    if hook is not None:
        hook(context=context, image=ref, output=output)


def ready_stack(context: Context, client, stack: Stack, output) -> Stack:
    """``stack`` built and current (see :func:`ensure_stack`), read afresh from the engine."""
    ensure_stack(context, client, stack.image, output)
    return stack_from_image(context, client, stack.image)


def buildable_stacks(context: Context, present: list[Stack]) -> list[Stack]:
    """The stacks of known Debian suites not built here yet (the stack plugin builds them on first use)."""
    hook = getattr(context.hook, "skiff_stack_suites", None)
    suites = (hook(context=context) if hook is not None else None) or []
    seen = {s.image for s in present}
    return [
        Stack(image=row["image"], id="", python=row["python"], buildable=True)
        for row in suites
        if row.get("image") not in seen and VERSION.fullmatch(row.get("python") or "")
    ]


def all_stacks(context: Context, client, current: Stack) -> list[Stack]:
    """The configured stack first, then the other local ``skiff/stack:*`` images (from their labels),
    then the known suites' stacks not built yet (``buildable``).

    Images built FROM a stack (apps, services) inherit its labels, so only the
    ``skiff/stack`` repository counts.
    """
    stacks = [current]
    seen = {current.image}
    # the low-level call lists without inspecting every image; only skiff/stack tags count
    for row in client.api.images(filters={"reference": "skiff/stack"}):
        labels = row.get("Labels") or {}
        for tag in sorted(row.get("RepoTags") or []):
            if tag.startswith("skiff/stack:") and tag not in seen and labels.get("skiff.stack.python"):
                seen.add(tag)
                image = client.images.get(row["Id"])
                stacks.append(
                    Stack(
                        image=tag,
                        id=row["Id"],
                        python=labels.get("skiff.stack.python", ""),
                        node=labels.get("skiff.stack.node", ""),
                        user=labels.get("skiff.stack.user") or DEFAULT_USER,
                        path=_path_of(image.attrs),
                    )
                )
    return stacks + buildable_stacks(context, stacks)
