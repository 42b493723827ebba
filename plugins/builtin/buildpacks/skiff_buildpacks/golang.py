"""The Go pack: module apps (go.mod, vendor/ builds offline) and GOPATH-style apps, with Debian's Go.

The toolchain is Debian's ``golang-go`` in a layer on the stack
(``skiff/stack-go:SUITE``, made on the first Go build, see
:mod:`skiff_buildpacks.toolchains`). ``go build`` runs there with the code in
/app, ``GOTOOLCHAIN=local`` (a ``toolchain`` line never downloads one) and the
module and build caches in the app's cache volume; only the binaries,
``/app/bin/<name>``, are copied into the app image, which stays on the stack.

- module apps: every ``package main`` directory of the module is built
  (``go build -o /app/bin/NAME ./DIR``; NAME as ``go build`` names it); with a
  ``vendor/`` directory ``-mod=vendor`` is added to the app's ``GOFLAGS``, so
  nothing is downloaded; otherwise modules come from ``GOPROXY``.
- apps without go.mod (GOPATH style, a main package at the root): built in GOPATH
  mode (``GO111MODULE=off``) with the code linked at ``$GOPATH/src/IMPORT``, where
  IMPORT is the root package's import comment (``package main // import "x/y"``)
  or the app's name; ``vendor/`` works as in GOPATH mode.

The app's config vars (``GOPROXY``, ``GOPRIVATE``, ``GONOSUMDB``, ``GOFLAGS``,
``CGO_ENABLED``, ...) are in the build's environment like every config var.
Default web process: the binary, when there is exactly one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

NAME = "go"
VERSION = "1"
LABEL = "Go app"
PACKAGES = ["golang-go"]
VERSION_COMMAND = ["go", "env", "GOVERSION"]
BIN = "/app/bin"
GOPATH_ROOT = "/tmp/gopath"
CACHE = {"GOCACHE": "/build/cache/go/build", "GOMODCACHE": "/build/cache/go/mod", "GOPATH": "/build/cache/go/path"}
HEADER_BYTES = 64 * 1024
MAX_GO_FILES = 20000

DIRECTIVES = {"module", "go", "toolchain", "godebug", "require", "exclude", "replace", "retract", "tool", "ignore"}
BLOCKS = DIRECTIVES - {"module", "go", "toolchain"}
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`\n]*`|=>|[()]|//.*|[^\s()"`]+|["`]')
PATH_ELEMENT = r"[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*"
MODULE_PATH = re.compile(rf"\A{PATH_ELEMENT}(?:/{PATH_ELEMENT})*\Z")
GO_VERSION = re.compile(r"\A([1-9][0-9]*)\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:(beta|rc)([1-9][0-9]*))?\Z")
TOOLCHAIN = re.compile(
    r"\Ago([1-9][0-9]*\.(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?(?:(?:beta|rc)[1-9][0-9]*)?)"
    r"(?:-[A-Za-z0-9._+-]+)?\Z|\Adefault\Z"
)
MODULE_VERSION = re.compile(r"\Av[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?\Z")
BINARY = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\Z")
PACKAGE_CLAUSE = re.compile(
    r"^\s*package\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?://\s*import\s+\"([^\"]*)\"|/\*\s*import\s+\"([^\"]*)\"\s*\*/)?"
)
BUILD_IGNORE = re.compile(r"^//\s*(?:go:build|\+build)\s.*(?<![!\w])ignore\b")


# -- go.mod ---------------------------------------------------------------------


@dataclass
class GoMod:
    """What the pack reads from go.mod (validated)."""

    module: str
    go: str = ""
    toolchain: str = ""
    requires: list[tuple[str, str]] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)


def _unquote(token: str, where: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    if token.startswith('"'):
        import json

        try:
            value = json.loads(token)
        except ValueError:
            raise SkiffError(f"{where}: invalid quoted string {token}") from None
        return str(value)
    return token


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """Each non-empty line's tokens (comments dropped), with its number."""
    result = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = []
        for token in TOKEN.findall(line):
            if token.startswith("//"):
                break
            if token in ('"', "`"):
                raise SkiffError(f"go.mod line {number}: unterminated quoted string")
            tokens.append(token)
        if tokens:
            result.append((number, tokens))
    return result


def _statements(text: str) -> list[tuple[int, str, list[str]]]:
    """``(line, verb, args)`` for every directive, with ``verb ( ... )`` blocks flattened."""
    statements: list[tuple[int, str, list[str]]] = []
    block: tuple[int, str] | None = None
    for number, tokens in _lines(text):
        where = f"go.mod line {number}"
        if block is not None:
            if tokens == [")"]:
                block = None
                continue
            if "(" in tokens or ")" in tokens:
                raise SkiffError(f"{where}: unexpected parenthesis inside the {block[1]} block")
            statements.append((number, block[1], tokens))
            continue
        verb, args = tokens[0], tokens[1:]
        if verb not in DIRECTIVES:
            raise SkiffError(f"{where}: unknown directive {verb!r}")
        if args == ["("]:
            if verb not in BLOCKS:
                raise SkiffError(f"{where}: {verb} cannot be a block")
            block = (number, verb)
            continue
        if args[-2:] == ["(", ")"] and verb in BLOCKS:
            continue  # an empty block on one line
        if "(" in args or ")" in args:
            raise SkiffError(f"{where}: unexpected parenthesis")
        statements.append((number, verb, args))
    if block is not None:
        raise SkiffError(f"go.mod line {block[0]}: the {block[1]} block is never closed")
    return statements


def _module_path(token: str, where: str) -> str:
    path = _unquote(token, where)
    if not MODULE_PATH.fullmatch(path) or any(e in (".", "..") or e.startswith(".") for e in path.split("/")):
        raise SkiffError(f"{where}: invalid module path {path!r}")
    return path


def _one(args: list[str], verb: str, where: str) -> str:
    if len(args) != 1:
        raise SkiffError(f"{where}: {verb} takes exactly one argument, got {len(args)}")
    return args[0]


def parse_go_mod(text: str) -> GoMod:
    """Parse and validate go.mod; a problem is one SkiffError line naming the line."""
    module = go = toolchain = None
    requires: list[tuple[str, str]] = []
    replaces: list[str] = []
    for number, verb, args in _statements(text):
        where = f"go.mod line {number}"
        if verb in ("module", "go", "toolchain") and {"module": module, "go": go, "toolchain": toolchain}[verb]:
            raise SkiffError(f"{where}: repeated {verb} directive")
        if verb == "module":
            module = _module_path(_one(args, verb, where), where)
        elif verb == "go":
            go = _one(args, verb, where)
            if not GO_VERSION.fullmatch(go):
                raise SkiffError(f"{where}: invalid go version {go!r} (expected e.g. 1.22 or 1.22.5)")
        elif verb == "toolchain":
            toolchain = _one(args, verb, where)
            if not TOOLCHAIN.fullmatch(toolchain):
                raise SkiffError(f"{where}: invalid toolchain {toolchain!r} (expected e.g. go1.22.5)")
        elif verb == "require":
            if len(args) != 2:
                raise SkiffError(f"{where}: require needs a module path and a version")
            path, version = _module_path(args[0], where), _unquote(args[1], where)
            if not MODULE_VERSION.fullmatch(version):
                raise SkiffError(f"{where}: invalid version {version!r} of {path}")
            requires.append((path, version))
        elif verb == "replace":
            if "=>" not in args or args.index("=>") not in (1, 2) or len(args) - args.index("=>") - 1 not in (1, 2):
                raise SkiffError(f"{where}: replace needs 'path [version] => path [version]'")
            target = _unquote(args[args.index("=>") + 1], where)
            replaces.append(target)
        elif not args:
            raise SkiffError(f"{where}: {verb} needs an argument")
    if module is None:
        raise SkiffError("go.mod has no module directive (e.g. 'module example.com/app')")
    return GoMod(module=module, go=go or "", toolchain=toolchain or "", requires=requires, replaces=replaces)


def version_key(version: str) -> tuple[int, int, int, int, int]:
    """Go's version order: 1.21 < 1.21rc1 < 1.21.0 < 1.21.1 (``go1.21.0`` accepted)."""
    match = GO_VERSION.fullmatch(version.removeprefix("go").split("-", 1)[0].split(" ", 1)[0])
    if not match:
        raise SkiffError(f"cannot read the Go version {version!r}")
    major, minor, patch, stage, number = match.groups()
    if patch is not None:
        return int(major), int(minor), 3, int(patch), 0
    if stage:
        return int(major), int(minor), 1 if stage == "beta" else 2, int(number), 0
    return int(major), int(minor), 0, 0, 0


# -- the source -----------------------------------------------------------------


def root_go_files(build) -> list[str]:
    source = build.source
    try:
        names = sorted(os.listdir(source))
    except OSError:
        return []
    return [n for n in names if n.endswith(".go") and not n.endswith("_test.go") and _regular(source / n)]


def _regular(path) -> bool:
    return not os.path.islink(path) and os.path.isfile(path)


def package_clause(path) -> tuple[str, str] | None:
    """``(package name, import comment)`` of a Go file, or None when ``//go:build ignore`` leaves it out."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    in_comment = False
    for line in head.splitlines():
        stripped = line.strip()
        if in_comment:
            if "*/" in stripped:
                in_comment = False
                stripped = stripped.split("*/", 1)[1].strip()
            else:
                continue
        if BUILD_IGNORE.match(stripped):
            return None
        if stripped.startswith("/*") and "*/" not in stripped[2:]:
            in_comment = True
            continue
        match = PACKAGE_CLAUSE.match(stripped)
        if match:
            return match.group(1), match.group(2) or match.group(3) or ""
        if stripped and not stripped.startswith(("//", "/*")):
            return None  # code before the package clause: not a Go file we understand
    return None


def main_packages(build, module_mode: bool) -> dict[str, str]:
    """Relative directories holding a main package -> the import comment of its first file.

    Walks the source without following symlinks, and skips ``vendor``, ``testdata``,
    names starting with ``.`` or ``_`` and, in module mode, nested modules (a go.mod).
    """
    found: dict[str, str] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(build.source):
        rel = os.path.relpath(dirpath, build.source)
        rel = "" if rel == "." else rel
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in ("vendor", "testdata")
            and not d.startswith((".", "_"))
            and not os.path.islink(os.path.join(dirpath, d))
            and not (module_mode and os.path.isfile(os.path.join(dirpath, d, "go.mod")))
        )
        for name in sorted(filenames):
            if not name.endswith(".go") or name.endswith("_test.go") or not _regular(os.path.join(dirpath, name)):
                continue
            seen += 1
            if seen > MAX_GO_FILES:
                raise SkiffError(f"more than {MAX_GO_FILES} Go files: not a Go app this pack can build")
            clause = package_clause(os.path.join(dirpath, name))
            if clause and clause[0] == "main":
                found.setdefault(rel, clause[1])
    return found


def exec_name(import_path: str, module_mode: bool) -> str:
    """The binary name ``go build`` gives a main package (example.com/cmd/v2 -> cmd in module mode)."""
    parts = import_path.split("/")
    name = parts[-1]
    if module_mode and len(parts) > 1 and re.fullmatch(r"v(?:[2-9]|[1-9][0-9]+)", name):
        name = parts[-2]
    return name


# -- the plan -------------------------------------------------------------------


@dataclass
class GoApp:
    """How to build one Go app."""

    mode: str  # "module" or "gopath"
    import_path: str  # the module path, or the GOPATH import path of the root
    go_mod: GoMod | None
    vendor: bool
    binaries: dict[str, str]  # binary name -> relative package dir ("" = the root)


def inspect(build) -> GoApp:
    """Read go.mod (or the GOPATH-style root) and find the main packages; SkiffError when unusable."""
    vendor = build.has("vendor") and (build.source / "vendor").is_dir()
    if build.has("go.mod"):
        go_mod = parse_go_mod(build.read("go.mod"))
        mode, import_path = "module", go_mod.module
        if vendor and not build.has("vendor/modules.txt"):
            raise SkiffError("vendor/ has no modules.txt: run 'go mod vendor' and commit vendor/")
    else:
        go_mod, mode = None, "gopath"
        if not root_go_files(build):
            raise SkiffError("no go.mod and no .go file at the root: nothing for the Go pack to build")
        import_path = ""
    mains = main_packages(build, module_mode=mode == "module")
    if mode == "gopath":
        if "" not in mains:
            raise SkiffError("no go.mod and the root package is not package main: add a go.mod")
        import_path = gopath_import_path(build, mains[""])
    if not mains:
        raise SkiffError(f"no main package in module {import_path}: nothing to run")
    binaries: dict[str, str] = {}
    for rel in sorted(mains):
        name = exec_name(f"{import_path}/{rel}" if rel else import_path, mode == "module")
        if not BINARY.fullmatch(name):
            raise SkiffError(f"the main package in {rel or '.'} would be named {name!r}: not a usable binary name")
        if name in binaries:
            raise SkiffError(
                f"two main packages would both be bin/{name}: {binaries[name] or '.'} and {rel}; rename one"
            )
        binaries[name] = rel
    return GoApp(mode=mode, import_path=import_path, go_mod=go_mod, vendor=vendor, binaries=binaries)


def gopath_import_path(build, comment: str) -> str:
    """The root package's import comment, else the app's name."""
    path = comment or build.app
    if not MODULE_PATH.fullmatch(path) or any(e.startswith(".") for e in path.split("/")):
        raise SkiffError(f"invalid import path {path!r} in the import comment of the root package")
    return path


def goflags(build, app: GoApp) -> str:
    """The app's GOFLAGS, with -mod=vendor added when vendor/ exists (unless it sets -mod)."""
    flags = build.config.get("GOFLAGS", "").strip()
    if app.mode == "module" and app.vendor and not re.search(r"(?:^|\s)-mod=", flags):
        flags = f"{flags} -mod=vendor".strip()
    return flags


def notes(app: GoApp) -> list[str]:
    lines = []
    if app.mode == "module":
        assert app.go_mod is not None
        go = f", go {app.go_mod.go}" if app.go_mod.go else ""
        lines.append(f"module {app.import_path}{go}")
        if app.vendor:
            lines.append("vendor/ found: building offline with -mod=vendor")
        elif app.go_mod.requires:
            lines.append(f"{len(app.go_mod.requires)} required modules come from GOPROXY (config var; Go's default)")
    else:
        lines.append(f"no go.mod: GOPATH mode (GO111MODULE=off), import path {app.import_path}")
    built = ", ".join(f"{name} ({'./' + rel if rel else '.'})" for name, rel in app.binaries.items())
    lines.append(f"main packages: {built}")
    if len(app.binaries) > 1:
        lines.append("several main packages: no default web process (name one in a Procfile, e.g. web: NAME)")
    return lines


def check_toolchain(app: GoApp, version: str) -> list[str]:
    """Refuse a go line newer than the toolchain; a newer toolchain line is only ignored."""
    if app.go_mod is None:
        return []
    have = version_key(version)
    if app.go_mod.go and version_key(app.go_mod.go) > have:
        raise SkiffError(
            f"go.mod requires go {app.go_mod.go}, but the Go toolchain from Debian is {version} "
            "(GOTOOLCHAIN=local: no toolchain is downloaded); lower the go line or use a newer stack"
        )
    toolchain = app.go_mod.toolchain
    if toolchain and toolchain != "default" and version_key(toolchain) > have:
        return [f"go.mod's toolchain {toolchain} is ignored: GOTOOLCHAIN=local builds with {version}"]
    return []


def build_env(build, app: GoApp) -> dict[str, str]:
    env = {**CACHE, "GOTOOLCHAIN": "local", "GOFLAGS": goflags(build, app)}
    if app.mode == "gopath":
        env.update({"GO111MODULE": "off", "GOPATH": GOPATH_ROOT})
    return env


def build_steps(app: GoApp, version: str) -> list[dict[str, Any]]:
    count = len(app.binaries)
    title = f"Building {count} main package{'s' if count != 1 else ''} with {version}"
    if app.mode == "module":
        runs = [["mkdir", "-p", BIN]]
        runs += [
            ["go", "build", "-trimpath", "-o", f"{BIN}/{n}", f"./{rel}" if rel else "."]
            for n, rel in app.binaries.items()
        ]
        return [{"title": title, "run": runs}]
    linked = f"{GOPATH_ROOT}/src/{app.import_path}"
    link = {"run": [["mkdir", "-p", os.path.dirname(linked), BIN], ["ln", "-s", "/app", linked]]}
    runs = [
        ["go", "build", "-trimpath", "-o", f"{BIN}/{n}", f"./{rel}" if rel else "."] for n, rel in app.binaries.items()
    ]
    # go finds the import path from the working directory: PWD keeps the link's name
    return [link, {"title": title, "run": runs, "cwd": linked, "env": {"PWD": linked}}]


# -- hooks ----------------------------------------------------------------------


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "run_image": True,
        "name": NAME,
        "version": VERSION,
        "looks_for": "go.mod, or .go files with package main at the root",
        "order": 30,
        "label": LABEL,
    }


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return build.has("go.mod") or bool(root_go_files(build))


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    app = inspect(build)  # a broken go.mod stops the build here, before anything is made
    return {"label": LABEL, "notes": notes(app), "path": [BIN]}


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    app = inspect(build)
    toolchain = build.toolchain(NAME, PACKAGES, VERSION_COMMAND)
    for line in check_toolchain(app, toolchain.version):
        build.output.warn(line)
    stage = {
        "image": toolchain.image,
        "steps": build_steps(app, toolchain.version),
        "env": build_env(build, app),
        "outputs": ["bin"],
    }
    return {"stage": stage}


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    binaries = inspect(build).binaries
    return {"web": next(iter(binaries))} if len(binaries) == 1 else {}
