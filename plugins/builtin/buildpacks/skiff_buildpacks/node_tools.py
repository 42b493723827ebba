"""Node.js package managers: which one an app uses, which version, and its release from the registry.

The manager comes from the lock file (``package-lock.json`` / ``npm-shrinkwrap.json``: npm,
``yarn.lock``: yarn, ``pnpm-lock.yaml``: pnpm), else from package.json's ``packageManager``
field, else npm. Its version, in this order: ``packageManager`` (``pnpm@9.15.0``, an exact
release, with corepack's optional ``+sha512.<hex>``), ``engines.<manager>`` (a semver
range), the lock file's format (``yarn.lock`` v1 means yarn 1, a yarn.lock with
``__metadata`` yarn 2+, pnpm's ``lockfileVersion`` its major), and for npm the stack's own.

Releases come from the npm registry as its packages ``npm``, ``yarn``,
``@yarnpkg/cli-dist`` (yarn 2 and later, one bundled file) and ``pnpm``: downloaded by
Skiff on the host, checked against the registry's checksum, and only then promoted into
the server's cache (``SKIFF_ROOT/cache/buildpacks/node/tools/<package>/<version>.tar``,
the same rule as the Node.js releases in :mod:`skiff_buildpacks.node_dist`), as a tar
that lands at ``/app/.heroku/<manager>`` with the package's ``bin`` entries linked in
``/app/.heroku/bin``. Corepack is not used: it would download inside the build, into no
shared cache, and Node.js 25 no longer ships it.
"""

from __future__ import annotations

import base64
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import SkiffError

from .node_dist import PackageCache, RegistryUnreachable, provide
from .semver import InvalidRange, Range

BIN = "app/.heroku/bin"
BIN_HOME = "/" + BIN
NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")
LOCKS = {"yarn.lock": "yarn", "pnpm-lock.yaml": "pnpm"}
UNSUPPORTED_LOCKS = {"bun.lockb": "bun", "bun.lock": "bun"}
PACKAGE_MANAGER = re.compile(
    r"(?P<name>npm|yarn|pnpm)@(?P<version>(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3}))"
    r"(?:\+(?P<algo>sha1|sha224|sha256|sha384|sha512)\.(?P<hash>[0-9a-f]{40,128}))?"
)
BIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SAFE_PATH = re.compile(r"[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+-]+)*")
YARN_PATH = re.compile(r"""yarnPath:\s*(?P<q>["']?)(?P<path>[^"'#\s]+)(?P=q)\s*(?:#.*)?""")
PNPM_LOCK_VERSION = re.compile(r"""lockfileVersion:\s*(?P<q>["']?)(?P<v>[0-9]+(?:\.[0-9]+)?)(?P=q)\s*""")
YARN_META_VERSION = re.compile(r"\s+version:\s*(?P<v>[0-9]+)\s*")
#: pnpm's lockfileVersion -> the pnpm releases that write it
PNPM_LOCK_MAJORS = {"9.0": "9.x || 10.x", "6.0": "8.x", "6.1": "8.x", "5.4": "7.x", "5.3": "6.x"}
MAX_TOOL = 128 * 1024 * 1024  # unpacked bytes of one package manager release
SHOWN = 80


@dataclass(frozen=True)
class Tool:
    """A package manager release line in the registry."""

    name: str  # npm, yarn, pnpm: the command
    package: str  # the registry package carrying it

    @property
    def home(self) -> str:
        """Where it lands in the build container and the image."""
        return f"app/.heroku/{self.name}"


NPM = Tool("npm", "npm")
YARN_CLASSIC = Tool("yarn", "yarn")
YARN_BERRY = Tool("yarn", "@yarnpkg/cli-dist")
PNPM = Tool("pnpm", "pnpm")


@dataclass
class Choice:
    """The package manager of one build and why."""

    name: str  # npm, yarn, pnpm
    lock: str | None  # the lock file, if any
    tool: Tool | None = None  # the release line to install (None: the stack's npm)
    requested: Range | None = None
    what: str = ""  # why: "packageManager", "engines.npm", "yarn.lock v1"
    text: str = ""  # the request as written ("pnpm@9.15.0", "10.x")
    pin: tuple[str, str] | None = None  # packageManager's (algo, hex digest)
    berry: bool = False
    yarn_path: str | None = None  # .yarnrc.yml's yarnPath: the app's own yarn release


class ToolCache(PackageCache):
    """The server's cache of one package manager's releases, fed from the npm registry."""

    accept = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"

    def __init__(self, root: Path, registry: str, tool: Tool, verify: str | bool = True):
        safe = tool.package.replace("@", "").replace("/", "-")
        super().__init__(root / "tools" / safe, registry, tool.package, verify)
        self.tool = tool
        self.label = tool.name

    def repack(self, tgz, out, what: str) -> None:
        repack_tool(tgz, out, what, self.tool)


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _bins(package_json: Any, name: str) -> dict[str, str]:
    """The ``bin`` entries of a package's package.json: ``{command: relative path}``."""
    if not isinstance(package_json, dict):
        return {}
    value = package_json.get("bin")
    if isinstance(value, str):
        value = {name: value}
    if not isinstance(value, dict):
        return {}
    found = {}
    for command, target in value.items():
        if not isinstance(command, str) or not isinstance(target, str) or not BIN_NAME.fullmatch(command):
            continue
        target = target[2:] if target.startswith("./") else target
        if SAFE_PATH.fullmatch(target) and ".." not in target.split("/"):
            found[command] = target
    return found


def repack_tool(tgz, out, what: str, tool: Tool) -> None:
    """``package/...`` of a registry tarball as ``app/.heroku/<tool>/...``, its bins linked in ``app/.heroku/bin``.

    Regular files and directories only, with safe names, owned by root, read-only but for
    the executable bits (bin targets are made executable). Raises when the package has
    no ``bin`` entry for the tool's command.
    """
    with tarfile.open(fileobj=tgz, mode="r:gz") as src:
        manifest = None
        for member in src:
            if member.name == "package/package.json" and member.isfile() and member.size < 4 * 1024 * 1024:
                fileobj = src.extractfile(member)
                assert fileobj is not None
                try:
                    manifest = json.loads(fileobj.read())
                except ValueError:
                    manifest = None
                break
    bins = _bins(manifest, tool.name)
    if tool.name not in bins:
        raise SkiffError(f"{what} has no {tool.name} command in its package.json; nothing was cached")
    tgz.seek(0)
    total = 0
    dirs: set[str] = set()
    kept: set[str] = set()
    with tarfile.open(fileobj=tgz, mode="r:gz") as src, tarfile.open(fileobj=out, mode="w") as dst:
        for name in ("app/.heroku", BIN, tool.home):
            _dir(dst, dirs, name)
        for member in src:
            parts = member.name.split("/")
            if len(parts) < 2 or parts[0] != "package" or any(p in ("", ".", "..") for p in parts[1:]):
                continue
            rel = "/".join(parts[1:])
            if not member.isfile() or not SAFE_PATH.fullmatch(rel):
                continue
            total += member.size
            if total > MAX_TOOL:
                raise SkiffError(f"{what} unpacks to more than {MAX_TOOL >> 20} MiB; nothing was cached")
            for i in range(1, len(parts) - 1):
                _dir(dst, dirs, f"{tool.home}/{'/'.join(parts[1 : i + 1])}")
            info = tarfile.TarInfo(f"{tool.home}/{rel}")
            info.size, info.mtime = member.size, member.mtime
            info.mode = 0o755 if member.mode & 0o111 or rel in bins.values() else 0o644
            fileobj = src.extractfile(member)
            assert fileobj is not None
            dst.addfile(info, fileobj)
            kept.add(rel)
        for command, target in sorted(bins.items()):
            if target not in kept:
                continue
            link = tarfile.TarInfo(f"{BIN}/{command}")
            link.type, link.linkname = tarfile.SYMTYPE, f"../{tool.name}/{target}"
            dst.addfile(link)
    if bins[tool.name] not in kept:
        raise SkiffError(f"{what} lacks its {tool.name} command ({bins[tool.name]}); nothing was cached")


def _dir(dst: tarfile.TarFile, dirs: set[str], name: str) -> None:
    if name not in dirs:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(info)
        dirs.add(name)


# -- which manager, which version --------------------------------------------------------


def _lock_files(build) -> list[str]:
    return [f for f in (*NPM_LOCKS, *LOCKS, *UNSUPPORTED_LOCKS) if build.has(f)]


def _package_manager_field(pkg: dict[str, Any]) -> re.Match[str] | None:
    value = pkg.get("packageManager")
    if value is None:
        return None
    match = PACKAGE_MANAGER.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise SkiffError(
            f'package.json packageManager "{_shown(str(value))}" is not NAME@X.Y.Z[+sha512.HEX] '
            "with NAME npm, yarn or pnpm"
        )
    return match


def _yarn_lock(build) -> tuple[bool, int | None]:
    """(berry?, __metadata version) of yarn.lock."""
    lines = build.read("yarn.lock").splitlines()
    for i, line in enumerate(lines):
        if line.rstrip() == "__metadata:":
            for following in lines[i + 1 : i + 6]:
                match = YARN_META_VERSION.fullmatch(following)
                if match:
                    return True, int(match.group("v"))
            return True, None
    return False, None


def _yarn_path(build) -> str | None:
    """``.yarnrc.yml``'s ``yarnPath`` (the app's committed yarn release), checked to stay in the app."""
    if not build.has(".yarnrc.yml"):
        return None
    for line in build.read(".yarnrc.yml").splitlines():
        if line.startswith("yarnPath:"):
            match = YARN_PATH.fullmatch(line.strip())
            path = match.group("path") if match else ""
            path = path[2:] if path.startswith("./") else path
            if not SAFE_PATH.fullmatch(path) or ".." in path.split("/") or not build.has(path):
                raise SkiffError(f'.yarnrc.yml yarnPath "{_shown(line[9:].strip())}" is not a file of the app')
            return path
    return None


def _pnpm_range(build) -> tuple[Range, str, str]:
    for line in build.read("pnpm-lock.yaml").splitlines():
        match = PNPM_LOCK_VERSION.fullmatch(line.strip())
        if match and not line.startswith((" ", "\t")):
            version = match.group("v")
            if version not in PNPM_LOCK_MAJORS:
                raise SkiffError(
                    f"pnpm-lock.yaml lockfileVersion {version} is not one Skiff knows "
                    f"({', '.join(PNPM_LOCK_MAJORS)}): name the pnpm release in package.json packageManager"
                )
            return Range.parse(PNPM_LOCK_MAJORS[version]), "pnpm-lock.yaml lockfileVersion", version
    raise SkiffError("pnpm-lock.yaml has no lockfileVersion line: is it a pnpm lock file?")


def _engines_range(pkg: dict[str, Any], name: str) -> tuple[Range, str] | None:
    engines = pkg.get("engines")
    value = engines.get(name) if isinstance(engines, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return Range.parse(value.strip()), value.strip()
    except InvalidRange:
        raise SkiffError(
            f'engines.{name} "{_shown(value)}" is not a version range npm understands (like 10.x, ^9, >=8 <10)'
        ) from None


def choose(build, pkg: dict[str, Any]) -> Choice:
    """The app's package manager and the release to install (no registry access)."""
    locks = _lock_files(build)
    if len(locks) > 1:
        raise SkiffError(f"more than one Node.js package manager file: {', '.join(locks)}; keep only one")
    lock = locks[0] if locks else None
    if lock in UNSUPPORTED_LOCKS:
        raise SkiffError(f"{lock} found: bun is not supported; commit a package-lock.json, yarn.lock or pnpm-lock.yaml")
    field = _package_manager_field(pkg)
    name = LOCKS.get(lock or "", "npm") if lock else (field.group("name") if field else "npm")
    if field and field.group("name") != name:
        raise SkiffError(
            f"package.json packageManager is {field.group('name')}@{field.group('version')} but the lock file "
            f"is {lock}: keep the one the app uses"
        )
    choice = Choice(name=name, lock=lock)
    meta_version: int | None = None
    if name == "yarn":
        choice.berry, meta_version = _yarn_lock(build) if lock else (False, None)
        choice.yarn_path = _yarn_path(build)
        if choice.yarn_path:
            choice.berry = True
            choice.what, choice.text = ".yarnrc.yml yarnPath", choice.yarn_path
            return choice
    if field:
        version = field.group("version")
        choice.requested, choice.what, choice.text = Range.parse(version), "packageManager", field.group(0)
        if field.group("algo"):
            choice.pin = (field.group("algo"), field.group("hash"))
        if name == "yarn":
            choice.berry = not version.startswith("1.")
    elif engines := _engines_range(pkg, name):
        choice.requested, choice.text = engines
        choice.what = f"engines.{name}"
    elif name == "yarn" and choice.berry:
        major = "4.x" if (meta_version or 0) >= 8 else "3.x" if (meta_version or 0) >= 6 else "2.x"
        choice.requested, choice.what = Range.parse(major), "yarn.lock __metadata version"
        choice.text = str(meta_version) if meta_version is not None else "unknown"
    elif name == "yarn":
        choice.requested, choice.what, choice.text = Range.parse("1.x"), "yarn.lock", "v1"
    elif name == "pnpm":
        choice.requested, choice.what, choice.text = _pnpm_range(build)
    else:
        return choice  # npm without a request: the stack's own
    choice.tool = {"npm": NPM, "pnpm": PNPM}.get(name) or (YARN_BERRY if choice.berry else YARN_CLASSIC)
    return choice


def _check_pin(choice: Choice, cache: ToolCache, version: str) -> str | None:
    """Check packageManager's ``+sha512.<hex>`` against the registry's checksum; a note when it cannot be."""
    if choice.pin is None:
        return None
    algo, digest = choice.pin
    if choice.tool is YARN_BERRY:
        return f"the packageManager {algo} hash is corepack's of yarn.js from repo.yarnpkg.com: not checked here"
    try:
        entry = cache.releases().get(version) or {}
    except RegistryUnreachable:
        return f"the packageManager {algo} hash was checked when {cache.package}@{version} was cached"
    known = None
    if algo == "sha512" and entry.get("integrity", "").startswith("sha512-"):
        known = base64.b64decode(entry["integrity"][7:].split("?")[0]).hex()
    elif algo == "sha1" and entry.get("shasum"):
        known = entry["shasum"].lower()
    if known is None:
        return f"the packageManager {algo} hash is not checked (the registry gives sha512); its checksum is"
    if known != digest:
        raise SkiffError(
            f"package.json packageManager {choice.name}@{version}+{algo} does not match the registry's "
            f"checksum of {cache.package}@{version}"
        )
    return None


def provide_tool(build, choice: Choice, node: str, cache_root: Path, registry: str, verify: str | bool) -> dict:
    """Resolve, check and cache the chosen release; return the lines and what the dependencies get."""
    if choice.tool is None or choice.requested is None:
        return {"notes": [], "archives": []}
    cache = ToolCache(cache_root, registry, choice.tool, verify)
    version, archive, lines = provide(cache, choice.requested, choice.what, choice.text, node=node or None)
    note = _check_pin(choice, cache, version)
    return {
        "notes": [*lines, *([note] if note else [])],
        "archives": [{"path": str(archive), "key": f"{cache.package}@{version}"}],
        "version": version,
    }


def install_step(choice: Choice) -> dict[str, Any]:
    """The dependency install of the chosen manager (argument lists, no shell)."""
    quiet = {"npm_config_update_notifier": "false"}
    if choice.name == "npm":
        flags = ["--no-audit", "--no-fund", "--loglevel=warn"]
        install = ["npm", "ci", *flags] if choice.lock else ["npm", "install", *flags]
        return {"run": install, "env": {"npm_config_cache": "/build/cache/npm", **quiet}}
    if choice.name == "pnpm":
        run = ["pnpm", "install", *(["--frozen-lockfile"] if choice.lock else [])]
        store = "/build/cache/pnpm-store"
        return {"run": run, "env": {"npm_config_store_dir": store, "pnpm_config_store_dir": store, **quiet}}
    yarn = ["node", f"/app/{choice.yarn_path}"] if choice.yarn_path else ["yarn"]
    if choice.berry:
        run = [*yarn, "install", *(["--immutable"] if choice.lock else [])]
        env = {
            "YARN_GLOBAL_FOLDER": "/build/cache/yarn-berry",
            "YARN_ENABLE_GLOBAL_CACHE": "true",
            "YARN_ENABLE_TELEMETRY": "false",
        }
        return {"run": run, "env": env}
    run = [*yarn, "install", "--non-interactive", *(["--frozen-lockfile"] if choice.lock else [])]
    return {"run": run, "env": {"YARN_CACHE_FOLDER": "/build/cache/yarn", "SKIP_YARN_COREPACK_CHECK": "1"}}


def dependency_files(build, choice: Choice) -> list[str]:
    """The files the install reads, in the dependency layer (and its key)."""
    files = ["package.json", *([choice.lock] if choice.lock else [])]
    extra = {"yarn": [".yarnrc", ".yarnrc.yml"], "pnpm": [".npmrc", "pnpm-workspace.yaml"]}.get(choice.name, [])
    files += [f for f in extra if build.has(f)]
    if choice.yarn_path:
        files.append(choice.yarn_path)
    return files
