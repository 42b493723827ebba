"""The Node.js pack: package.json; ``npm ci`` with a lock file, ``npm install`` without, or yarn / pnpm.

node_modules lives in /app/node_modules in the dependency layer (keyed by
package.json and the lock file); yarn 2+ with Plug'n'Play keeps /app/.pnp.cjs and
the package archives (/app/.yarn/cache) there instead. The ``build`` script, when
present, runs on every build with the code in place. Default web process: ``npm start``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

NAME = "node"
VERSION = "1"


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": VERSION,
        "looks_for": "package.json",
        "order": 20,
        "label": "Node.js app",
        "run_image": True,
    }


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return build.has("package.json")


def package_json(build) -> dict[str, Any]:
    if not build.has("package.json"):
        raise SkiffError("the node buildpack needs a package.json")
    try:
        data = json.loads(build.read("package.json"))
    except ValueError as exc:
        raise SkiffError(f"package.json is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SkiffError("package.json must be a JSON object")
    return data


def scripts(build) -> dict[str, Any]:
    value = package_json(build).get("scripts") or {}
    return value if isinstance(value, dict) else {}


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    from . import node_tools

    pkg = package_json(build)
    choice = node_tools.choose(build, pkg)
    note, node = choose_node(build)
    tool: dict[str, Any] = {"notes": [], "archives": []}
    if choice.tool is not None:
        if build.cache_dir is None:
            raise SkiffError("this build has no server cache directory for package manager releases")
        node_version = node.get("version") or build.stack.node
        tool = node_tools.provide_tool(
            build, choice, node_version, build.cache_dir / "node", node_registry(build), tls_verify(build)
        )
    elif choice.yarn_path:
        note.append(f"Using the app's own yarn release ({choice.what} {choice.yarn_path})")
    note += tool["notes"]
    if choice.berry:
        note.append(node_tools.berry_note(choice, tool.get("version")))
    step = node_tools.install_step(choice)
    run = step["run"]
    # the stack's npm needs Node.js 14.17: for older releases the stack's Node.js runs npm itself
    # (the scripts it runs still find the app's release first on PATH)
    if choice.name == "npm" and choice.tool is None and node.get("old_node"):
        run = ["/usr/bin/node", "/usr/bin/npm", *run[1:]]
    if choice.name == "npm" and not choice.lock:
        note.append("no package-lock.json: using npm install (commit a lock file for repeatable builds)")
    verb = "ci" if choice.name == "npm" and choice.lock else "install"
    steps = [{"title": f"Installing dependencies with {choice.name} {verb}", "run": [run], "env": step["env"]}]
    installed = [f".heroku/{choice.name}", ".heroku/bin"] if choice.tool is not None else []
    return {
        "label": "Node.js app",
        "notes": note,
        "files": node_tools.dependency_files(build, choice),
        "steps": steps,
        "path": [
            "/app/node_modules/.bin",
            *([node_tools.BIN_HOME] if choice.tool is not None else []),
            *node.get("path", []),
        ],
        "env": node.get("env", {}),
        "archives": node.get("archives", []) + tool["archives"],
        "runtime_env": {"NODE_ENV": "production", **node_tools.berry_runtime(choice)},
        # on the run image: the stack's Node.js unless the layer has a release, npm unless it has its own
        "run_needs": ([] if node else ["node"]) + ([] if choice.tool is not None and choice.name == "npm" else ["npm"]),
        "exclude": ["node_modules", *([".heroku/node"] if node else []), *installed, *node_tools.berry_exclude(choice)],
    }


DEFAULT_REGISTRY = "https://registry.npmjs.org"
VERSION_FILES = (".nvmrc", ".node-version")
MAX_SHOWN = 80


def node_registry(build) -> str:
    """The registry Node.js releases come from: the global ``buildpacks:set --global node-registry URL``."""
    return str(build.settings.get("node-registry") or DEFAULT_REGISTRY)


def tls_verify(build) -> str | bool:
    """The host's CA bundle when builds trust it (``trust-host-ca``, ``ca-bundle``), else requests' own."""
    bundle = build.settings.get("ca-bundle") or "/etc/ssl/certs/ca-certificates.crt"
    return bundle if build.settings.get("trust-host-ca", True) and os.path.isfile(bundle) else True


def requested_node(build) -> tuple[str, str] | None:
    """``(where, text)`` of the app's Node.js request: engines.node, else .nvmrc, else .node-version."""
    engines = package_json(build).get("engines") or {}
    value = engines.get("node") if isinstance(engines, dict) else None
    if isinstance(value, str) and value.strip():
        return "engines.node", value.strip()
    for name in VERSION_FILES:
        if build.has(name):
            for line in build.read(name).splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    return (name, line) if line.lower() != "system" else None
    return None


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def choose_node(build) -> tuple[list[str], dict[str, Any]]:
    """Honour the app's Node.js request: the stack's Node.js when it satisfies it, else a registry release.

    Returns the lines to print and what to add to the dependencies (the release's
    archive, PATH, env); nothing to add when the stack's Node.js is used.
    """
    from .node_dist import HOME, NodeCache, host_arch, parse_request, provide
    from .semver import InvalidRange, Version

    request = requested_node(build)
    if request is None:
        return [], {}
    what, text = request
    requested, newest_meant = parse_request(text, what)
    shown = _shown(text)
    stack_node = build.stack.node
    try:
        fits = bool(stack_node) and not newest_meant and requested.test(Version.parse(stack_node))
    except InvalidRange:
        fits = False
    if fits:
        return [f"Node.js {stack_node} from the stack (satisfies {what} {shown})"], {}
    if build.cache_dir is None:
        raise SkiffError("this build has no server cache directory for Node.js releases")
    cache = NodeCache(build.cache_dir / "node", node_registry(build), host_arch(), tls_verify(build))
    version, archive, lines = provide(cache, requested, what, shown)
    extra = {
        "archives": [{"path": str(archive), "key": f"{cache.package}@{version}"}],
        "path": [f"{HOME}/bin"],
        "env": {"npm_config_nodedir": HOME},
        "old_node": Version.parse(version) < Version(14, 17, 0),
        "version": version,
    }
    return lines, extra


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    if "build" not in scripts(build):
        return {"steps": []}
    from . import node_tools

    choice = node_tools.choose(build, package_json(build))
    step = node_tools.install_step(choice)
    command = step["run"][: 2 if choice.yarn_path else 1]
    return {
        "steps": [
            {
                "title": f"Running {choice.name} run build",
                "run": [[*command, "run", "build"]],
                "env": step["env"],
            }
        ]
    }


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    if "start" in scripts(build) or build.has("server.js"):
        return {"web": "npm start"}
    return {}
