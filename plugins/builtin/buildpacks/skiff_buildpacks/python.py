"""The Python pack: requirements.txt, Pipfile.lock, uv.lock or poetry.lock into /app/.venv.

uv (the server's verified copy, :mod:`skiff_buildpacks.wheels`) makes the
virtualenv and installs into it, with the app's own cache read-write and the
server's shared wheel cache read-only; ``buildpacks:set APP python-installer
pip`` uses the stack's pip instead (``python3 -m venv --without-pip``, then
``pip --python VENV install``). Lock files are turned into a pinned
requirements file (``.skiff/requirements.txt``) of the default/main group.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

from . import wheels
from .versions import (
    _parts,
    minor_of,
    parse_pin,
    parse_python_version_file,
    parse_runtime_txt,
    parse_specifier,
    specifier_allows,
    version_satisfies,
)

NAME = "python"
VERSION = "1"
VENV = "/app/.venv"
GENERATED = ".skiff/requirements.txt"
MANAGERS = ("requirements.txt", "Pipfile.lock", "uv.lock", "poetry.lock")
LOOKS_FOR = "requirements.txt, Pipfile.lock, pyproject.toml with uv.lock or poetry.lock"
REQ_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)\s*=?\s*(\S+)")


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": VERSION,
        "looks_for": LOOKS_FOR,
        "order": 10,
        "label": "Python app",
        "run_image": True,
    }


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return any(build.has(f) for f in (*MANAGERS, "Pipfile", "pyproject.toml", "setup.py"))


def managers(build) -> list[str]:
    found = [f for f in MANAGERS if build.has(f)]
    if build.has("Pipfile") and "Pipfile.lock" not in found:
        found.append("Pipfile")
    return found


ACCEPT_NEWER = "python-accept-newer"


def accept_newer(build) -> bool:
    """The per-app setting ``buildpacks:set APP python-accept-newer true``."""
    return bool((getattr(build, "settings", None) or {}).get(ACCEPT_NEWER))


@dataclass
class Request:
    """One file's say on the Python version: a pin (``3.13``) or a PEP 440 specifier."""

    where: str  # ".python-version", "runtime.txt", "Pipfile python_version", "pyproject.toml requires-python"
    value: str
    pin: bool = True

    def label(self) -> str:
        return f"{self.where} {self.value}"

    def allows(self, version: str) -> bool:
        return version_satisfies(version, self.value) if self.pin else specifier_allows(self.value, version, self.where)


def python_requests(build) -> list[Request]:
    """Every version request in the source, strongest first.

    Precedence (Heroku's): ``.python-version``, then ``runtime.txt``, then the
    ``Pipfile``'s ``[requires]`` (``python_full_version``, then
    ``python_version``); ``pyproject.toml``'s ``requires-python`` is a
    constraint, not a pin, and only decides when nothing pins.
    """
    found = []
    if build.has(".python-version"):
        found.append(Request(".python-version", parse_python_version_file(build.read(".python-version"))))
    if build.has("runtime.txt"):
        found.append(Request("runtime.txt", parse_runtime_txt(build.read("runtime.txt"))))
    if build.has("Pipfile"):
        requires = _toml(build.read("Pipfile"), "Pipfile").get("requires") or {}
        for key in ("python_full_version", "python_version"):
            value = requires.get(key) if isinstance(requires, dict) else None
            if isinstance(value, str) and value.strip():
                found.append(Request(f"Pipfile {key}", parse_pin(value, f"Pipfile {key}")))
                break
    if build.has("pyproject.toml"):
        project = _toml(build.read("pyproject.toml"), "pyproject.toml").get("project") or {}
        spec = project.get("requires-python") if isinstance(project, dict) else None
        if isinstance(spec, str) and spec.strip():
            parse_specifier(spec, "pyproject.toml requires-python")
            found.append(Request("pyproject.toml requires-python", spec.strip(), pin=False))
    return found


def requested_version(build) -> tuple[str | None, str]:
    """The deciding request's value and file (``(None, "")`` without one)."""
    found = python_requests(build)
    return (found[0].value, found[0].where) if found else (None, "")


def choose_stack(build) -> tuple[str | None, list[str]]:
    """Use the stack whose Python the app asks for; return the note and the warnings.

    Stacks built here are preferred; a known Debian suite's stack that is not
    built yet (``buildable``) is chosen only when no built one fits, and is then
    built by the stack plugin (``build.use_stack``).
    """
    found = python_requests(build)
    if not found:
        return None, []
    decider = found[0]
    stacks = [s for s in build.available_stacks() if s.python]
    warnings: list[str] = []
    if decider.pin:
        pick, how = _stack_for_pin(decider, stacks, accept_newer(build))
    else:
        pick, how = _stack_for_specifier(decider, stacks), "exact"
    configured = build.stack
    if pick.python == configured.python and not pick.buildable:
        pick = configured
    stack = build.use_stack(pick) if pick is not configured else configured
    if how == "minor" or (how == "exact" and not decider.allows(stack.python)):
        warnings.append(
            f"{decider.label()}: no stack has Python {decider.value}; using {stack.python} (same minor version)"
        )
    elif how == "newer":
        warnings.append(
            f"{decider.label()}: no stack has Python {decider.value}; using the nearest newer, {stack.python} "
            f"({ACCEPT_NEWER} is set)"
        )
    for other in found[1:]:
        if not other.allows(stack.python):
            warnings.append(f"{other.label()} disagrees with {decider.label()}: using Python {stack.python}")
    where = "" if stack is configured else f" on stack {stack.image}"
    return f"Using Python {stack.python}{where} ({decider.label()})", warnings


def _best(stacks: list) -> Any:
    """The stack with the highest Python; a built one before a buildable one of the same version."""
    return max(stacks, key=lambda s: (_key(s.python), not s.buildable))


def _stack_for_pin(request: Request, stacks: list, newer: bool) -> tuple[Any, str]:
    """The stack for a pin and how it fits: ``exact``, ``minor`` (same minor), ``newer`` (accept-newer)."""
    built = [s for s in stacks if not s.buildable]
    exact = [s for s in built if request.allows(s.python)]
    if exact:
        return _best(exact), "exact"
    want = minor_of(request.value)
    if len(want) == 2:
        same = [s for s in built if minor_of(s.python) == want]
        if same:
            return _best(same), "minor"
        later = [s for s in stacks if s.buildable and minor_of(s.python) == want]
        if later:
            return later[0], "exact"  # its patch is known once it is built
    newer_ones = sorted(
        (s for s in stacks if minor_of(s.python) > want), key=lambda s: (minor_of(s.python), s.buildable)
    )
    if newer and newer_ones:
        return newer_ones[0], "newer"
    hint = f"; set 'buildpacks:set APP {ACCEPT_NEWER} true' to use {newer_ones[0].python}" if newer_ones else ""
    raise SkiffError(
        f"{request.where} requests Python {request.value}, but no stack has it; available: {_available(stacks)}{hint}"
        f" or change {request.where}"
    )


def _stack_for_specifier(request: Request, stacks: list) -> Any:
    """The highest built Python the specifier allows, else the highest buildable one."""
    for group in ([s for s in stacks if not s.buildable], [s for s in stacks if s.buildable]):
        fitting = [s for s in group if request.allows(s.python)]
        if fitting:
            return _best(fitting)
    raise SkiffError(
        f"{request.where} {request.value!r} allows no available Python; available: {_available(stacks)}; "
        "change requires-python, or pin a version in .python-version"
    )


def _key(version: str) -> list[int]:
    return _parts(version)


def _available(stacks) -> str:
    shown = [f"{s.python} ({s.image}{', built on first use' if s.buildable else ''})" for s in stacks]
    return ", ".join(shown) or "none"


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    found = managers(build)
    if len(found) > 1:
        raise SkiffError(f"more than one Python package manager file: {', '.join(found)}; keep only one")
    note, warnings = choose_stack(build)
    notes = [note] if note else []
    stack_path = {"PATH": build.stack.path}  # the stack's python3, not the venv's (it has no pip)
    result: dict[str, Any] = {
        "label": "Python app",
        "notes": notes,
        "warnings": warnings,
        "path": [f"{VENV}/bin"],
        "runtime_env": {"PYTHONUNBUFFERED": "1", "VIRTUAL_ENV": VENV},
        "exclude": [".venv"],
        "files": [],
        "generated": {},
    }
    if not found:
        if build.has("pyproject.toml"):
            raise SkiffError("pyproject.toml without uv.lock or poetry.lock: commit a lock file or a requirements.txt")
        if build.has("setup.py"):
            result["notes"].append("setup.py without requirements.txt: installing no dependencies")
        result["steps"] = [{"title": "Creating the virtualenv", "run": [PIP_VENV], "env": stack_path}]
        return result
    manager = found[0]
    if manager == "Pipfile":
        raise SkiffError("Pipfile without Pipfile.lock: run 'pipenv lock' and commit Pipfile.lock")
    if manager == "requirements.txt":
        files = requirement_files(build, "requirements.txt")
        result["files"] = files
        result["additive_lines"] = sorted(
            {
                line.split(" #", 1)[0].strip()
                for f in files
                for line in build.read(f).splitlines()
                if line.strip() and not line.strip().startswith("#")
            }
        )
        source, origin = "requirements.txt", ""
    else:
        text = build.read(manager)
        if manager == "Pipfile.lock":
            reqs = pipfile_requirements(text)
        elif manager == "uv.lock":
            reqs = uv_requirements(text)
        else:
            reqs = poetry_requirements(text)
        result["files"] = [manager]
        result["generated"] = {GENERATED: ("".join(r + "\n" for r in reqs)).encode()}
        result["additive_lines"] = sorted(set(reqs))
        source, origin = GENERATED, f" (from {manager})"
    uv = uv_tool(build, result["warnings"]) if installer(build) == "uv" else None
    if uv is None:
        step = pip_step(source, origin)
    else:
        step = uv_step(build, uv, source, origin, result)
    step["env"] = {**step["env"], **stack_path}
    result["steps"] = [step]
    return result


INSTALLER = "python-installer"
# a build that may make a shared virtualenv layer leaves the bytecode to it (False: compiled in the build)
DEFER_BYTECODE = True
UV_BIN_DIR = f"/build/uv-{wheels.UV_VERSION}"
SHARED_WHEELS = "/build/wheels"
PIP_VENV = ["python3", "-m", "venv", "--without-pip", VENV]
# pip compiles one file at a time; compileall -j 0 uses every core
COMPILE_ALL = [f"{VENV}/bin/python", "-m", "compileall", "-q", "-j", "0", f"{VENV}/lib"]
# the app's own index settings: with any of them the shared cache (files of the server's index) is not used
INDEX_VARS = (
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
)
INDEX_OPTION = re.compile(r"\s*(?:-i|-f|--index-url|--extra-index-url|--find-links|--no-index|--index)(?:[\s=].*)?")
NETWORK_FAILURES = ["error sending request", "tcp connect error", "dns error", "Could not connect", "timed out"]


def installer(build) -> str:
    """``buildpacks:set APP python-installer uv|pip`` (uv by default)."""
    return str((getattr(build, "settings", None) or {}).get(INSTALLER) or "uv")


def python_index(build) -> str:
    return str((getattr(build, "settings", None) or {}).get("python-index") or wheels.DEFAULT_INDEX)


def custom_index(build, files: list[str]) -> str | None:
    """What makes the app use an index of its own (a config var or a requirements option), or None."""
    for var in INDEX_VARS:
        if build.config.get(var):
            return f"config var {var}"
    for rel in files:
        if rel.endswith(".txt"):
            for line in build.read(rel).splitlines():
                if INDEX_OPTION.fullmatch(line):
                    return f"{rel}: {line.split()[0]}"
    return None


def uv_tool(build, warnings: list[str]) -> str | None:
    """The server's verified uv (fetched once); None (pip, with a warning) when it cannot be had."""
    from .node import tls_verify

    if build.cache_dir is None:
        warnings.append("no server cache for uv: installing with pip")
        return None
    try:
        directory, _ = wheels.ensure_uv(
            build.cache_dir, wheels.Index(python_index(build), tls_verify(build)), wheels.host_arch()
        )
    except (wheels.IndexUnreachable, wheels.HashMismatch, SkiffError, OSError) as exc:
        warnings.append(f"uv {wheels.UV_VERSION} is not on this server and could not be fetched ({exc}): using pip")
        return None
    return str(directory)


def pip_step(source: str, origin: str) -> dict[str, Any]:
    pip = [
        "python3",
        "-m",
        "pip",
        "--python",
        f"{VENV}/bin/python",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--no-warn-script-location",
        "--no-compile",
        "-r",
        source,
    ]
    return {
        "title": f"Installing dependencies with pip{origin}",
        "run": [PIP_VENV, pip, COMPILE_ALL],
        "env": {"PIP_CACHE_DIR": "/build/cache/pip", "PIP_ROOT_USER_ACTION": "ignore"},
    }


def uv_step(build, uv_dir: str, source: str, origin: str, result: dict[str, Any]) -> dict[str, Any]:
    """uv into the venv: the app's own cache read-write, the server's shared wheels read-only."""
    from . import venvs

    uv = f"{UV_BIN_DIR}/uv"
    env = {
        "UV_CACHE_DIR": "/build/cache/uv",
        "UV_LINK_MODE": "copy",  # the cache is another file system than /app
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }
    for pip_var, uv_var in (("PIP_INDEX_URL", "UV_INDEX_URL"), ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL")):
        if build.config.get(pip_var) and not build.config.get(uv_var):
            env[uv_var] = build.config[pip_var]  # Heroku-style pip settings keep working
    install = [uv, "pip", "install", "--python", f"{VENV}/bin/python", "-r", source]
    read_only = {UV_BIN_DIR: uv_dir}
    step: dict[str, Any] = {"title": f"Installing dependencies with uv {wheels.UV_VERSION}{origin}", "env": env}
    own = custom_index(build, result["files"])
    if own or build.cache_dir is None:
        if own:
            result["notes"].append(f"a package index of the app's own ({own}): the shared wheel cache is not used")
    else:
        cache = wheels.WheelCache(build.cache_dir)
        read_only[SHARED_WHEELS] = str(cache.ensure())
        install += ["--default-index", python_index(build), "--find-links", SHARED_WHEELS]
        step["report_installed"] = VENV
        step["fallback"] = {
            "instead_of": install,
            "when": NETWORK_FAILURES,
            "note": "the package index did not answer: installing from the caches (uv --offline)",
            "run": [*install, "--offline"],
        }
        shared, lines = shareable(build, result), list(result["additive_lines"])
        if shared:
            step["shared_venv"] = {
                "resolve": [
                    uv,
                    "pip",
                    "compile",
                    "-q",
                    source,
                    "--python",
                    "python3",  # the stack's, which the venv is made of (resolved before it is made)
                    "--default-index",
                    python_index(build),
                    "--find-links",
                    SHARED_WHEELS,
                    "--no-header",
                    "--no-annotate",
                    "--output-file",
                    venvs.RESOLVED,
                ],
                "output": venvs.RESOLVED,
                "when": NETWORK_FAILURES,
            }
            result["shared_layers"] = venvs.SharedVenvs(build.cache_dir, build.stack.id).candidates(lines)
        uv_host = uv_dir
        result["after_install"] = [
            lambda reports, client: promote(build, reports, client, (uv_host, lines) if shared else None)
        ]
    result["read_only"] = read_only
    step["venv"] = VENV  # made by the driver itself (the stack's venv module, without pip)
    step["run"] = [install]
    # the shared cache's precompiled bytecode first, then compileall -j 0 for the rest; when the build
    # may make a shared virtualenv layer, the rest is compiled there, beside the deploy, and the app's
    # dependency image becomes that layer (pipeline.adopt_shared_layer): not on the build's path
    step["compile"] = {"venv": VENV, "wheels": SHARED_WHEELS if SHARED_WHEELS in read_only else None}
    if "shared_venv" in step and DEFER_BYTECODE:
        step["compile"]["defer"] = True
    return step


def shareable(build, result: dict[str, Any]) -> bool:
    """May this build's dependencies come from (and make) a shared virtualenv layer? See :mod:`.venvs`."""
    texts = [build.read(f) for f in result["files"] if f.endswith(".txt")]
    texts += [data.decode() for data in result["generated"].values()]
    from . import venvs

    return venvs.eligible(build.config, texts)


def promote(
    build, reports: dict[str, Any], client: Any = None, shared: tuple[str, list[str]] | None = None
) -> list[str]:
    """After the build: add the index's own files of what it installed to the shared cache (verified).

    Then the bytecode of those wheels is compiled, once per Python minor, in a container Skiff
    runs itself (no network, no app input), for the next builds to copy instead of compiling.
    With ``shared`` (the server's uv directory and the app's requirement lines), when every
    installed distribution is a verified wheel, the shared virtualenv layer of that set is
    made too (:func:`skiff_buildpacks.venvs.build_shared`).
    """
    from . import venvs
    from .node import tls_verify

    installed = wheels.parse_report(reports.get("installed"))
    if not installed or build.cache_dir is None:
        return []
    index = wheels.Index(python_index(build), tls_verify(build))
    cache = wheels.WheelCache(build.cache_dir)
    outcome = cache.promote(installed, index)
    if client is not None and outcome.files:
        started = time.monotonic()
        try:
            tag = wheels.pyc_tag(build.stack.python)
            todo = wheels.missing_bundles(cache, tag, outcome.files)
            outcome.compiled = wheels.compile_bundles(client, build.stack.image, build.stack.user, cache, tag, todo)
        except Exception as exc:  # the build stands; the next one compiles for itself
            outcome.errors.append(f"bytecode: {type(exc).__name__}: {exc}")
        complete = not outcome.errors and not outcome.not_on_index and len(outcome.files) == len(installed)
        if shared is not None and complete:
            try:
                _, made = venvs.build_shared(
                    client, build.stack, shared[0], UV_BIN_DIR, cache, outcome.files, shared[1], VENV
                )
                outcome.shared_layer = "made" if made else "present"
            except Exception as exc:  # the next app installs for itself
                outcome.errors.append(f"shared layer: {type(exc).__name__}: {exc}")
        outcome.seconds += time.monotonic() - started
    lines = [outcome.summary()]
    if outcome.errors:
        lines.append(f"not cached: {'; '.join(outcome.errors[:3])}" + (" ..." if len(outcome.errors) > 3 else ""))
    return lines


def requirement_files(build, first: str) -> list[str]:
    """requirements.txt and the files it includes with -r / -c (relative, inside the source)."""
    seen: list[str] = []
    todo = [first]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        if rel.startswith("/") or ".." in rel.split("/") or not build.has(rel):
            raise SkiffError(f"requirements file {rel} is missing or outside the app")
        seen.append(rel)
        base = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        for line in build.read(rel).splitlines():
            match = REQ_INCLUDE.match(line)
            if match:
                todo.append(base + match.group(1))
    return seen


def _toml(text: str, name: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except Exception as exc:
        raise SkiffError(f"{name} is not valid TOML: {exc}") from exc


def _pin(name: str, version: str, marker: str | None = None) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or not re.fullmatch(r"[A-Za-z0-9.+!_-]+", version):
        raise SkiffError(f"unsupported lock entry {name!r} {version!r}")
    line = f"{name}=={version}"
    if marker:
        if "\n" in marker:
            raise SkiffError(f"unsupported marker for {name}")
        line += f" ; {marker}"
    return line


def pipfile_requirements(text: str) -> list[str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SkiffError(f"Pipfile.lock is not valid JSON: {exc}") from exc
    reqs = []
    for name, spec in sorted((data.get("default") or {}).items()):
        version = (spec or {}).get("version", "")
        if not version.startswith("=="):
            raise SkiffError(
                f"Pipfile.lock: {name} is not pinned to a registry version (git/path sources are not supported)"
            )
        reqs.append(_pin(name, version[2:], spec.get("markers")))
    return reqs


def poetry_requirements(text: str) -> list[str]:
    data = _toml(text, "poetry.lock")
    reqs = []
    for pkg in data.get("package", []):
        groups = pkg.get("groups") or [pkg.get("category", "main")]
        if "main" not in groups:
            continue
        source = pkg.get("source") or {}
        if source.get("type") not in (None, "legacy"):
            raise SkiffError(f"poetry.lock: {pkg.get('name')} comes from a {source.get('type')} source (not supported)")
        markers = pkg.get("markers")
        marker = (
            markers if isinstance(markers, str) else (markers or {}).get("main") if isinstance(markers, dict) else None
        )
        reqs.append(_pin(pkg["name"], pkg["version"], marker))
    return sorted(reqs)


def uv_requirements(text: str) -> list[str]:
    """The packages the project needs at runtime: its dependencies, transitively (no dev groups)."""
    data = _toml(text, "uv.lock")
    packages = data.get("package", [])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for pkg in packages:
        by_name.setdefault(pkg["name"], []).append(pkg)
    roots = [p for p in packages if "editable" in (p.get("source") or {}) or "virtual" in (p.get("source") or {})]
    roots = [r for r in roots if (r.get("source") or {}).get("editable", (r.get("source") or {}).get("virtual")) == "."]
    if not roots:
        raise SkiffError('uv.lock has no project package (source = ".")')
    wanted: dict[tuple[str, str], str | None] = {}
    todo = [(dep, None) for dep in roots[0].get("dependencies", [])]
    while todo:
        dep, _ = todo.pop()
        candidates = by_name.get(dep["name"], [])
        if "version" in dep:
            candidates = [c for c in candidates if c.get("version") == dep["version"]] or candidates
        if not candidates:
            raise SkiffError(f"uv.lock: dependency {dep['name']} is not in the lock")
        pkg = candidates[0]
        key = (pkg["name"], pkg.get("version", ""))
        if key in wanted:
            continue
        source = pkg.get("source") or {}
        if "registry" not in source:
            raise SkiffError(f"uv.lock: {pkg['name']} comes from a non-registry source (not supported)")
        wanted[key] = dep.get("marker")
        todo += [(d, None) for d in pkg.get("dependencies", [])]
        for extra in dep.get("extra", []):
            todo += [(d, None) for d in (pkg.get("optional-dependencies") or {}).get(extra, [])]
    return sorted(_pin(name, version, marker) for (name, version), marker in wanted.items())


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    steps = []
    if build.has("bin/post_compile"):
        steps.append({"title": "Running bin/post_compile", "run": [["bash", "bin/post_compile"]]})
    if build.has("manage.py") and build.config.get("DISABLE_COLLECTSTATIC", "") not in ("1", "true"):
        steps.append(
            {
                "title": "Running manage.py collectstatic --noinput",
                "check": [f"{VENV}/bin/python", "-c", "import django"],
                "run": [[f"{VENV}/bin/python", "manage.py", "collectstatic", "--noinput"]],
            }
        )
    return {"steps": steps}


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    return {}
