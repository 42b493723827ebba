"""The run image of a stack: its interpreters and runtime libraries, without the build tools.

``skiff/stack:SUITE`` is the *build* image (compilers, headers, Node.js, npm,
git); ``skiff/stack-run:SUITE`` is its *run* image, as Heroku's
``heroku-24-build`` / ``heroku-24``. It is derived from the build image itself,
so its Python and Node.js are the very same files at the same paths (a venv or a
node_modules made in the build image runs on it unchanged):

1. a container of the build image (root inside, unprivileged, no host path but
   the host's CA bundle, read-only, for step 2) marks the build image's own
   packages as automatically installed, keeps :data:`RUN_PACKAGES` and lets apt
   remove everything else it installed (gcc, headers, git, npm's Debian tree);
2. npm, which Debian's package ties to node-gyp and the compilers, is replaced
   by the same npm release from the npm registry (self-contained, verified by
   npm against the registry's integrity) under ``/usr/local/lib/node_modules``;
   without the registry the run image has no npm, and Node.js apps keep running
   on the build image;
3. the container's file system is exported and imported as one layer (removing
   files in a layer on top would not make the image smaller), with the build
   image's environment and labels saying what it is.

Nothing runs on the host as root. Every run image carries :data:`RUN_VERSION`
(label ``skiff.stack.run``) and the id of the build image it was made from
(``skiff.stack.run-of``): a run image of another recipe or of an older build
image is made again (:func:`is_current`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from skiff.errors import SkiffError
from skiff.output import Output

from . import build

# The run image's recipe version: bump it whenever what a run image holds changes.
RUN_VERSION = "1"
RUN_LABEL = "skiff.stack.run"  # the run recipe version
RUN_OF_LABEL = "skiff.stack.run-of"  # the build image id it was derived from
NPM_LABEL = "skiff.stack.npm"
DERIVE_LABEL = "skiff.stack-derive"  # on the container that derives a run image: the suite
RUN_REPOSITORY = "skiff/stack-run"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: What apps need at run time; the packages a suite does not have are skipped.
RUN_PACKAGES = (
    "python3",
    "python3-venv",
    "ca-certificates",
    "tzdata",
    "procps",
    "nodejs",
    "libpq5",
    "libssl3t64",
    "libssl3",
    "libffi8",
    "libsqlite3-0",
)
#: Commands a run image must not have.
COMPILERS = ("cc", "gcc", "g++", "c++", "make", "ld")

# Fixed text: the package names arrive as "$@" (KEEP... -- DROP...), never in the script.
DERIVE_SCRIPT = """\
set -e
export DEBIAN_FRONTEND=noninteractive
keep=""; drop=""; side=keep
for p in "$@"; do
  if [ "$p" = "--" ]; then side=drop; continue; fi
  if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q ' installed$'; then
    if [ "$side" = keep ]; then keep="$keep $p"; else drop="$drop $p"; fi
  fi
done
npm_version=""
if command -v npm >/dev/null 2>&1; then
  npm_version=$(npm --version)
  echo "I: Fetching npm $npm_version from the npm registry (Debian's npm needs the compilers)"
  if ! (cd /tmp && npm pack --silent --cache /tmp/npm-cache "npm@$npm_version" >/dev/null 2>/tmp/npm-pack.log); then
    echo "W: no npm $npm_version from the registry: the run image has none ($(tail -n 1 /tmp/npm-pack.log))"
    npm_version=""
  fi
fi
echo "I: Removing the build tools:$drop"
apt-mark auto $drop >/dev/null
apt-mark manual $keep >/dev/null
if ! apt-get autoremove -y -q --purge -o Dpkg::Use-Pty=0 \\
     -o APT::AutoRemove::RecommendsImportant=false -o APT::AutoRemove::SuggestsImportant=false \\
     > /tmp/purge.log 2>&1; then
  tail -n 20 /tmp/purge.log
  exit 1
fi
echo "I: $(grep -c '^Removing ' /tmp/purge.log) packages removed"
if [ -n "$npm_version" ]; then
  mkdir -p /usr/local/lib/node_modules/npm
  tar -xzf "/tmp/npm-$npm_version.tgz" -C /usr/local/lib/node_modules/npm --strip-components=1 --no-same-owner
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
fi
rm -rf /tmp/* /root/.npm /var/cache/apt/* /var/lib/apt/lists/* \\
  /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale
for tool in COMPILERS; do
  if command -v "$tool" >/dev/null 2>&1; then echo "E: $tool is still in the run image"; exit 1; fi
done
echo "I: run image ready"
""".replace("COMPILERS", " ".join(COMPILERS))


def run_tag(build_tag: str) -> str | None:
    """``skiff/stack-run:trixie`` for ``skiff/stack:trixie``; ``None`` for images the stack plugin does not make."""
    repo, _, suite = build_tag.rpartition(":")
    if repo != "skiff/stack" or not build.SUITE_RE.fullmatch(suite):
        return None
    return f"{RUN_REPOSITORY}:{suite}"


def derive_args(suite: str) -> list[str]:
    """The script's arguments: the run packages to keep, ``--``, the build image's own packages to drop."""
    recipe = build.suite_recipe(suite)
    keep = list(RUN_PACKAGES) + ([recipe.python_package] if recipe.python_package else [])
    drop = [p for p in recipe.packages() if p not in keep]
    return [*keep, "--", *drop]


def is_current(labels: dict[str, str] | None, build_id: str) -> bool:
    """True if a run image with these labels is of this recipe and of the build image ``build_id``."""
    return labels is not None and labels.get(RUN_LABEL) == RUN_VERSION and labels.get(RUN_OF_LABEL) == build_id


def _image_env(attrs: dict[str, Any]) -> list[str]:
    return list((attrs.get("Config") or {}).get("Env") or [])


def changes(attrs: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The Dockerfile instructions ``docker import`` applies: the build image's env and workdir, the labels."""
    out = []
    for item in _image_env(attrs):
        key, _, value = item.partition("=")
        out.append(f"ENV {key}={json.dumps(value)}")
    workdir = (attrs.get("Config") or {}).get("WorkingDir") or "/app"
    out.append(f"WORKDIR {workdir}")
    out.append("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())))
    return out


def probe_npm(client, image: str) -> str:
    """The npm version in ``image`` ('' without npm)."""
    raw = client.containers.run(
        image, ["sh", "-c", "command -v npm >/dev/null && npm --version || true"], remove=True, network_disabled=True
    )
    return raw.decode().strip()


def build_run(client, build_tag: str, out: Output) -> dict[str, str]:
    """Derive the run image of the build image ``build_tag``; return its labels."""
    tag = run_tag(build_tag)
    if tag is None:
        raise SkiffError(f"{build_tag} is not a skiff/stack:SUITE image: Skiff makes run images only of its own stacks")
    suite = tag.rpartition(":")[2]
    image = client.images.get(build_tag)
    labels = dict(image.labels or {})
    out.step(f"Deriving the run image {tag} from {build_tag} (no compilers, headers or git)")
    t0 = time.monotonic()
    from docker.types import Mount

    mounts = [Mount("/build/ca-certificates.crt", CA_BUNDLE, type="bind", read_only=True)]
    env = {"NODE_EXTRA_CA_CERTS": "/build/ca-certificates.crt"} if os.path.isfile(CA_BUNDLE) else {}
    container = client.containers.create(
        image.id,
        ["sh", "-c", DERIVE_SCRIPT, "sh", *derive_args(suite)],
        user="0:0",
        working_dir="/",
        labels={DERIVE_LABEL: suite},
        environment=env,
        mounts=mounts if env else [],
        detach=True,
    )
    try:
        container.start()
        tail: list[str] = []
        for line in _lines(container.logs(stream=True, follow=True)):
            tail.append(line)
            del tail[:-20]
            if line.startswith(("I:", "W:", "E:")):
                out.info(line)
        code = container.wait().get("StatusCode", 1)
        if code != 0:
            out.lines(tail)
            raise SkiffError(f"deriving the run image {tag} failed (exit {code})")
        out.info(f"packages removed in {time.monotonic() - t0:.1f}s")
        t1 = time.monotonic()
        run_labels = {
            **{k: v for k, v in labels.items() if k.startswith("skiff.stack") and k != build.UPDATED_LABEL},
            RUN_LABEL: RUN_VERSION,
            RUN_OF_LABEL: image.id,
        }
        if labels.get(build.UPDATED_LABEL):
            run_labels[build.UPDATED_LABEL] = labels[build.UPDATED_LABEL]
        staging = f"skiff/stack-staging:run-{suite}-{os.getpid()}"
        repo, _, tag_name = staging.rpartition(":")
        client.api.import_image_from_stream(
            container.export(), repository=repo, tag=tag_name, changes=changes(image.attrs, run_labels)
        )
        out.info(f"flattened into one layer in {time.monotonic() - t1:.1f}s")
    finally:
        try:
            container.remove(force=True)
        except Exception:
            pass
    return _check_and_tag(client, staging, tag, labels, out, t0)


def _check_and_tag(
    client, staging: str, tag: str, build_labels: dict[str, str], out: Output, t0: float
) -> dict[str, str]:
    """The run image must run the build image's very interpreters; then it gets its tag."""
    try:
        versions = build.probe_versions(client, staging)
        expected = {
            "python": build_labels.get("skiff.stack.python", ""),
            "node": build_labels.get("skiff.stack.node", ""),
        }
        if versions != expected:
            raise SkiffError(f"the run image {tag} runs {versions}, its build image {expected}: not made")
        npm = probe_npm(client, staging)
        label = f"LABEL {NPM_LABEL}={json.dumps(npm)}"
        build._build_from_dockerfile(client, f"FROM {staging}\n{label}\n", tag, out)
    finally:
        try:
            client.images.remove(staging, noprune=True)
        except Exception:
            pass
    size = client.images.get(tag).attrs.get("Size", 0)
    out.step(
        f"Run image {tag} ready in {time.monotonic() - t0:.1f}s ({size / 1e6:.0f} MB; Python {versions['python']}, "
        f"Node.js {versions['node'] or 'none'}, npm {npm or 'none'})"
    )
    return dict(client.images.get(tag).labels or {})


def _lines(stream) -> Any:
    pending = ""
    for chunk in stream:
        pending += chunk.decode("utf-8", "replace")
        *lines, pending = pending.split("\n")
        yield from (line.rstrip() for line in lines)
    if pending:
        yield pending.rstrip()
