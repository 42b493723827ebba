"""The server's shared wheel cache and the uv tool cache (Python builds).

Both live under ``SKIFF_ROOT/cache/buildpacks/`` and only Skiff writes them, on
the host, after checking every byte against a hash:

- ``tools/uv-<version>-<arch>/uv``: the uv binary, from the pinned wheel
  (:data:`UV_WHEELS`) on the package index; its sha256 is pinned here, so an
  index cannot hand out another binary. Fetched once per server, bind-mounted
  read-only into dependency build containers (never copied into a layer).
- ``wheels/``: a flat directory of ``.whl`` files, bind-mounted read-only into
  the dependency build of every app that uses the server's index (uv's
  ``--find-links``). Builds never write it: after a build, the build reports the
  distributions it installed (name, version, wheel tags), and Skiff downloads
  the wheel file with exactly those tags **from the server's index itself** and
  keeps it only when its sha256 is the one the index lists. A wheel built from
  source has no such file on the index and stays in the app's own cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from skiff.errors import SkiffError

from .downloads import read_capped

DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_RE = re.compile(r"\Ahttps?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%-]+)*/?\Z")
UV_VERSION = "0.13.8"
# arch -> (wheel file on the index, its sha256): a static (musl) binary that runs on every stack
UV_WHEELS = {
    "x86_64": (
        "uv-0.13.8-py3-none-musllinux_1_1_x86_64.whl",
        "29451c60f5e8b07403e0a175d5229efc36b0289b34143ff4aaa499a5dd52553a",
    ),
    "aarch64": (
        "uv-0.13.8-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "0b3e8b1a4f5e405e31e2ff33de8af4744831e9f7338539671efbd8c3c94e791d",
    ),
}
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
TIMEOUT = (10, 60)
MAX_PAGE = 32 * 1024 * 1024
MAX_WHEEL = 256 * 1024 * 1024
MAX_REPORTED = 1000  # distributions one build may ask to promote
PROMOTE_BUDGET = 120.0  # seconds for one build's promotion
PROMOTE_BYTES = 2 * 1024 * 1024 * 1024  # bytes one build's promotion may download
NAME_RE = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?\Z")
VERSION_RE = re.compile(r"\A[A-Za-z0-9.+!_-]{1,64}\Z")
TAG_RE = re.compile(r"\A[A-Za-z0-9_.]{1,64}-[A-Za-z0-9_.]{1,64}-[A-Za-z0-9_.]{1,200}\Z")
WHEEL_RE = re.compile(
    r"\A(?P<name>[A-Za-z0-9._]+)-(?P<version>[A-Za-z0-9.+!_]+)(?:-(?P<build>[0-9][A-Za-z0-9_.]*))?"
    r"-(?P<py>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-(?P<plat>[A-Za-z0-9_.]+)\.whl\Z"
)
SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


class IndexUnreachable(Exception):
    """The index did not answer usably (the reason is safe to print)."""


def host_arch() -> str:
    machine = platform.machine().lower()
    if machine not in ARCHES:
        raise SkiffError(f"no uv binary for this machine ({machine})")
    return ARCHES[machine]


def normalize(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_wheel(filename: str) -> tuple[str, str, frozenset[str]] | None:
    """``(normalised name, version, expanded tags)`` of a wheel file name, or None."""
    match = WHEEL_RE.fullmatch(filename)
    if not match:
        return None
    tags = frozenset(
        f"{py}-{abi}-{plat}"
        for py in match["py"].split(".")
        for abi in match["abi"].split(".")
        for plat in match["plat"].split(".")
    )
    return normalize(match["name"]), match["version"], tags


def same_version(a: str, b: str) -> bool:
    return a.lower().replace("_", "-") == b.lower().replace("_", "-")


# -- the index ----------------------------------------------------------------


@dataclass
class IndexFile:
    filename: str
    url: str
    sha256: str


def _anchors(html: str) -> list[tuple[str, str]]:
    """The ``(href, text)`` of every ``<a>`` of a PEP 503 page (html.parser is imported only here)."""
    from html.parser import HTMLParser

    class Anchors(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[tuple[str, str]] = []
            self._href: str | None = None
            self._text: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self._href = dict(attrs).get("href") or ""
                self._text = []

        def handle_data(self, data: str) -> None:
            if self._href is not None:
                self._text.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self._href is not None:
                self.links.append((self._href, "".join(self._text).strip()))
                self._href = None

    parser = Anchors()
    parser.feed(html)
    return parser.links


def parse_project_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """The files of a simple-API project page (PEP 691 JSON or PEP 503 HTML) that carry a sha256."""
    files: list[IndexFile] = []
    if "json" in content_type:
        doc = json.loads(body)
        for item in doc.get("files", []) if isinstance(doc, dict) else []:
            if not isinstance(item, dict):
                continue
            sha = (item.get("hashes") or {}).get("sha256", "")
            name, url = item.get("filename"), item.get("url")
            if isinstance(name, str) and isinstance(url, str) and isinstance(sha, str) and SHA256_RE.fullmatch(sha):
                files.append(IndexFile(name, urljoin(page_url, url), sha))
        return files
    for href, text in _anchors(body.decode("utf-8", "replace")):
        url, _, fragment = href.partition("#")
        algo, _, sha = fragment.partition("=")
        name = text or url.rsplit("/", 1)[-1]
        if algo == "sha256" and SHA256_RE.fullmatch(sha):
            files.append(IndexFile(name, urljoin(page_url, url), sha))
    return files


class Index:
    """A package index's simple API, read by Skiff on the host (``requests``, the host's CA bundle)."""

    def __init__(self, url: str, verify: str | bool = True):
        if not INDEX_RE.fullmatch(url):
            raise SkiffError(f"the python-index setting is not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.verify = verify
        self._session: Any = None

    @property
    def http(self) -> Any:
        """One requests session (kept-alive connections to the index and its file host)."""
        if self._session is None:
            import requests
            import requests.adapters

            self._session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        return self._session

    def files(self, project: str) -> list[IndexFile]:
        import requests

        page = f"{self.url}/{normalize(project)}/"
        headers = {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
        try:
            with self.http.get(page, timeout=TIMEOUT, stream=True, headers=headers, verify=self.verify) as resp:
                if resp.status_code != 200:
                    raise IndexUnreachable(f"HTTP {resp.status_code} for {page}")
                body = read_capped(resp.iter_content(65536), MAX_PAGE)
                return parse_project_page(body, resp.headers.get("Content-Type", ""), resp.url or page)
        except requests.RequestException as exc:
            raise IndexUnreachable(f"{type(exc).__name__} reading {page}") from exc
        except ValueError as exc:
            raise IndexUnreachable(f"unreadable project page {page}") from exc

    def download(self, file: IndexFile, directory: Path) -> Path:
        """Download ``file`` into a temporary file in ``directory``; keep it only when its sha256 matches."""
        import requests

        if urlsplit(file.url).scheme not in ("http", "https"):
            raise IndexUnreachable(f"not an http(s) file URL: {file.filename}")
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".whl")
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                with self.http.get(file.url, timeout=TIMEOUT, stream=True, verify=self.verify) as resp:
                    if resp.status_code != 200:
                        raise IndexUnreachable(f"HTTP {resp.status_code} for {file.filename}")
                    for chunk in resp.iter_content(1024 * 1024):
                        size += len(chunk)
                        if size > MAX_WHEEL:
                            raise IndexUnreachable(f"{file.filename} is larger than {MAX_WHEEL >> 20} MiB")
                        digest.update(chunk)
                        out.write(chunk)
            if digest.hexdigest() != file.sha256:
                raise HashMismatch(f"{file.filename} does not match the index's sha256; not cached")
            return Path(tmp)
        except requests.RequestException as exc:
            Path(tmp).unlink(missing_ok=True)
            raise IndexUnreachable(f"{type(exc).__name__} downloading {file.filename}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class HashMismatch(Exception):
    """A download's sha256 is not the one the index lists."""


# -- the uv tool --------------------------------------------------------------


def uv_dir(cache_dir: Path, arch: str) -> Path:
    return cache_dir / "tools" / f"uv-{UV_VERSION}-{arch}"


def ensure_uv(cache_dir: Path, index: Index, arch: str) -> tuple[Path, bool]:
    """The directory holding the verified uv binary (fetched once per server); and whether it was fetched now."""
    target = uv_dir(cache_dir, arch)
    if (target / "uv").is_file():
        return target, False
    filename, sha256 = UV_WHEELS[arch]
    tools = target.parent
    tools.mkdir(parents=True, exist_ok=True)
    os.chmod(tools, 0o755)
    listed = {f.filename: f for f in index.files("uv")}
    if filename not in listed:
        raise IndexUnreachable(f"the index lists no {filename}")
    # the pinned hash decides, whatever the index lists
    wheel = index.download(IndexFile(filename, listed[filename].url, sha256), tools)
    staging = Path(tempfile.mkdtemp(dir=tools, prefix=".uv-"))
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(f"uv-{UV_VERSION}.data/scripts/uv")
        binary = staging / "uv"
        binary.write_bytes(data)
        os.chmod(binary, 0o755)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)
        except OSError:  # another build put it there first
            if not (target / "uv").is_file():
                raise
    finally:
        wheel.unlink(missing_ok=True)
        if staging.exists():
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
    return target, True


# -- the shared wheel cache ---------------------------------------------------


@dataclass
class Installed:
    """One distribution a build says it installed (untrusted: it only names what Skiff may fetch)."""

    name: str
    version: str
    tags: frozenset[str]


def parse_report(data: Any) -> list[Installed]:
    """The driver's ``installed`` report, validated; bad entries are dropped."""
    found: list[Installed] = []
    if not isinstance(data, list):
        return found
    for item in data[:MAX_REPORTED]:
        if not isinstance(item, dict):
            continue
        name, version, tags = item.get("name"), item.get("version"), item.get("tags")
        if not (isinstance(name, str) and NAME_RE.fullmatch(name)):
            continue
        if not (isinstance(version, str) and VERSION_RE.fullmatch(version)):
            continue
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and TAG_RE.fullmatch(t) for t in tags):
            continue
        found.append(Installed(normalize(name), version, frozenset(tags)))
    return found


@dataclass
class Promotion:
    """What one promotion did (for the build's output)."""

    added: list[str] = field(default_factory=list)
    present: int = 0
    not_on_index: list[str] = field(default_factory=list)  # built from source, or another index's
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)  # the cache's files of what was installed
    compiled: int = 0  # bytecode bundles made
    shared_layer: str = ""  # "made" or "present": the shared virtualenv layer of this set

    def summary(self) -> str:
        parts = [f"{len(self.added)} wheel(s) verified against the index and added"]
        if self.compiled:
            parts.append(f"bytecode of {self.compiled} compiled")
        if self.present:
            parts.append(f"{self.present} already there")
        if self.shared_layer:
            parts.append(f"shared layer {self.shared_layer}")
        if self.not_on_index:
            parts.append(f"{len(self.not_on_index)} kept in the app's own cache (not on the index)")
        return "Shared wheel cache: " + ", ".join(parts) + f" ({self.seconds:.1f}s)"


class WheelCache:
    """``SKIFF_ROOT/cache/buildpacks/wheels``: verified ``.whl`` files, shared by every app's build."""

    def __init__(self, cache_dir: Path):
        self.dir = cache_dir / "wheels"
        self._downloaded = 0

    def ensure(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # read by the build user through a read-only bind mount
        return self.dir

    def wheels(self) -> dict[tuple[str, str, frozenset[str]], str]:
        found: dict[tuple[str, str, frozenset[str]], str] = {}
        if not self.dir.is_dir():
            return found
        for path in self.dir.glob("*.whl"):
            parsed = parse_wheel(path.name)
            if parsed is not None:
                found[(parsed[0], parsed[1].lower(), parsed[2])] = path.name
        return found

    def stats(self) -> tuple[int, int]:
        files = list(self.dir.glob("*.whl")) if self.dir.is_dir() else []
        return len(files), sum(f.stat().st_size for f in files)

    def purge(self) -> int:
        removed = 0
        if not self.dir.is_dir():
            return 0
        for path in self.dir.iterdir():
            if path.is_dir() and not path.is_symlink():
                for child in path.iterdir():
                    child.unlink()
                path.rmdir()
            else:
                path.unlink()
                removed += 1
        return removed

    def promote(self, installed: list[Installed], index: Index, budget: float = PROMOTE_BUDGET) -> Promotion:
        """Fetch from ``index`` the wheel files ``installed`` names, verify them, add them."""
        started = time.monotonic()
        result = Promotion()
        have = self.wheels()
        todo = []
        for dist in installed:
            if (dist.name, dist.version.lower(), dist.tags) in have:
                result.present += 1
                result.files.append(have[(dist.name, dist.version.lower(), dist.tags)])
            else:
                todo.append(dist)
        if todo:
            self.ensure()
            deadline = started + budget
            self._downloaded = 0
            with ThreadPoolExecutor(max_workers=4) as pool:
                for dist, outcome in zip(todo, pool.map(lambda d: self._promote_one(d, index, deadline), todo)):
                    label = f"{dist.name}=={dist.version}"
                    if outcome.endswith(".whl"):
                        result.added.append(label)
                        result.files.append(outcome)
                    elif outcome == "absent":
                        result.not_on_index.append(label)
                    else:
                        result.errors.append(f"{label}: {outcome}")
        result.seconds = time.monotonic() - started
        return result

    def _promote_one(self, dist: Installed, index: Index, deadline: float) -> str:
        if time.monotonic() > deadline:
            return "out of time"
        try:
            files = index.files(dist.name)
        except IndexUnreachable as exc:
            return str(exc)
        match = None
        for file in files:
            parsed = parse_wheel(file.filename)
            if parsed and parsed[0] == dist.name and same_version(parsed[1], dist.version) and parsed[2] == dist.tags:
                match = file
                break
        if match is None:
            return "absent"
        if self._downloaded > PROMOTE_BYTES:
            return "over the download budget of one build"
        try:
            tmp = index.download(match, self.dir)
        except (IndexUnreachable, HashMismatch) as exc:
            return str(exc)
        self._downloaded += tmp.stat().st_size  # a few threads: the budget is approximate
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.dir / match.filename)
        return match.filename


# -- precompiled bytecode of the shared wheels --------------------------------

PYC_TAG_RE = re.compile(r"\Acpython-3[0-9]{1,2}\Z")
MAX_BUNDLE = 256 * 1024 * 1024
# Runs in a container of the stack Skiff starts itself: no network, no app config, no app
# cache, the verified wheels read-only. For each wheel, the .py files it installs into
# site-packages, compiled as checked-hash .pyc (valid whatever the files' mtimes).
COMPILE_SCRIPT = r"""
import importlib.util, io, os, sys, tarfile, zipfile
from importlib._bootstrap_external import _code_to_hash_pyc
tag = sys.implementation.cache_tag
site = "/app/.venv/lib/python%d.%d/site-packages/" % sys.version_info[:2]
os.makedirs("/tmp/out/" + tag)
for name in sys.argv[1:]:
    with zipfile.ZipFile("/w/" + name) as zf, tarfile.open("/tmp/out/%s/%s.tar" % (tag, name), "w") as out:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if not parts[-1].endswith(".py"):
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            elif parts[0].endswith(".dist-info"):
                continue
            if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
                continue
            source = zf.read(info)
            try:
                code = compile(source, site + "/".join(parts), "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue
            data = _code_to_hash_pyc(code, importlib.util.source_hash(source), True)
            entry = tarfile.TarInfo("/".join(parts[:-1] + ["__pycache__", parts[-1][:-3] + "." + tag + ".pyc"]))
            entry.size, entry.mode = len(data), 0o644
            out.addfile(entry, io.BytesIO(data))
"""


def pyc_tag(python_version: str) -> str:
    """The interpreter's cache tag (``cpython-313`` for 3.13.5)."""
    parts = python_version.split(".")
    tag = f"cpython-{parts[0]}{parts[1]}" if len(parts) >= 2 else ""
    if not PYC_TAG_RE.fullmatch(tag):
        raise SkiffError(f"no bytecode tag for Python {python_version!r}")
    return tag


def bundle_member_ok(name: str, tag: str) -> bool:
    """A bundle entry: ``[dir/...]__pycache__/NAME.<tag>.pyc``, nothing that climbs out."""
    parts = name.split("/")
    return (
        len(parts) >= 2
        and parts[-2] == "__pycache__"
        and parts[-1].endswith(f".{tag}.pyc")
        and all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", p) for p in parts)
    )


def _bundle_dir(cache: WheelCache, tag: str) -> Path:
    if not PYC_TAG_RE.fullmatch(tag):
        raise SkiffError(f"invalid bytecode tag {tag!r}")
    return cache.dir / f"pyc-{tag}"


def missing_bundles(cache: WheelCache, tag: str, filenames: Iterable[str]) -> list[str]:
    directory = _bundle_dir(cache, tag)
    return sorted({f for f in filenames if not (directory / f"{f}.tar").is_file() and (cache.dir / f).is_file()})


def compile_bundles(
    client: Any,
    image: str,
    user: str,
    cache: WheelCache,
    tag: str,
    filenames: list[str],
    labels: dict[str, str] | None = None,
) -> int:
    """Compile the bytecode of shared ``filenames`` in a container Skiff controls; keep the valid bundles.

    ``labels`` go on the container (the build's, so a leftover is removed by the app's next build).
    """
    import docker.types

    if not filenames:
        return 0
    container = client.containers.create(
        image,
        ["python3", "-c", COMPILE_SCRIPT, *filenames],
        user=user,
        network_disabled=True,
        mounts=[docker.types.Mount("/w", str(cache.dir), type="bind", read_only=True)],
        labels={"skiff.pyc": tag, **(labels or {})},
    )
    try:
        container.start()
        if container.wait().get("StatusCode", 1) != 0:
            raise SkiffError("compiling the shared wheels' bytecode failed")
        stream, _ = container.get_archive(f"/tmp/out/{tag}")
        with tempfile.TemporaryFile() as outer:
            size = 0
            for chunk in stream:
                size += len(chunk)
                if size > MAX_BUNDLE:
                    raise SkiffError("the bytecode of the shared wheels is too large")
                outer.write(chunk)
            outer.seek(0)
            return _keep_bundles(outer, cache, tag, set(filenames))
    finally:
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass


def _keep_bundles(outer: Any, cache: WheelCache, tag: str, wanted: set[str]) -> int:
    import io
    import tarfile

    directory = _bundle_dir(cache, tag)
    directory.mkdir(exist_ok=True)
    os.chmod(directory, 0o755)
    kept = 0
    with tarfile.open(fileobj=outer, mode="r:") as tf:
        for member in tf:
            name = member.name.split("/", 1)[-1]  # <tag>/<wheel>.tar
            if not member.isfile() or not name.endswith(".tar") or name[:-4] not in wanted:
                continue
            fileobj = tf.extractfile(member)
            assert fileobj is not None
            data = fileobj.read()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as bundle:
                if not all(m.isfile() and bundle_member_ok(m.name, tag) for m in bundle.getmembers()):
                    continue
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bundle-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, directory / name)
            kept += 1
    return kept
