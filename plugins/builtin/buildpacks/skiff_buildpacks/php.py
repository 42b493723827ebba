"""The PHP pack: composer.json (composer from Debian) or a plain index.php, served by php-fpm behind nginx.

The toolchain is Debian's PHP (``php-cli``, ``php-fpm``, common extensions),
``composer`` and ``nginx`` in a layer on the stack (``skiff/stack-php:SUITE``,
made on the first PHP build, see :mod:`skiff_buildpacks.toolchains`); the app
image is built on that layer, since PHP runs there.

- a committed ``vendor/`` that holds every package of composer.lock (as
  ``vendor/composer/installed.json`` lists them) builds offline: nothing is
  installed, ``composer dump-autoload`` writes the autoloader with the code;
- otherwise ``composer install --no-dev`` runs in the dependency layer (keyed by
  composer.json and composer.lock), after a check from the server that the
  registries it needs answer: when packagist (or a repository of composer.json)
  is unreachable the build stops with one line naming it.

The default ``web`` process is ``heroku-php-nginx`` (as on Heroku, with the
document root from composer.json ``extra.heroku.document-root``): php-fpm on a
unix socket and nginx on ``$PORT`` in the container, both as the app's user.
A Procfile can name it with a document root (``web: heroku-php-nginx public/``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

NAME = "php"
VERSION = "1"
LABEL = "PHP app"
PACKAGES = [
    "php-cli",
    "php-fpm",
    "composer",
    "nginx",
    "php-curl",
    "php-intl",
    "php-mbstring",
    "php-mysql",
    "php-pgsql",
    "php-sqlite3",
    "php-xml",
    "php-zip",
    "unzip",  # composer extracts dists with it (php-zip alone works, slower, with a warning)
]
VERSION_COMMAND = ["php", "-r", "echo PHP_VERSION;"]
BIN = "/app/.skiff/php/bin"
WEB_SCRIPT = ".skiff/php/bin/heroku-php-nginx"
ALIAS_SCRIPT = ".skiff/php/bin/heroku-php-apache2"  # Heroku's other server: nginx serves it here
PACKAGIST = "https://repo.packagist.org"
PROBE_TIMEOUT = 5.0
COMPOSER_ENV = {
    "COMPOSER_HOME": "/build/cache/composer/home",
    "COMPOSER_CACHE_DIR": "/build/cache/composer/cache",
    "COMPOSER_NO_INTERACTION": "1",
}
PLATFORM = re.compile(
    r"\A(?:php(?:-64bit|-ipv6|-zts|-debug)?|hhvm|ext-.+|lib-.+|composer(?:-plugin-api|-runtime-api)?)\Z"
)
PACKAGE_NAME = re.compile(r"\A[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*\Z")
RELATIVE_DIR = re.compile(r"\A(?!/)(?:[A-Za-z0-9_][A-Za-z0-9._-]*)(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*/?\Z")
URL = re.compile(r"\Ahttps?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[^\s@]*)?\Z")
LOCAL_REPO = re.compile(r"\A(?!/)[A-Za-z0-9_*][A-Za-z0-9._*-]*(?:/[A-Za-z0-9_*][A-Za-z0-9._*-]*)*/?\Z")
MAX_LOCAL_FILES = 20000
REMOTE_TYPES = {"composer", "vcs", "git", "github", "gitlab", "bitbucket", "hg", "svn", "fossil"}


# -- composer.json --------------------------------------------------------------


@dataclass
class Composer:
    """What the pack reads from composer.json, composer.lock and vendor/ (validated)."""

    require: dict[str, str] = field(default_factory=dict)
    locked: dict[str, str] = field(default_factory=dict)  # name -> version, composer.lock "packages"
    has_lock: bool = False
    installed: dict[str, str] = field(default_factory=dict)  # vendor/composer/installed.json
    vendor_dir: str = "vendor"
    document_root: str = ""
    registries: list[str] = field(default_factory=list)
    local_files: list[str] = field(default_factory=list)  # files of path/artifact repositories

    @property
    def packages(self) -> list[str]:
        """The packages an install needs (the lock's, else composer.json's non-platform requires)."""
        if self.has_lock:
            return sorted(self.locked)
        return sorted(n for n in self.require if not PLATFORM.fullmatch(n.lower()))

    @property
    def missing(self) -> list[str]:
        """Needed packages that vendor/ does not hold (at the locked version when there is a lock)."""
        if self.has_lock:
            return sorted(n for n, v in self.locked.items() if self.installed.get(n) != v)
        return [n for n in self.packages if n.lower() not in {k.lower() for k in self.installed}]


def _json(build, name: str) -> Any:
    try:
        return json.loads(build.read(name))
    except ValueError as exc:
        raise SkiffError(f"{name} is not valid JSON: {exc}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SkiffError(f"{where} must be a JSON object")
    return value


def _requires(data: dict[str, Any]) -> dict[str, str]:
    require = _object(data.get("require"), "composer.json require")
    for name, constraint in require.items():
        if not isinstance(constraint, str):
            raise SkiffError(f"composer.json require {name!r}: the version constraint must be a string")
        if not PLATFORM.fullmatch(name.lower()) and not PACKAGE_NAME.fullmatch(name.lower()):
            raise SkiffError(f"composer.json require: invalid package name {name!r} (expected vendor/name)")
    return dict(require)


def _document_root(data: dict[str, Any]) -> str:
    heroku = _object(_object(data.get("extra"), "composer.json extra").get("heroku"), "composer.json extra.heroku")
    root = heroku.get("document-root", "")
    if root in ("", ".", "./"):
        return ""
    if not isinstance(root, str) or not RELATIVE_DIR.fullmatch(root) or ".." in root.split("/"):
        raise SkiffError(
            f"composer.json extra.heroku.document-root must be a directory inside the app (e.g. public), got {root!r}"
        )
    return root.rstrip("/")


def _vendor_dir(data: dict[str, Any]) -> str:
    vendor = _object(data.get("config"), "composer.json config").get("vendor-dir", "vendor")
    if not isinstance(vendor, str) or not RELATIVE_DIR.fullmatch(vendor) or ".." in vendor.split("/"):
        raise SkiffError(f"composer.json config.vendor-dir must be a directory inside the app, got {vendor!r}")
    return vendor.rstrip("/")


def _registries(data: dict[str, Any]) -> list[str]:
    """The remote registries composer would ask: packagist unless disabled, and remote repositories."""
    repos = data.get("repositories") or []
    if isinstance(repos, dict):
        items = [{name: value} if not isinstance(value, dict) else value for name, value in repos.items()]
    elif isinstance(repos, list):
        items = repos
    else:
        raise SkiffError("composer.json repositories must be a list or an object")
    packagist, urls = True, []
    for repo in items:
        if not isinstance(repo, dict):
            raise SkiffError("composer.json repositories: every repository must be an object")
        if repo.get("packagist.org") is False or repo.get("packagist") is False:
            packagist = False
            continue
        if repo.get("type") in REMOTE_TYPES and isinstance(repo.get("url"), str):
            url = repo["url"]
            if URL.fullmatch(url) and url not in urls:
                urls.append(url)
    return urls + ([PACKAGIST] if packagist else [])


def _local_repositories(build, data: dict[str, Any]) -> list[str]:
    """The files of composer.json's ``path`` and ``artifact`` repositories (inside the app; wildcards allowed).

    They go into the dependency layer with composer.json, since composer installs from them.
    """
    import glob
    import os

    repos = data.get("repositories") or []
    items = list(repos.values()) if isinstance(repos, dict) else repos
    files: list[str] = []
    for repo in items:
        if not isinstance(repo, dict) or repo.get("type") not in ("path", "artifact"):
            continue
        url = repo.get("url")
        if not isinstance(url, str) or not LOCAL_REPO.fullmatch(url) or ".." in url.split("/"):
            raise SkiffError(
                f"composer.json repositories: the {repo['type']} repository {url!r} must be inside the app"
            )
        pattern = f"{glob.escape(str(build.source))}/{url.rstrip('/')}"
        for match in sorted(os.path.relpath(m, build.source) for m in glob.glob(pattern)):
            if build.has(match) and (build.source / match).is_dir():
                files += _files_under(build, match)
    if len(files) > MAX_LOCAL_FILES:
        raise SkiffError(f"the path and artifact repositories of composer.json hold more than {MAX_LOCAL_FILES} files")
    return sorted(set(files))


def _files_under(build, rel: str) -> list[str]:
    import os

    found = []
    for dirpath, dirnames, filenames in os.walk(build.source / rel):
        dirnames[:] = [
            d for d in dirnames if d not in (".git", "vendor") and not os.path.islink(os.path.join(dirpath, d))
        ]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, build.source))
    return found


def _lock(build) -> dict[str, str]:
    data = _object(_json(build, "composer.lock"), "composer.lock")
    packages = data.get("packages") or []
    if not isinstance(packages, list):
        raise SkiffError("composer.lock packages must be a list")
    locked = {}
    for package in packages:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise SkiffError("composer.lock: every package needs a name")
        locked[package["name"]] = str(package.get("version", ""))
    return locked


def _installed(build, vendor_dir: str) -> dict[str, str]:
    """``vendor/composer/installed.json`` (composer 2's object or composer 1's list), name -> version."""
    rel = f"{vendor_dir}/composer/installed.json"
    if not build.has(rel):
        return {}
    data = _json(build, rel)
    packages = data.get("packages") if isinstance(data, dict) else data
    if not isinstance(packages, list):
        raise SkiffError(f"{rel} must list the installed packages")
    return {
        p["name"]: str(p.get("version", "")) for p in packages if isinstance(p, dict) and isinstance(p.get("name"), str)
    }


def inspect(build) -> Composer | None:
    """composer.json, composer.lock and vendor/ of the app (``None`` for a plain index.php app)."""
    if not build.has("composer.json"):
        return None
    data = _object(_json(build, "composer.json"), "composer.json")
    vendor = _vendor_dir(data)
    has_lock = build.has("composer.lock")
    return Composer(
        require=_requires(data),
        locked=_lock(build) if has_lock else {},
        has_lock=has_lock,
        installed=_installed(build, vendor),
        vendor_dir=vendor,
        document_root=_document_root(data),
        registries=_registries(data),
        local_files=_local_repositories(build, data),
    )


# -- the PHP version --------------------------------------------------------------


def _npm_range(constraint: str) -> str:
    """A composer constraint as an npm range: ``,`` and spaces are AND, ``|``/``||`` OR, ``~X.Y`` is ``>=X.Y <X+1``."""
    sets = []
    for part in re.split(r"\|\|?", constraint):
        terms = []
        for term in part.replace(",", " ").split():
            term = re.sub(r"@[A-Za-z]+\Z", "", term)  # stability flags (@dev, @stable)
            tilde = re.fullmatch(r"~v?([0-9]+)\.([0-9]+)", term)
            if tilde:
                major = int(tilde.group(1))
                term = f">={major}.{tilde.group(2)}.0 <{major + 1}.0.0"
            if term:
                terms.append(term)
        sets.append(" ".join(terms))
    return " || ".join(sets)


def check_php(composer: Composer | None, version: str) -> None:
    """Refuse a composer.json ``require.php`` that Debian's PHP does not meet (one line)."""
    from .semver import InvalidRange, Range, Version

    constraint = (composer.require.get("php") or "").strip() if composer else ""
    if not constraint:
        return
    try:
        allowed = Range.parse(_npm_range(constraint)).test(Version.parse(version.split("-", 1)[0]))
    except InvalidRange:
        raise SkiffError(f"composer.json require.php: cannot read the constraint {constraint!r}") from None
    if not allowed:
        raise SkiffError(
            f"composer.json requires php {constraint}, but the PHP from Debian is {version}; "
            "change the constraint or use another stack"
        )


# -- registries -------------------------------------------------------------------


def reachable(url: str, verify: str | bool) -> str:
    """``""`` when ``url`` answers over HTTP(S) (any status), else why not, in a few words.

    Only public addresses are asked from the server: a name that resolves to a loopback,
    private or link-local address is not probed here (``""``; composer finds out from the
    build container), so a composer.json can never make the server itself reach its own
    loopback services or its private network.
    """
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    import requests

    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError, ValueError):
        return "the name does not resolve"
    if not all(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_global for info in infos):
        return ""
    try:
        requests.head(url, timeout=PROBE_TIMEOUT, verify=verify, allow_redirects=False)
    except requests.exceptions.ConnectTimeout:
        return "connection timed out"
    except requests.exceptions.SSLError:
        return "TLS verification failed"
    except requests.exceptions.ConnectionError:
        return "connection failed"
    except requests.exceptions.RequestException as exc:
        return type(exc).__name__
    return ""


def check_registries(build, composer: Composer) -> None:
    """Before composer runs: every registry it would download from must answer, else one line names it."""
    from .node import tls_verify

    missing = composer.missing
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    if not composer.registries:
        return
    for url in composer.registries:
        why = reachable(url, tls_verify(build))
        if why:
            raise SkiffError(
                f"composer needs {shown} from {url}, which this server cannot reach ({why}); "
                f"commit {composer.vendor_dir}/ and composer.lock (composer install) to build offline"
            )


# -- hooks ----------------------------------------------------------------------


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": VERSION,
        "looks_for": "composer.json, or index.php at the root",
        "order": 16,
        "label": LABEL,
    }


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return build.has("composer.json") or (build.has("index.php") and (build.source / "index.php").is_file())


def use_toolchain(build) -> str:
    """Switch the build to the PHP toolchain layer (made on first use); return PHP's version."""
    from dataclasses import replace

    toolchain = build.toolchain(NAME, PACKAGES, VERSION_COMMAND)
    build.use_stack(replace(build.stack, image=toolchain.image, id=toolchain.id))
    return str(toolchain.version)


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    composer = inspect(build)  # a broken composer.json stops the build here, before anything is made
    notes: list[str] = []
    steps: list[dict[str, Any]] = []
    files: list[str] = []
    exclude: list[str] = []
    if composer is None:
        notes.append("no composer.json: serving the PHP files as they are")
    elif not composer.packages:
        notes.append("composer.json requires no packages: nothing to install")
    elif not composer.missing:
        notes.append(f"{composer.vendor_dir}/ holds all {len(composer.packages)} packages: building offline")
    else:
        check_registries(build, composer)
        if not composer.has_lock:
            notes.append(
                "no composer.lock: composer resolves the versions (commit composer.lock for repeatable builds)"
            )
        files = ["composer.json"] + (["composer.lock"] if composer.has_lock else []) + composer.local_files
        exclude = [composer.vendor_dir]
        steps = [
            {
                "title": "Installing dependencies with composer",
                "run": [
                    [
                        "composer",
                        "install",
                        "--no-dev",
                        "--prefer-dist",
                        "--no-progress",
                        "--no-scripts",
                        "--no-autoloader",
                        "--no-interaction",
                    ]
                ],
                "env": COMPOSER_ENV,
            }
        ]
    version = use_toolchain(build)
    check_php(composer, version)
    notes.append(f"PHP {version} from Debian, served by php-fpm behind nginx")
    return {
        "label": LABEL,
        "notes": notes,
        "files": files,
        "steps": steps,
        "exclude": exclude,
        "path": [BIN, f"/app/{composer.vendor_dir if composer else 'vendor'}/bin"],
    }


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    script = Path(__file__).with_name("php_web.py").read_bytes()
    composer = inspect(build)
    vendor_bin = f"/app/{composer.vendor_dir if composer else 'vendor'}/bin"
    scripts = [f"/app/{WEB_SCRIPT}", f"/app/{ALIAS_SCRIPT}"]
    # Procfiles written for Heroku name vendor/bin/heroku-php-nginx (its buildpack puts them there)
    links = [["ln", "-sfn", path, f"{vendor_bin}/{path.rpartition('/')[2]}"] for path in scripts]
    steps: list[dict[str, Any]] = [{"run": [["chmod", "0755", *scripts], ["mkdir", "-p", vendor_bin], *links]}]
    if build.has("composer.json"):
        dump = ["composer", "dump-autoload", "--no-dev", "--optimize", "--no-interaction"]
        steps.append({"title": "Writing the autoloader with composer", "run": [dump], "env": COMPOSER_ENV})
    return {"files": {WEB_SCRIPT: script, ALIAS_SCRIPT: script}, "steps": steps}


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    composer = inspect(build)
    root = composer.document_root if composer else ""
    return {"web": f"heroku-php-nginx {root}/" if root else "heroku-php-nginx"}
