"""Toolchain layers: a stack image with Debian packages added, built on first use.

A pack that compiles (Go) needs a toolchain the base stack does not carry. Rather
than growing every stack, :func:`ensure` makes ``skiff/stack-<name>:<suite>`` once:
a container of the stack image runs ``apt-get install`` as root, asks the toolchain
its version, and is committed with the stack's user and command and these labels:

- ``skiff.toolchain=<name>``, ``skiff.toolchain.version`` (what the version command printed),
- ``skiff.toolchain.stack`` (the stack image id it was built from),
- ``skiff.toolchain.recipe`` (a hash of the packages and :data:`RECIPE_VERSION`).

The next build reuses it while the stack id and the recipe are unchanged; a rebuilt
stack or a changed recipe makes a new one. Builds only run in it: the app image is
committed on the stack itself (the pack copies its outputs there).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import SkiffError
from skiff.output import Output

from .build import Stack, dockerfile_value

RECIPE_VERSION = "1"
NAME = re.compile(r"\A[a-z][a-z0-9]{0,19}\Z")
PACKAGE = re.compile(r"\A[a-z0-9][a-z0-9+.-]{0,99}\Z")
BUILD_LABEL = "skiff.toolchain-build"  # on the container that makes a toolchain layer: the name
TAG = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
VERSION_MARK = "@@skiff-toolchain-version "
SHOWN = re.compile(r"^(Setting up |E: |W: |Err:|@@skiff-step )")
LOCK_TIMEOUT = 1800.0
# Fixed text: the packages and the version command arrive as arguments ("$@"), never in the script.
SCRIPT = """\
set -e
export DEBIAN_FRONTEND=noninteractive
packages=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do packages="$packages $1"; shift; done
shift
echo "@@skiff-step Updating the package lists"
apt-get update -qq
echo "@@skiff-step Installing$packages"
apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends $packages
apt-get clean
rm -rf /var/lib/apt/lists/*
echo "@@skiff-toolchain-version $("$@")"
"""


@dataclass(frozen=True)
class Toolchain:
    """A toolchain image: ``image`` (the tag), ``id`` and the ``version`` its command printed."""

    name: str
    image: str
    id: str
    version: str


def suite_of(labels: dict[str, str], stack: Stack) -> str:
    """The tag of the toolchain image: the stack's suite label, else the stack's tag, else its id."""
    for candidate in (labels.get("skiff.stack", ""), stack.image.rpartition(":")[2]):
        if TAG.fullmatch(candidate) and "/" not in candidate:
            return candidate
    return "id-" + stack.id.split(":")[-1][:12]


def recipe_key(packages: Sequence[str], version_command: Sequence[str]) -> str:
    data = json.dumps({"recipe": RECIPE_VERSION, "packages": list(packages), "version": list(version_command)})
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def validate(name: str, packages: Sequence[str], version_command: Sequence[str]) -> None:
    if not NAME.fullmatch(name):
        raise SkiffError(f"invalid toolchain name {name!r}")
    bad = [p for p in packages if not PACKAGE.fullmatch(p)]
    if bad or not packages:
        raise SkiffError(f"invalid Debian package names for the {name} toolchain: {bad or 'none given'}")
    if not version_command or any(not isinstance(a, str) or "\n" in a for a in version_command):
        raise SkiffError(f"invalid version command for the {name} toolchain")


def reusable(image: Any, name: str, stack: Stack, recipe: str) -> Toolchain | None:
    labels = image.labels or {}
    if labels.get("skiff.toolchain") != name or labels.get("skiff.toolchain.stack") != stack.id:
        return None
    if labels.get("skiff.toolchain.recipe") != recipe or not labels.get("skiff.toolchain.version"):
        return None
    tag = (image.tags or [""])[0]
    return Toolchain(name, tag, image.id, labels["skiff.toolchain.version"])


def _get(client, ref: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def ensure(
    client,
    stack: Stack,
    name: str,
    packages: Sequence[str],
    version_command: Sequence[str],
    out: Output,
    lock_dir: Path | None = None,
) -> Toolchain:
    """The toolchain image for ``stack``: reused when current, else built (once, under a lock)."""
    validate(name, packages, version_command)
    stack_image = _get(client, stack.id)
    if stack_image is None:
        raise SkiffError(f"the stack image {stack.image} is gone; run 'skiff stack:build'")
    ref = f"skiff/stack-{name}:{suite_of(stack_image.labels or {}, stack)}"
    recipe = recipe_key(packages, version_command)
    existing = _get(client, ref)
    found = reusable(existing, name, stack, recipe) if existing is not None else None
    if found is not None:
        return Toolchain(name, ref, found.id, found.version)
    if lock_dir is None:
        return _build(client, stack, stack_image, ref, name, packages, version_command, recipe, out)
    from skiff.locks import file_lock

    lock = lock_dir / f"toolchain-{name}-{ref.rpartition(':')[2]}.lock"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(lock, LOCK_TIMEOUT, on_wait=lambda: out.info(f"waiting for another build of {ref}")):
        existing = _get(client, ref)  # another build may have made it while we waited
        found = reusable(existing, name, stack, recipe) if existing is not None else None
        if found is not None:
            return Toolchain(name, ref, found.id, found.version)
        return _build(client, stack, stack_image, ref, name, packages, version_command, recipe, out)


def _build(
    client,
    stack: Stack,
    stack_image: Any,
    ref: str,
    name: str,
    packages: Sequence[str],
    version_command: Sequence[str],
    recipe: str,
    out: Output,
) -> Toolchain:
    from .build import _engine_errors, engine_error

    out.step(f"Building the {name} toolchain layer {ref} from Debian ({', '.join(packages)}; once per stack)")
    t0 = time.monotonic()
    container = None
    try:
        _remove_leftovers(client, name)
        container = client.containers.create(
            stack.id,
            ["sh", "-c", SCRIPT, "sh", *packages, "--", *version_command],
            user="root",
            labels={BUILD_LABEL: name},
            detach=True,
        )
        container.start()
        version, tail = _follow(container, out)
        status = container.wait().get("StatusCode", 1)
        if status != 0 or not version:
            out.lines(tail)
            raise SkiffError(f"building the {name} toolchain layer {ref} failed (exit {status})")
        repository, _, tag = ref.rpartition(":")
        image = container.commit(
            repository=repository, tag=tag, changes=_changes(stack, stack_image, name, version, recipe)
        )
    except _engine_errors() as exc:
        raise engine_error(exc) from exc
    finally:
        if container is not None:
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass
    out.step(f"Toolchain layer {ref} ready in {time.monotonic() - t0:.1f}s ({version})")
    return Toolchain(name, ref, image.id, version)


def _remove_leftovers(client, name: str) -> None:
    """A build killed half-way leaves its container; the lock is held, so none is live."""
    for container in client.containers.list(all=True, filters={"label": f"{BUILD_LABEL}={name}"}, sparse=True):
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass


def _follow(container, out: Output) -> tuple[str, list[str]]:
    """Show the milestones of the install; return the version line and the last lines."""
    version, buffer = "", b""
    tail: list[str] = []
    for chunk in container.logs(stream=True, follow=True):
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").rstrip()
            tail = (tail + [line])[-12:]
            if line.startswith(VERSION_MARK):
                version = line[len(VERSION_MARK) :].strip()
            elif SHOWN.match(line):
                out.info(line.removeprefix("@@skiff-step "))
    return version, tail


def _changes(stack: Stack, stack_image: Any, name: str, version: str, recipe: str) -> list[str]:
    """The committed image keeps the stack's user and command (the container ran as root, with sh)."""
    config = stack_image.attrs.get("Config") or {}
    changes = [f"USER {stack.user}"]
    cmd = config.get("Cmd")
    changes.append("CMD " + json.dumps(cmd if cmd else ["/bin/sh"]))
    changes.append(
        f"LABEL skiff.toolchain={dockerfile_value(name)} skiff.toolchain.version={dockerfile_value(version)} "
        f"skiff.toolchain.stack={dockerfile_value(stack.id)} skiff.toolchain.recipe={dockerfile_value(recipe)}"
    )
    return changes
