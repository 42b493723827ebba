"""Builder choice: which installed builder turns a deploy's source into an image.

Builders declare themselves with the ``skiff_builders`` hook (a list of
:class:`BuilderInfo`). At the start of the ``pre_build`` phase the core sets
``deploy.builder`` to the chosen one's name:

1. the builder that owns the deploy's source kind (``BuilderInfo.sources``:
   the git plugin's ``image`` builder owns ``image`` sources, which have no
   source tree to build), whatever is forced;
2. the builder forced for the app with ``builder:set APP selected NAME``
   (the ``builder`` / ``selected`` property); it must be installed;
3. otherwise the first builder, by ascending ``order`` (then name), whose
   ``detect(deploy)`` returns true: the dockerfile builder (order 100) when
   the source has a Dockerfile, then the buildpacks builder (order 1000, the
   catch-all);
4. otherwise ``None``.

``skiff_build`` implementations build only when ``deploy.builder`` names
them. See docs/builders.md and docs/hooks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .errors import SkiffError, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context
    from .deploy import Deploy

PROPS = "builder"  # property namespace shared with the builder commands
SELECTED = "selected"  # per-app property: the forced builder's name
NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,39}\Z")
DEFAULT_ORDER = 500


@dataclass(frozen=True)
class BuilderInfo:
    """One builder a plugin provides.

    ``name`` is what ``builder:set APP selected NAME`` takes and what
    ``deploy.builder`` holds; ``order`` places it in detection (ascending:
    dockerfile is 100, buildpacks 1000); ``detect(deploy)`` says whether it
    should build this source when nothing is forced (``None``: only when
    selected); ``description`` is shown by ``builder:report``; ``sources``
    names source kinds (:class:`skiff.deploy.Source`) this builder alone can
    build: a deploy of one of them uses it even when another is forced.
    """

    name: str
    order: int = DEFAULT_ORDER
    detect: Callable[[Deploy], bool] | None = None
    description: str = ""
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name or ""):
            raise ValueError(f"invalid builder name {self.name!r}")


def installed(context: Context) -> dict[str, BuilderInfo]:
    """Every declared builder by name, in detection order.

    When two plugins declare the same name, the one pluggy calls first wins
    (an installed plugin before a builtin ``trylast`` one).
    """
    found: dict[str, BuilderInfo] = {}
    for result in context.hook.skiff_builders():
        for info in result or ():
            found.setdefault(info.name, info)
    return {info.name: info for info in sorted(found.values(), key=lambda i: (i.order, i.name))}


def listing(builders: dict[str, BuilderInfo]) -> str:
    return ", ".join(builders) or "none"


def validate_name(context: Context, name: str) -> str:
    """``name`` if it is an installed builder, else a :class:`ValidationError` listing them."""
    builders = installed(context)
    if name not in builders:
        raise ValidationError(f"unknown builder {name!r}; installed: {listing(builders)}")
    return name


def selected(context: Context, app: str) -> str:
    """The builder forced for ``app`` with ``builder:set``, or ``""``."""
    return context.state.get_property(PROPS, SELECTED, app=app, default="") or ""


def choose(deploy: Deploy) -> str | None:
    """The builder for ``deploy``: the source kind's own, else the forced one, else the first that detects it."""
    builders = installed(deploy.context)
    kind = deploy.source.kind if deploy.source is not None else None
    for info in builders.values():
        if kind in info.sources:
            return info.name
    forced = selected(deploy.context, deploy.app)
    if forced:
        if forced not in builders:
            raise SkiffError(
                f"builder {forced!r} is selected for {deploy.app} (builder:set) but is not installed; "
                f"installed: {listing(builders)}"
            )
        return forced
    for info in builders.values():
        if info.detect is not None and info.detect(deploy):
            return info.name
    return None
