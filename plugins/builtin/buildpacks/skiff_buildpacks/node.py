"""The Node.js pack: package.json; ``npm ci`` with a lock file, ``npm install`` without.

node_modules lives in /app/node_modules in the dependency layer (keyed by
package.json and the lock file); the ``build`` script, when present, runs on
every build with the code in place. Default web process: ``npm start``.
"""

from __future__ import annotations

import json
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

from .versions import node_satisfies

NAME = "node"
VERSION = "1"
LOCKS = ("package-lock.json", "npm-shrinkwrap.json")
OTHER_MANAGERS = {"yarn.lock": "yarn", "pnpm-lock.yaml": "pnpm", "bun.lockb": "bun"}


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {"name": NAME, "version": VERSION, "looks_for": "package.json", "order": 20, "label": "Node.js app"}


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
    package_json(build)
    locks = [f for f in LOCKS if build.has(f)]
    others = [f for f in OTHER_MANAGERS if build.has(f)]
    if others and not locks:
        raise SkiffError(f"{others[0]} found: only npm is supported; commit a package-lock.json instead")
    if len(locks) + len(others) > 1:
        raise SkiffError(f"more than one Node.js package manager file: {', '.join(locks + others)}; keep only one")
    note = [n for n in [choose_stack(build)] if n]
    flags = ["--no-audit", "--no-fund", "--loglevel=warn"]
    install = ["npm", "ci", *flags] if locks else ["npm", "install", *flags]
    if not locks:
        note.append("no package-lock.json: using npm install (commit a lock file for repeatable builds)")
    steps = [
        {
            "title": f"Installing dependencies with {' '.join(install[:2])}",
            "run": [install],
            "env": {"npm_config_cache": "/build/cache/npm", "npm_config_update_notifier": "false"},
        }
    ]
    return {
        "label": "Node.js app",
        "notes": note,
        "files": ["package.json", *locks],
        "steps": steps,
        "path": ["/app/node_modules/.bin"],
        "runtime_env": {"NODE_ENV": "production"},
        "exclude": ["node_modules"],
    }


def choose_stack(build) -> str | None:
    """Honour ``engines.node``: keep the stack if its Node.js satisfies it, else use one that does."""
    engines = package_json(build).get("engines") or {}
    requested = engines.get("node") if isinstance(engines, dict) else None
    if not isinstance(requested, str) or not requested.strip():
        return None
    configured = build.stack
    stack = build.switch_to_stack_where(lambda s: node_satisfies(s.node, requested))
    if stack is configured:
        return f"Node.js {stack.node} (satisfies {requested!r} from engines.node)"
    if stack is not None:
        return f"Node.js {stack.node} on stack {stack.image} (for {requested!r} from engines.node)"
    available = ", ".join(f"{s.node} ({s.image})" for s in build.available_stacks() if s.node) or "none"
    raise SkiffError(f"package.json engines.node requests {requested!r}, but no stack has it; available: {available}")


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    if "build" not in scripts(build):
        return {"steps": []}
    return {
        "steps": [
            {
                "title": "Running npm run build",
                "run": [["npm", "run", "build"]],
                "env": {"npm_config_cache": "/build/cache/npm", "npm_config_update_notifier": "false"},
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
