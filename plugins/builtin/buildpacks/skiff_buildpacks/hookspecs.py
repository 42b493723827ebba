"""Hooks of the buildpacks plugin: a language pack is itself a plugin.

A pack implements these hooks and answers only when ``pack`` is its own name
(return ``None`` otherwise), like pytest's collectors. ``build`` is the
:class:`skiff_buildpacks.build.Build` of the current build (read-only for
packs except ``build.use_stack``; ``build.available_stacks()`` lists the stacks); see docs/builders.md.

Steps are plain dicts run by the in-container driver, never by a shell::

    {"title": "Installing dependencies with pip",   # "-----> ..." line; optional
     "run": [["python3", "-m", "venv", ...], [...]],  # argument lists, in order
     "env": {"KEY": "value"},                        # extra environment
     "check": ["python", "-c", "import django"]}     # run the step only if this exits 0
"""

from __future__ import annotations

from typing import Any

from skiff import hookspec


@hookspec
def skiff_buildpack_describe() -> dict[str, Any] | None:
    """Describe a pack: ``{"name", "version", "looks_for", "order"}``.

    ``looks_for`` is shown when nothing is detected ("requirements.txt,
    Pipfile.lock, ..."); detection tries packs by ascending ``order``.
    ``"run_image": True`` says the pack's apps run on the stack's run image (its
    interpreters and runtime libraries, no compilers): when every pack of a build
    says so, the app image is based on it; otherwise (a pack that needs a
    toolchain layer at run time, such as ruby or php) on the build image.
    """


@hookspec(firstresult=True)
def skiff_buildpack_detect(pack: str, build: Any) -> bool | None:
    """Pack ``pack``: return True if it can build ``build.source``, False if not."""


@hookspec(firstresult=True)
def skiff_buildpack_dependencies(pack: str, build: Any) -> dict[str, Any] | None:
    """Pack ``pack``: how to install the dependencies (the cached layer).

    Return ``{"label": "Python app", "files": [relative paths], "generated":
    {relative path: bytes}, "steps": [...], "env": {runtime env},
    "exclude": [relative paths left out of the code layer]}``. The layer is
    keyed by a hash of ``files``, ``generated``, ``steps``, the stack image and
    the pack version, and reused while the key is unchanged. ``files`` and
    ``generated`` are placed under /app before the steps run. A pack whose
    install only adds to what is there (pip) may return ``"additive_lines"``
    (its normalised requirement lines): when the previous layer's lines are a
    subset of the new ones, the steps run on top of the previous layer and
    install only what was added. ``"read_only": {container path: server
    directory}`` bind-mounts server caches that only Skiff writes (uv, the
    shared wheels) read-only into the dependency build; ``"after_install":
    [fn(reports, client) -> lines]`` runs on the host once the layer is
    committed, beside the code layer (``reports``: what the driver's steps
    reported, untrusted data); ``"shared_layers": {hash: record}`` names
    shared layers (``record["image"]``) the one install step may resolve to
    (its ``shared_venv`` key, see :mod:`skiff_buildpacks.venvs`).
    ``"run_needs": ["node", "npm"]`` names what
    the app needs of the run image at run time (keys of the stack plugin's
    ``skiff_stack_run_image`` answer that must be non-empty); a run image
    without one keeps the app on the build image. Raise
    ``SkiffError`` for an unusable source (e.g. two package managers).
    """


@hookspec(firstresult=True)
def skiff_buildpack_compile(pack: str, build: Any) -> dict[str, Any] | None:
    """Pack ``pack``: steps run with the code in /app, and extra files.

    Return ``{"steps": [...], "files": {relative path: bytes}}``; runs on
    every build, after the code layer is added. A compiling pack may add
    ``"stage": {"image": ref, "steps": [...], "env": {...}, "outputs": ["bin"]}``:
    the steps run first, in a container of ``image`` (e.g. a toolchain layer from
    ``build.toolchain(...)``) holding the code, and only the ``outputs`` (paths
    under /app) are copied into the app image, which stays on the stack.
    """


@hookspec(firstresult=True)
def skiff_buildpack_processes(pack: str, build: Any) -> dict[str, str] | None:
    """Pack ``pack``: default process types (``{"web": "npm start"}``).

    A Procfile's types win; defaults only fill the types it does not name.
    """
