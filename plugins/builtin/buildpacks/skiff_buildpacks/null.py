"""The null pack: Dokku's null buildpack. Nothing is installed; the app runs as it is.

Detected by a regular file named ``.null`` or ``null`` at the app's root (tried
before every other pack: the file is the app's own choice), or chosen with
``.buildpacks``, ``BUILDPACK_URL`` or ``buildpacks:set`` naming ``null`` or the
null buildpack's URL (``https://github.com/ryandotsmith/null-buildpack``). The
image is the stack with the app's files under /app, so the processes of the
Procfile run with the stack's interpreters (``python3``, ``node``, ``sh``).
No default process types: the Procfile says what runs.
"""

from __future__ import annotations

from typing import Any

from skiff import hookimpl

NAME = "null"
VERSION = "1"
MARKERS = (".null", "null")


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {
        "run_image": True,
        "name": NAME,
        "version": VERSION,
        "looks_for": ".null or null",
        "order": 5,
        "label": "Null app (no build step)",
    }


def _marker(build, name: str) -> bool:
    return build.has(name) and (build.source / name).is_file()


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return any(_marker(build, name) for name in MARKERS)


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    return {"label": "Null app (no build step)", "notes": ["installing nothing: the app runs as it is pushed"]}


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    return {}


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    return {}
