"""Hooks of the stack plugin: builders ask it for the stacks of Debian suites (see docs/hooks.md).

Declared through ``skiff_addhooks``; a builder calls them as
``context.hook.skiff_stack_*`` when they exist (the stack plugin may be disabled).
"""

from __future__ import annotations

from typing import Any

from skiff import hookspec


@hookspec(firstresult=True)
def skiff_stack_suites(context: Any) -> list[dict[str, str]] | None:
    """The Debian suites a stack can be made of on demand, built or not.

    Called by a builder (buildpacks) when it looks for a stack that has the
    Python version an app asks for. Returns ``[{"suite": "forky", "image":
    "skiff/stack:forky", "python": "3.14"}, ...]`` (``python``: the minor the
    stack's ``python3`` runs), or ``None``. firstresult.
    """


@hookspec(firstresult=True)
def skiff_stack_ensure(context: Any, image: str, output: Any) -> dict[str, str] | None:
    """Make sure the stack ``image`` exists and was made by this version's recipe.

    Called by a builder before it builds on ``image`` (every push). A missing
    ``skiff/stack:SUITE`` is built (once: a per-suite lock makes a second push
    wait for the first one's build) unless the global setting
    ``stack:set --global build-on-push false`` says no, then one
    :class:`~skiff.errors.SkiffError` line says how to build it; a stale one
    (another recipe version) is rebuilt. Progress goes to ``output``. Returns
    the image's labels, or ``None`` when ``image`` is not a stack this plugin
    makes (a registry image). firstresult.
    """


@hookspec(firstresult=True)
def skiff_stack_run_image(context: Any, image: str, output: Any) -> dict[str, str] | None:
    """The run image of the build image ``image``: its interpreters and runtime libraries, no compilers.

    Called by a builder (buildpacks) after it built an app's dependencies on
    ``image`` (a current ``skiff/stack:SUITE``), to base the app's image on the
    run image instead. A missing run image, or one derived from an older build
    image or by another run recipe, is derived now (under the suite's lock,
    progress to ``output``) unless ``build-on-push`` is off; a derivation that
    fails is one warning on ``output`` and the answer ``None``. Returns ``{"image":
    "skiff/stack-run:SUITE", "id": IMAGE_ID, "python": ..., "node": ...,
    "npm": ..., "of": BUILD_IMAGE_ID}`` (the versions it runs: the build image's
    own; ``npm`` empty when it has none; ``of``: the id of the build image it was
    derived from), or ``None`` when there is no run image to use (not a
    stack this plugin makes, or build-on-push off): the app then runs on the
    build image. firstresult.
    """
