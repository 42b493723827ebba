"""Make a stack image from Debian's packages: debootstrap, docker import, a Dockerfile on top.

Two tags per suite: the raw rootfs ``skiff/stack-base:SUITE`` (debootstrap
minbase with python3, venv, pip and ca-certificates) and the stack
``skiff/stack:SUITE`` built on it (Node.js, npm, compilers and headers, the
non-root ``app`` user, ``/app``). Each step is skipped when its tag exists.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from skiff import contracts
from skiff.errors import SkiffError, ValidationError
from skiff.output import Output

DEFAULT_SUITE = "trixie"
DEFAULT_IMAGE = contracts.DEFAULT_STACK_IMAGE  # skiff/stack:<DEFAULT_SUITE>
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STACK_VERSION = "1"
APP_UID = contracts.APP_UID  # the user builds and processes run as
MILESTONES = (
    "I: Retrieving Release",
    "I: Installing core packages",
    "I: Unpacking the base system",
    "I: Configuring the base system",
    "I: Base system installed",
    "E:",
    "W: Failure",
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BUILD_NOISE = re.compile(r"^( ---> [0-9a-f]{12}$| ---> Running in |Removing intermediate container )")
SUITE_RE = re.compile(r"\A[a-z][a-z0-9-]{1,31}\Z")
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# nodejs/npm do not configure inside debootstrap: they are installed in the Dockerfile step.
STACK_PACKAGES = (
    "nodejs",
    "npm",
    "git",
    "curl",
    "procps",
    "tzdata",
    "locales",
    "build-essential",
    "python3-dev",
    "pkg-config",
    "libpq-dev",
    "libffi-dev",
    "libssl-dev",
)

DOCKERFILE = """\
FROM {base}
ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN export DEBIAN_FRONTEND=noninteractive \\
 && apt-get update -qq \\
 && apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {packages} >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid {uid} app \\
 && useradd --uid {uid} --gid {uid} --create-home --home-dir /home/app --shell /bin/bash app \\
 && install -d -o {uid} -g {uid} /app /build /build/cache /build/env \\
 && touch /build/ca-certificates.crt
WORKDIR /app
LABEL skiff.stack={suite} skiff.stack.version={version} skiff.stack.user={uid}:{uid}
"""


def validate_suite(suite: str) -> str:
    if not SUITE_RE.fullmatch(suite or ""):
        raise ValidationError(f"invalid Debian suite name {suite!r}")
    return suite


DOCKER_TIMEOUT = 600  # seconds per API call: an import of a stack rootfs is slow


def docker_client():
    """A Docker SDK client (:mod:`skiff.dockerclient`), or a clear error when no engine answers."""
    from skiff import dockerclient

    return dockerclient.client(DOCKER_TIMEOUT)


def image_exists(client, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def find_mirror(
    sources_dir: Path = Path("/etc/apt/sources.list.d"), sources_list: Path = Path("/etc/apt/sources.list")
) -> str:
    """The host's Debian mirror (not the security one), from its apt sources."""
    candidates: list[str] = []
    files = sorted(sources_dir.glob("*")) if sources_dir.is_dir() else []
    if sources_list.is_file():
        files.insert(0, sources_list)
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                candidates.extend(line.split()[1:])
            elif line.startswith("deb "):
                parts = [p for p in line.split() if not p.startswith("[")]
                if len(parts) >= 2:
                    candidates.append(parts[1])
    for uri in candidates:
        if re.fullmatch(r"https?://[^ ]+/debian/?", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _unmount_all(rootfs: Path) -> None:
    """A failed debootstrap may leave proc/sys mounted in the rootfs: unmount before cleanup."""
    for sub in ("proc", "sys", "dev/pts", "dev"):
        target = rootfs / sub
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_base(client, suite: str, tag: str, out: Output, mirror: str | None = None) -> None:
    """debootstrap SUITE into a temp dir and import it as ``tag``."""
    if shutil.which("debootstrap") is None:
        raise SkiffError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise SkiffError(
            f"making the {suite} rootfs needs root (debootstrap): run 'skiff stack:build' as root, e.g. 'make stack'"
        )
    mirror = mirror or find_mirror()
    out.step(f"Bootstrapping Debian {suite} from {mirror} (about a minute)")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"skiff-rootfs-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), suite, str(rootfs), mirror]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-8:]
            if line.startswith(MILESTONES):
                out.info(line)
        if proc.wait() != 0:
            out.lines(tail)
            _unmount_all(rootfs)
            raise SkiffError(f"debootstrap of {suite} failed (exit {proc.returncode})")
        out.info(f"rootfs ready in {time.monotonic() - t0:.1f}s")
        out.step(f"Importing the rootfs as {tag}")
        t1 = time.monotonic()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            repo, _, tag_name = tag.rpartition(":")
            client.api.import_image_from_stream(tar.stdout, repository=repo, tag=tag_name)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            raise SkiffError(f"tar of the {suite} rootfs failed (exit {tar.returncode})")
        out.info(f"imported in {time.monotonic() - t1:.1f}s")


def _build_from_dockerfile(client, dockerfile: str, tag: str, out: Output) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tf:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    context.seek(0)
    import requests.exceptions
    import urllib3.exceptions

    error = None
    try:
        for chunk in client.api.build(
            fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False, decode=True
        ):
            if "stream" in chunk:
                for line in ANSI.sub("", chunk["stream"]).splitlines():
                    if line.strip() and not BUILD_NOISE.match(line):
                        out.info(line)
            if "error" in chunk:
                error = chunk["error"]
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise SkiffError(
            f"lost the connection to the Docker engine while building {tag} "
            f"({type(exc).__name__}); is dockerd running? Run stack:build again"
        ) from exc
    if error:
        raise SkiffError(f"building {tag} failed: {error.strip()}")


def probe_versions(client, image: str) -> dict[str, str]:
    """Python and Node.js versions inside ``image`` (empty string when absent)."""
    script = (
        "import platform, shutil, subprocess\n"
        "node = shutil.which('node')\n"
        "v = subprocess.run([node, '--version'], capture_output=True, text=True).stdout if node else ''\n"
        "v = v.strip().lstrip('v')\n"
        "print(platform.python_version() + ' ' + (v or '-'))\n"
    )
    raw = client.containers.run(image, ["python3", "-c", script], remove=True, network_disabled=True)
    python, _, node = raw.decode().strip().partition(" ")
    return {"python": python, "node": "" if node == "-" else node}


def build_stack(client, suite: str, tag: str, out: Output, base: str | None = None) -> dict[str, Any]:
    """Build the stack image ``tag`` for ``suite`` unless it exists; return its labels."""
    validate_suite(suite)
    if image_exists(client, tag):
        out.step(f"Stack image {tag} already exists; nothing to do")
        return client.images.get(tag).labels or {}
    t0 = time.monotonic()
    base = base or f"skiff/stack-base:{suite}"
    if image_exists(client, base):
        out.step(f"Using the base image {base}")
    else:
        build_base(client, suite, base, out)
    out.step(f"Building {tag} (Node.js, npm, build tools, the app user)")
    staging = f"skiff/stack-staging:{suite}"
    dockerfile = DOCKERFILE.format(
        base=base, packages=" ".join(STACK_PACKAGES), uid=APP_UID, suite=suite, version=STACK_VERSION
    )
    _build_from_dockerfile(client, dockerfile, staging, out)
    versions = probe_versions(client, staging)
    labels = {"skiff.stack.python": versions["python"], "skiff.stack.node": versions["node"]}
    label_line = " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    _build_from_dockerfile(client, f"FROM {staging}\nLABEL {label_line}\n", tag, out)
    try:
        client.images.remove(staging, noprune=True)
    except Exception:
        pass
    out.step(
        f"Stack image {tag} ready in {time.monotonic() - t0:.1f}s "
        f"(Python {versions['python']}, Node.js {versions['node'] or 'none'})"
    )
    return client.images.get(tag).labels or {}
