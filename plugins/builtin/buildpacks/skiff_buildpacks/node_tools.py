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

Yarn 2+ (berry) installs with the app's ``nodeLinker`` (the ``YARN_NODE_LINKER`` config var,
else ``.yarnrc.yml``, else yarn's default ``pnp``). Plug'n'Play reads the packages from their
zip archives at run time, so with ``pnp`` the archives go to the app's own cache folder
(``/app/.yarn/cache``, in the dependency layer: ``enableGlobalCache`` off), fed from yarn's
mirror in the app's build cache volume (``/build/cache/yarn-berry/cache``: the next install
of the app copies from there instead of downloading), and the image runs Node.js with
``--require /app/.pnp.cjs``. ``node-modules`` and ``pnpm`` unpack the archives, so they keep
yarn's global cache in the build cache volume. A committed cache folder with archives in it
(zero-installs) is a dependency file of the layer and installs offline.
"""

from __future__ import annotations

import base64
import json
import re
import tarfile
from dataclasses import dataclass, field
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
YARNRC_SCALAR = re.compile(r"""(?P<key>[A-Za-z][A-Za-z0-9]*):\s*(?P<q>["']?)(?P<value>[^"'#\s]*)(?P=q)\s*(?:#.*)?""")
LINKERS = ("pnp", "node-modules", "pnpm")
YARN_CACHE = ".yarn/cache"
#: what a berry install writes into /app beside the linker's output: never taken from the app's tree
BERRY_GENERATED = [".pnp.cjs", ".pnp.loader.mjs", ".pnp.data.json", ".yarn/install-state.gz", ".yarn/unplugged"]
MAX_YARN_FILES = 20000  # committed cache archives, plugins and patches taken into the dependency layer
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
    linker: str = ""  # berry's nodeLinker: pnp, node-modules, pnpm
    linker_why: str = ""  # "yarn's default", ".yarnrc.yml", "YARN_NODE_LINKER"
    cache_folder: str = YARN_CACHE  # berry's cacheFolder, relative to /app
    zero_installs: list[str] = field(default_factory=list)  # the committed cache archives
    esm_loader: bool = False  # PnP's ESM loader too (package.json "type": "module" or pnpEnableEsmLoader)


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


def yarnrc(build) -> dict[str, str]:
    """The top-level scalar settings of ``.yarnrc.yml`` (``key: value`` lines; nested ones are left out)."""
    if not build.has(".yarnrc.yml"):
        return {}
    found: dict[str, str] = {}
    for line in build.read(".yarnrc.yml").splitlines():
        if not line[:1].isalpha() or ":" not in line:
            continue
        match = YARNRC_SCALAR.fullmatch(line.strip())
        key, _, rest = line.partition(":")
        # a value this reader does not parse is kept as written: the checks below refuse it by name
        found.setdefault(key.strip(), match.group("value") if match else rest.strip())
    return found


def _app_path(value: str) -> str | None:
    """A relative path that stays in the app (``./`` dropped), or None."""
    value = value[2:] if value.startswith("./") else value
    return value if SAFE_PATH.fullmatch(value) and ".." not in value.split("/") else None


def _yarn_path(build, rc: dict[str, str]) -> str | None:
    """``.yarnrc.yml``'s ``yarnPath`` (the app's committed yarn release), checked to stay in the app."""
    if "yarnPath" not in rc:
        return None
    path = _app_path(rc["yarnPath"])
    if path is None or not build.has(path):
        raise SkiffError(f'.yarnrc.yml yarnPath "{_shown(rc["yarnPath"])}" is not a file of the app')
    return path


def _files_under(build, folder: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """The regular files under ``folder`` of the source (no symlinks), sorted, ``suffixes`` only if given."""
    if not build.has(folder) or not (build.source / folder).is_dir():
        return []
    found = []
    for path in sorted((build.source / folder).rglob("*")):
        rel = path.relative_to(build.source).as_posix()
        if path.is_file() and not path.is_symlink() and build.has(rel) and (not suffixes or rel.endswith(suffixes)):
            if SAFE_PATH.fullmatch(rel):
                found.append(rel)
    if len(found) > MAX_YARN_FILES:
        raise SkiffError(f"{folder} holds more than {MAX_YARN_FILES} files: too many for the dependency layer")
    return found


def _berry(build, pkg: dict[str, Any], choice: Choice, rc: dict[str, str]) -> None:
    """Berry's linker, cache folder and zero-installs archives, from the config vars and ``.yarnrc.yml``."""
    configured = (build.config.get("YARN_NODE_LINKER") or "").strip()
    if configured:
        choice.linker, choice.linker_why = configured, "YARN_NODE_LINKER"
    elif rc.get("nodeLinker"):
        choice.linker, choice.linker_why = rc["nodeLinker"], ".yarnrc.yml"
    else:
        choice.linker, choice.linker_why = "pnp", "yarn's default"
    if choice.linker not in LINKERS:
        raise SkiffError(
            f'{choice.linker_why} nodeLinker "{_shown(choice.linker)}" is not one yarn knows ({", ".join(LINKERS)})'
        )
    if rc.get("cacheFolder"):
        folder = _app_path(rc["cacheFolder"])
        if folder is None:
            raise SkiffError(f'.yarnrc.yml cacheFolder "{_shown(rc["cacheFolder"])}" is not a folder of the app')
        choice.cache_folder = folder
    choice.zero_installs = _files_under(build, choice.cache_folder, (".zip",))
    choice.esm_loader = choice.linker == "pnp" and (
        pkg.get("type") == "module" or rc.get("pnpEnableEsmLoader", "").lower() == "true"
    )


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
    manager = _package_manager_field(pkg)
    name = LOCKS.get(lock or "", "npm") if lock else (manager.group("name") if manager else "npm")
    if manager and manager.group("name") != name:
        raise SkiffError(
            f"package.json packageManager is {manager.group('name')}@{manager.group('version')} but the lock file "
            f"is {lock}: keep the one the app uses"
        )
    choice = Choice(name=name, lock=lock)
    meta_version: int | None = None
    rc: dict[str, str] = {}
    if name == "yarn":
        rc = yarnrc(build)
        choice.berry, meta_version = _yarn_lock(build) if lock else (False, None)
        choice.yarn_path = _yarn_path(build, rc)
        if choice.yarn_path:
            choice.berry = True
            choice.what, choice.text = ".yarnrc.yml yarnPath", choice.yarn_path
            _berry(build, pkg, choice, rc)
            return choice
    if manager:
        version = manager.group("version")
        choice.requested, choice.what, choice.text = Range.parse(version), "packageManager", manager.group(0)
        if manager.group("algo"):
            choice.pin = (manager.group("algo"), manager.group("hash"))
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
    if choice.berry:
        _berry(build, pkg, choice, rc)
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
        return {"run": run, "env": berry_env(choice)}
    run = [*yarn, "install", "--non-interactive", *(["--frozen-lockfile"] if choice.lock else [])]
    return {"run": run, "env": {"YARN_CACHE_FOLDER": "/build/cache/yarn", "SKIP_YARN_COREPACK_CHECK": "1"}}


def berry_env(choice: Choice) -> dict[str, str]:
    """Yarn 2+'s install settings (environment variables win over ``.yarnrc.yml``).

    The archives stay in the app (``/app/<cacheFolder>``, in the image) when Plug'n'Play
    reads them at run time or the app commits them (zero-installs); yarn's mirror in the
    build cache volume keeps the downloads across builds. The unpacking linkers use the
    global cache in the volume.
    """
    env = {"YARN_GLOBAL_FOLDER": "/build/cache/yarn-berry", "YARN_ENABLE_TELEMETRY": "false"}
    if choice.linker == "pnp" or choice.zero_installs:
        env.update(
            YARN_ENABLE_GLOBAL_CACHE="false",
            YARN_CACHE_FOLDER=f"/app/{choice.cache_folder}",
            YARN_ENABLE_MIRROR="true",
        )
    else:
        env["YARN_ENABLE_GLOBAL_CACHE"] = "true"
    if choice.esm_loader:
        env["YARN_PNP_ENABLE_ESM_LOADER"] = "true"
    return env


def berry_runtime(choice: Choice) -> dict[str, str]:
    """The image's environment for Plug'n'Play: every ``node`` loads ``/app/.pnp.cjs`` (and its ESM loader)."""
    if not choice.berry or choice.linker != "pnp":
        return {}
    options = "--require /app/.pnp.cjs"
    if choice.esm_loader:
        options += " --experimental-loader /app/.pnp.loader.mjs"
    return {"NODE_OPTIONS": options}


def berry_exclude(choice: Choice) -> list[str]:
    """What the code layer leaves out for berry: the install's own files (the dependency layer has them)."""
    return [*BERRY_GENERATED, choice.cache_folder] if choice.berry else []


def berry_note(choice: Choice, version: str | None) -> str:
    """``yarn 4.5.3 (berry), nodeLinker pnp (yarn's default) ...``: what installs and how."""
    release = f"yarn {version}" if version else f"yarn from {choice.yarn_path}"
    line = f"{release} (berry), nodeLinker {choice.linker} ({choice.linker_why})"
    if choice.zero_installs:
        n = len(choice.zero_installs)
        line += f"; zero-installs: {n} package archive{'s' if n != 1 else ''} committed in {choice.cache_folder}"
    elif choice.linker == "pnp":
        line += f"; archives in /app/{choice.cache_folder}, loaded at run time through NODE_OPTIONS"
    return line


def dependency_files(build, choice: Choice) -> list[str]:
    """The files the install reads, in the dependency layer (and its key)."""
    files = ["package.json", *([choice.lock] if choice.lock else [])]
    extra = {"yarn": [".yarnrc", ".yarnrc.yml"], "pnpm": [".npmrc", "pnpm-workspace.yaml"]}.get(choice.name, [])
    files += [f for f in extra if build.has(f)]
    if choice.yarn_path:
        files.append(choice.yarn_path)
    if choice.berry:  # the plugins and patches .yarnrc.yml and the lock file name, the committed archives
        files += [f for f in (*_files_under(build, ".yarn/plugins"), *_files_under(build, ".yarn/patches"))]
        files += [f for f in choice.zero_installs if f not in files]
    return files
