"""The deploy object passed to every lifecycle hook, and the source it deploys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contracts import BuildOptions, MetaFields, ReleaseMeta, Stash

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context
    from .output import Output
    from .state import Release, State

PHASES = ("receive", "pre_build", "build", "release", "deploy", "post_deploy")
REDEPLOY_PHASES = ("release", "deploy", "post_deploy")


@dataclass
class Source:
    """Where a deploy's code comes from.

    ``kind`` names the plugin that can receive it (``git``, ``archive``, ...);
    ``location`` is kind-specific (a repository path, a URL, a file);
    ``revision`` is the commit or version to deploy, when the kind has one.
    """

    kind: str
    location: str
    revision: str | None = None
    ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deploy(MetaFields):
    """One deploy (or redeploy) of one app, shared by every phase.

    Plugins read and fill it: ``skiff_receive`` fills ``workdir`` and
    ``revision``; ``skiff_pre_build`` sets ``processes`` and ``app_json``;
    the core chooses ``builder`` (the name of the builder that builds it: see
    :mod:`skiff.builders`) before ``skiff_pre_build``; ``skiff_build``
    returns the ``image``; the core sets ``release``;
    ``skiff_deploy`` starts processes. Variables that plugins put in ``config``
    before the release phase (e.g. ``GIT_REV``) are layered over the app's
    config and kept for redeploys of the same image. ``meta`` is stored with the release
    (JSON values only): a :class:`~skiff.contracts.ReleaseMeta`, whose most shared
    keys are typed properties (``deploy.container_port``, ``deploy.upstreams``, ...:
    :class:`~skiff.contracts.MetaFields`). ``build_options`` are the docker build
    options builders may apply (the docker plugin fills them in ``skiff_pre_build``).
    ``stash`` holds a plugin's private values for this deploy under typed keys
    (:class:`~skiff.contracts.StashKey`); ``scratch`` / ``scratch_for(plugin)`` is
    the same space, untyped.
    """

    context: Context
    app: str
    kind: str  # "deploy" (full pipeline) or "redeploy" (from release on)
    description: str
    output: Output
    source: Source | None = None
    workdir: Path | None = None
    revision: str | None = None
    builder: str | None = None
    image: str | None = None
    processes: dict[str, str] = field(default_factory=dict)
    app_json: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    meta: ReleaseMeta = field(default_factory=lambda: ReleaseMeta())
    release: Release | None = None
    previous: Release | None = None
    urls: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    scratch: dict[str, dict[str, Any]] = field(default_factory=dict)
    phase: str | None = None
    build_options: BuildOptions = field(default_factory=lambda: BuildOptions())

    @classmethod
    def of_release(cls, context: Context, app: str, release: Release, description: str) -> Deploy:
        """A redeploy of ``release`` itself (its image, processes, app.json, config and meta, and
        the release object), for a scheduler that starts it again outside the pipeline, e.g.
        under the new name of a renamed app (``skiff_app_renamed``)."""
        return cls(
            context=context,
            app=app,
            kind="redeploy",
            description=description,
            output=context.output,
            revision=release.revision,
            image=release.image,
            processes=dict(release.processes),
            app_json=dict(release.meta.get("app_json") or {}),
            config=dict(release.config),
            meta=ReleaseMeta(**release.meta),
            release=release,
        )

    @property
    def stash(self) -> Stash:
        """This deploy's per-plugin values under typed keys: ``deploy.stash[KEY]`` (docs/contracts.md)."""
        return Stash(self.scratch)

    def scratch_for(self, plugin: str) -> dict[str, Any]:
        """The scratch dict of one plugin, created on first use (untyped; prefer :attr:`stash`)."""
        return self.scratch.setdefault(plugin, {})

    @property
    def state(self) -> State:
        return self.context.state
