"""Make a stack image from Debian's packages: debootstrap, docker import, a Dockerfile on top.

Two tags per suite: the raw rootfs ``skiff/stack-base:SUITE`` (debootstrap
minbase with python3, venv, pip and ca-certificates) and the stack
``skiff/stack:SUITE`` built on it (Node.js, npm, compilers and headers, the
non-root ``app`` user, ``/app``). Each step is skipped when its tag exists.

The rootfs is made without host root when a Debian image is already there
(``skiff/stack-base:trixie`` or ``skiff/stack:trixie``): a throwaway container
of it, root inside but unprivileged, installs debootstrap and bootstraps the
suite into ``/rootfs``; the engine streams that directory out
(``get_archive``) straight into ``docker import``. Only the very first stack
of a server (no Debian image yet) runs debootstrap on the host, as root.

Every stack carries :data:`STACK_VERSION` as the label ``skiff.stack.version``
(the recipe): a stack made by another recipe is stale and is rebuilt
(:func:`is_current`).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff import contracts
from skiff.errors import SkiffError, ValidationError
from skiff.output import Output

DEFAULT_SUITE = "trixie"
DEFAULT_IMAGE = contracts.DEFAULT_STACK_IMAGE  # skiff/stack:<DEFAULT_SUITE>
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The recipe version, label skiff.stack.version: bump it whenever what a stack holds changes
# (the Dockerfile, the packages, a suite's extras); tests/test_stack.py pins the recipe's digest.
STACK_VERSION = "1"
VERSION_LABEL = "skiff.stack.version"
UPDATED_LABEL = "skiff.stack.updated"
BOOTSTRAP_LABEL = "skiff.stack-bootstrap"  # on the container that bootstraps a rootfs: the suite
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
STEP_WIDTH = 160  # a build line longer than this (a RUN step's script) is cut
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
{pre}ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN export DEBIAN_FRONTEND=noninteractive \\
 && apt-get update -qq \\
 && apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {packages} >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid {uid} app \\
 && useradd --uid {uid} --gid {uid} --create-home --home-dir /home/app --shell /bin/bash app \\
 && install -d -o {uid} -g {uid} /app /build /build/cache /build/env \\
 && touch /build/ca-certificates.crt
{post}WORKDIR /app
LABEL skiff.stack={suite} skiff.stack.version={version} skiff.stack.user={uid}:{uid}
"""


@dataclass(frozen=True)
class Suite:
    """A Debian suite Skiff knows how to make a stack of, and the Python its stack runs."""

    name: str
    python: str  # the minor the stack's python3 is ("3.14")
    script: str | None = None  # debootstrap script when debootstrap has none of this name (forky: sid)
    stable: bool = True  # a release: SUITE-security and SUITE-updates exist, Release files stay valid
    python_package: str | None = None  # make /usr/local/bin/python3 this interpreter (testing carries several)

    def packages(self) -> tuple[str, ...]:
        if not self.python_package:
            return STACK_PACKAGES
        extra = (self.python_package, f"{self.python_package}-venv", f"{self.python_package}-dev")
        return STACK_PACKAGES + extra

    def pre(self) -> str:
        """Dockerfile lines before the package install."""
        if self.stable:
            return ""
        # the mirror's testing/unstable Release files are past their Valid-Until date
        return f"RUN echo 'Acquire::Check-Valid-Until \"false\";' > {VALID_UNTIL_CONF}\n"

    def post(self) -> str:
        """Dockerfile lines after the app user (the stack's python3)."""
        if not self.python_package:
            return ""
        return f"RUN ln -s /usr/bin/{self.python_package} /usr/local/bin/python3\n"


VALID_UNTIL_CONF = "/etc/apt/apt.conf.d/99skiff-check-valid-until"
#: The suites apps may ask for by Python version (and that a push builds on demand).
SUITES: dict[str, Suite] = {
    "bookworm": Suite("bookworm", "3.11"),
    "trixie": Suite("trixie", "3.13"),
    # Debian testing: python3.13, 3.14 and 3.15 side by side; the stack's python3 is 3.14.
    "forky": Suite("forky", "3.14", script="sid", stable=False, python_package="python3.14"),
}


def suite_recipe(suite: str) -> Suite:
    """The known suite, or a generic one (any suite ``stack:build SUITE`` may name)."""
    return SUITES.get(suite) or Suite(suite, "", stable=suite not in ("sid", "unstable", "testing"))


def dockerfile(suite: str, base: str) -> str:
    """The stack's Dockerfile for ``suite`` on the rootfs image ``base``."""
    recipe = suite_recipe(suite)
    return DOCKERFILE.format(
        base=base,
        pre=recipe.pre(),
        packages=" ".join(recipe.packages()),
        uid=APP_UID,
        post=recipe.post(),
        suite=suite,
        version=STACK_VERSION,
    )


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
    return labels_of(client, ref) is not None


def labels_of(client, ref: str) -> dict[str, str] | None:
    """The labels of image ``ref`` (``{}`` without any), ``None`` when it is missing."""
    import docker.errors

    try:
        return dict(client.images.get(ref).labels or {})
    except docker.errors.ImageNotFound:
        return None


def is_current(labels: dict[str, str] | None) -> bool:
    """True if a stack with these labels was made by this recipe (:data:`STACK_VERSION`)."""
    return labels is not None and labels.get(VERSION_LABEL) == STACK_VERSION


def stale_reason(labels: dict[str, str]) -> str:
    made = labels.get(VERSION_LABEL) or "none"
    return f"it was made by stack recipe {made}, this skiff's is {STACK_VERSION}"


def _apt_uris(sources_dir: Path, sources_list: Path) -> list[str]:
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
    return candidates


def find_mirror(
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
    security: bool = False,
) -> str:
    """The host's Debian mirror (``security``: its debian-security mirror), from its apt sources."""
    tail = "debian-security" if security else "debian"
    for uri in _apt_uris(sources_dir, sources_list):
        if re.fullmatch(rf"https?://[^ ]+/{tail}/?", uri):
            return uri.rstrip("/")
    return DEFAULT_SECURITY_MIRROR if security else DEFAULT_MIRROR


DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"


def _unmount_all(rootfs: Path) -> None:
    """A failed debootstrap may leave proc/sys mounted in the rootfs: unmount before cleanup."""
    for sub in ("proc", "sys", "dev/pts", "dev"):
        target = rootfs / sub
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def debootstrap_args(suite: str, target: str, mirror: str) -> list[str]:
    """debootstrap's arguments (the script of :class:`Suite` when debootstrap has none of that name)."""
    recipe = suite_recipe(suite)
    args = ["--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), suite, target, mirror]
    if recipe.script:
        args.append(f"/usr/share/debootstrap/scripts/{recipe.script}")
    return args


#: Bootstrap images, in order of preference: any Debian with apt (installs debootstrap in a container).
BOOTSTRAP_IMAGES = (f"skiff/stack-base:{DEFAULT_SUITE}", f"skiff/stack:{DEFAULT_SUITE}")
# Fixed text: the debootstrap arguments arrive as "$@", never in the script.
BOOTSTRAP_SCRIPT = """\
set -e
export DEBIAN_FRONTEND=noninteractive
echo "I: Installing debootstrap in the build container"
apt-get update -qq >/dev/null
apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends debootstrap gpgv debian-archive-keyring >/dev/null
exec debootstrap "$@"
"""


def bootstrap_image(client) -> str | None:
    """A Debian image present here that can run debootstrap in a container, or ``None``."""
    for ref in BOOTSTRAP_IMAGES:
        if image_exists(client, ref):
            return ref
    return None


def build_base(client, suite: str, tag: str, out: Output, mirror: str | None = None) -> None:
    """Bootstrap SUITE and import it as ``tag``: in a container when a Debian image is here, else on the host (root)."""
    helper = bootstrap_image(client)
    mirror = mirror or find_mirror()
    if helper is not None:
        build_base_in_container(client, helper, suite, tag, out, mirror)
        return
    if shutil.which("debootstrap") is None:
        raise SkiffError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise SkiffError(
            f"making the {suite} rootfs needs root (debootstrap on the host) while no Debian image is here: "
            "run 'skiff stack:build' as root once, e.g. 'make stack'"
        )
    build_base_on_host(client, suite, tag, out, mirror)


def _show_debootstrap(line: str, out: Output, tail: list[str]) -> None:
    tail.append(line)
    del tail[:-8]
    if line.startswith(MILESTONES):
        out.info(line)


def build_base_in_container(client, helper: str, suite: str, tag: str, out: Output, mirror: str) -> None:
    """debootstrap SUITE in an unprivileged container of ``helper``; stream its /rootfs into ``docker import``."""
    out.step(f"Bootstrapping Debian {suite} from {mirror} in a container of {helper} (a minute or two)")
    t0 = time.monotonic()
    container = client.containers.create(
        helper,
        ["sh", "-c", BOOTSTRAP_SCRIPT, "sh", *debootstrap_args(suite, "/rootfs", mirror)],
        user="0:0",
        working_dir="/",
        labels={BOOTSTRAP_LABEL: suite},
        detach=True,
    )
    try:
        container.start()
        tail: list[str] = []
        pending = ""
        for chunk in container.logs(stream=True, follow=True):
            pending += chunk.decode("utf-8", "replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                _show_debootstrap(line.rstrip(), out, tail)
        if pending:
            _show_debootstrap(pending.rstrip(), out, tail)
        code = container.wait().get("StatusCode", 1)
        if code != 0:
            out.lines(tail)
            raise SkiffError(f"debootstrap of {suite} failed (exit {code})")
        out.info(f"rootfs ready in {time.monotonic() - t0:.1f}s")
        out.step(f"Importing the rootfs as {tag}")
        t1 = time.monotonic()
        stream, _ = client.api.get_archive(container.id, "/rootfs/.")
        repo, _, tag_name = tag.rpartition(":")
        client.api.import_image_from_stream(stream, repository=repo, tag=tag_name)
        out.info(f"imported in {time.monotonic() - t1:.1f}s")
    finally:
        try:
            container.remove(force=True)
        except Exception:
            pass


def build_base_on_host(client, suite: str, tag: str, out: Output, mirror: str) -> None:
    """debootstrap SUITE into a temp dir on the host (root) and import it as ``tag``."""
    out.step(f"Bootstrapping Debian {suite} from {mirror} (about a minute)")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"skiff-rootfs-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.Popen(
            ["debootstrap", *debootstrap_args(suite, str(rootfs), mirror)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            _show_debootstrap(line.rstrip(), out, tail)
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
                        out.info(line if len(line) <= STEP_WIDTH else line[: STEP_WIDTH - 3] + "...")
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


def _label_and_tag(client, staging: str, tag: str, out: Output, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Probe ``staging``'s versions, tag it as ``tag`` with them as labels; drop the staging tag."""
    versions = probe_versions(client, staging)
    labels = {"skiff.stack.python": versions["python"], "skiff.stack.node": versions["node"], **(extra or {})}
    label_line = " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    _build_from_dockerfile(client, f"FROM {staging}\nLABEL {label_line}\n", tag, out)
    try:
        client.images.remove(staging, noprune=True)
    except Exception:
        pass
    return versions


def build_stack(
    client, suite: str, tag: str, out: Output, base: str | None = None, rebuild: bool = False
) -> dict[str, Any]:
    """Build the stack image ``tag`` for ``suite`` unless it exists with this recipe; return its labels.

    ``rebuild``: build it again even when it is current. The base rootfs
    (``skiff/stack-base:SUITE``) is reused when present.
    """
    validate_suite(suite)
    labels = labels_of(client, tag)
    if labels is not None and not rebuild:
        if is_current(labels):
            out.step(f"Stack image {tag} already exists; nothing to do")
            return labels
        out.step(f"Rebuilding the stack image {tag}: {stale_reason(labels)}")
    t0 = time.monotonic()
    base = base or f"skiff/stack-base:{suite}"
    if image_exists(client, base):
        out.step(f"Using the base image {base}")
    else:
        build_base(client, suite, base, out)
    out.step(f"Building {tag} (Node.js, npm, build tools, the app user)")
    staging = f"skiff/stack-staging:{suite}-{os.getpid()}"
    _build_from_dockerfile(client, dockerfile(suite, base), staging, out)
    versions = _label_and_tag(client, staging, tag, out)
    out.step(
        f"Stack image {tag} ready in {time.monotonic() - t0:.1f}s "
        f"(Python {versions['python']}, Node.js {versions['node'] or 'none'})"
    )
    return labels_of(client, tag) or {}


# Fixed text: the suite and the mirrors arrive as "$@".
UPDATE_SCRIPT = """\
set -e
export DEBIAN_FRONTEND=noninteractive
if [ "$1" = stable ]; then
  echo "deb $3 $2-security main" > /etc/apt/sources.list.d/skiff-security.list
  echo "deb $4 $2-updates main" >> /etc/apt/sources.list.d/skiff-security.list
fi
apt-get update -qq
apt-get upgrade -y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold > /tmp/skiff-upgrade.log
grep -E '^(Unpacking |[0-9]+ upgraded)' /tmp/skiff-upgrade.log || true
rm -f /tmp/skiff-upgrade.log
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


def update_dockerfile(suite: str, tag: str, mirror: str, security_mirror: str) -> str:
    """A Dockerfile that applies Debian's current (security) updates on top of the stack ``tag``."""
    kind = "stable" if suite_recipe(suite).stable else "rolling"
    argv = ["sh", "-c", UPDATE_SCRIPT, "sh", kind, suite, security_mirror, mirror]
    return f"FROM {tag}\nRUN {json.dumps(argv)}\n"


def update_stack(client, suite: str, tag: str, out: Output) -> dict[str, Any]:
    """Apply Debian's current updates to the stack ``tag`` (a stale stack is rebuilt first)."""
    validate_suite(suite)
    labels = labels_of(client, tag)
    if labels is None:
        raise SkiffError(f"there is no stack image {tag}: build it with 'skiff stack:build {suite}'")
    t0 = time.monotonic()
    if not is_current(labels):
        build_stack(client, suite, tag, out)
    out.step(f"Updating {tag} with Debian's current packages and security updates")
    staging = f"skiff/stack-staging:{suite}-{os.getpid()}"
    _build_from_dockerfile(
        client, update_dockerfile(suite, tag, find_mirror(), find_mirror(security=True)), staging, out
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    versions = _label_and_tag(client, staging, tag, out, {UPDATED_LABEL: stamp})
    out.step(
        f"Stack image {tag} updated in {time.monotonic() - t0:.1f}s "
        f"(Python {versions['python']}, Node.js {versions['node'] or 'none'})"
    )
    return labels_of(client, tag) or {}
