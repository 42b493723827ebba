"""The static pack: index.html at the root, a public/ directory, or a .static file.

Served by a small Python static server (no directory listings, no dotfiles)
on $PORT; the root is public/ when it exists, else the app's root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skiff import hookimpl

NAME = "static"
VERSION = "1"
SERVER = ".skiff/static_server.py"


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "run_image": True,
        "name": NAME,
        "version": VERSION,
        "looks_for": "index.html, public/ or .static",
        "order": 90,
        "label": "Static site",
    }


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return build.has("index.html") or build.has(".static") or (build.source / "public").is_dir()


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    return {"label": "Static site"}


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    return {"files": {SERVER: Path(__file__).with_name("static_server.py").read_bytes()}}


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    root = "/app/public" if (build.source / "public").is_dir() else "/app"
    return {"web": f"python3 /app/{SERVER} {root}"}
