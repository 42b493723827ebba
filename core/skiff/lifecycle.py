"""The deploy pipeline: sequencing only.

:func:`deploy` runs every phase of a push; :func:`redeploy` runs from
``release`` on for a config change, a scale, a restart or a rollback. Both
refuse an app whose deploys ``apps:lock`` locked (one line, nothing recorded;
a restart of the current release still runs),
hold the app's file lock, time each phase, record the release, and on any
error call ``skiff_deploy_failed`` and raise :class:`DeployError`; the
app's current release is then unchanged. Each run is a build
(:mod:`skiff.builds`): recorded with its kind, status and output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from . import builders, builds, events, timeline
from .context import Context
from .contracts import ReleaseMeta
from .deploy import PHASES, REDEPLOY_PHASES, Deploy, Source
from .errors import DeployError, NotFound, SkiffError
from .locks import file_lock, lock_path
from .state import Release

LOCK_TIMEOUT_ENV = "SKIFF_LOCK_TIMEOUT"
#: the property (namespace, key) of an app whose deploys are locked (``apps:lock``)
DEPLOY_LOCK = ("lifecycle", "locked")
DEFAULT_LOCK_TIMEOUT = 900.0


def lock_timeout() -> float:
    try:
        return float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@contextmanager
def app_lock(context: Context, app: str) -> Iterator[None]:
    """Hold ``app``'s deploy lock, saying so when another deploy holds it."""

    def waiting() -> None:
        context.output.step(f"Waiting for another deploy of {app} to finish")

    with file_lock(lock_path(context.root, f"app-{app}"), lock_timeout(), on_wait=waiting):
        timeline.mark("lock.held")
        # A deploy killed mid-way leaves its release pending; it can no longer finish.
        context.state.fail_pending_releases(app)
        builds.fail_running(context.state, app)
        yield


def deploys_locked(context: Context, app: str) -> bool:
    """Whether ``apps:lock`` locked the app's deploys (a property, so a rename moves it)."""
    return bool(context.state.get_property(*DEPLOY_LOCK, app=app))


def lock_deploys(context: Context, app: str, locked: bool) -> None:
    """Lock (``apps:lock``) or unlock (``apps:unlock``) every deploy and redeploy of ``app``."""
    if locked:
        context.state.set_property(*DEPLOY_LOCK, True, app=app)
    else:
        context.state.delete_property(*DEPLOY_LOCK, app=app)


def refuse_if_locked(context: Context, app: str) -> None:
    """Raise one line when the app's deploys are locked: nothing starts, nothing is recorded."""
    if deploys_locked(context, app):
        raise SkiffError(f"app {app} is locked: deploys are refused until apps:unlock {app}")


def deploy(
    context: Context, app: str, source: Source, description: str | None = None, *, build_kind: str | None = None
) -> Release:
    """Run the whole pipeline for ``source``; return the new current release.

    ``build_kind`` names what deployed in the build record (``push``; default: the
    description's first word when it is a known kind, e.g. ``Rebuild``, else ``deploy``).
    """
    context.state.require_app(app)
    refuse_if_locked(context, app)
    with app_lock(context, app):
        refuse_if_locked(context, app)
        d = Deploy(
            context=context,
            app=app,
            kind="deploy",
            description=description or _describe_source(source),
            output=context.output,
            source=source,
            revision=source.revision,
        )
        workdir = Path(tempfile.mkdtemp(prefix=f"{app}-", dir=_tmp_dir(context)))
        d.workdir = workdir
        try:
            return _run(d, PHASES, build_kind or builds.kind_of(d.description, "deploy"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def redeploy(
    context: Context,
    app: str,
    description: str,
    *,
    base: Release | None = None,
    use_base_config: bool = False,
    locked_ok: bool = False,
    build_kind: str | None = None,
) -> Release:
    """Make a new release of an existing image and run it (release phase on).

    ``base`` is the release whose image, processes and meta are reused
    (default: the current one). The config is the app's config as stored now,
    unless ``use_base_config`` (rollback) takes the base release's config.
    ``locked_ok``: the redeploy runs the current release again (a restart, a
    scale, ``ps:start`` at boot), which ``apps:lock`` does not stop.
    ``build_kind``: what deployed, for the build record (``config``; default: the
    description's first word when it is a known kind, e.g. ``Scale``, else ``redeploy``).
    """
    context.state.require_app(app)
    if not locked_ok:
        refuse_if_locked(context, app)
    with app_lock(context, app):
        if not locked_ok:
            refuse_if_locked(context, app)
        current = context.state.current_release(app)
        base = base or current
        if base is None or not base.image:
            raise SkiffError(f"app {app} has not been deployed yet: push it first")
        d = Deploy(
            context=context,
            app=app,
            kind="redeploy",
            description=description,
            output=context.output,
            revision=base.revision,
            builder=base.meta.get("builder"),
            image=base.image,
            processes=dict(base.processes),
            app_json=dict(base.meta.get("app_json", {})),
            meta=cast(ReleaseMeta, dict(base.meta)),
        )
        if use_base_config:
            d.config = dict(base.config)
        return _run(d, REDEPLOY_PHASES, build_kind or builds.kind_of(description, "redeploy"))


def _tmp_dir(context: Context) -> Path:
    path = context.path("tmp")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _describe_source(source: Source) -> str:
    if source.revision:
        return f"Deploy {source.revision[:7]}"
    return f"Deploy from {source.kind}"


def _run(d: Deploy, phases: tuple[str, ...], build_kind: str) -> Release:
    """Run ``phases``, recorded in the event log as one ``deploy`` event of the app and as one
    build whose output file gets every line the deploy writes (and the error line it ends with)."""
    full = d.kind == "deploy"
    record = builds.start(d.context, d.app, build_kind, d.revision if full else None)
    event_id = events.start(d.context, d.kind, d.description, d.app)
    status = 1
    try:
        with record.capture((d.output, d.context.output)):
            release = _run_phases(d, phases)
        status = 0
        return release
    except SkiffError as error:
        record.write(f"!     {error}", last=True)  # what the CLI prints as the deploy's last line
        raise
    except BaseException:
        record.write("!     interrupted", last=True)
        raise
    finally:
        version = d.release.version if d.release is not None else None
        record.finish(status == 0, version, d.revision if full else None)
        events.finish(d.context, event_id, status)


def _run_phases(d: Deploy, phases: tuple[str, ...]) -> Release:
    state = d.context.state
    d.previous = state.current_release(d.app)
    started = time.monotonic()
    try:
        for phase in phases:
            d.phase = phase
            t0 = time.monotonic()
            timeline.mark(f"{phase}.start")
            _PHASE_RUNNERS[phase](d)
            d.timings[phase] = round(time.monotonic() - t0, 3)
            timeline.mark(f"{phase}.end")
    except BaseException as error:  # KeyboardInterrupt too: undo, then re-raise
        failed_phase = d.phase or phases[0]
        d.timings[failed_phase] = round(time.monotonic() - t0, 3)
        _fail(d, failed_phase, error)
        if isinstance(error, Exception):
            raise DeployError(failed_phase, _message(failed_phase, error, d)) from error
        raise
    d.timings["total"] = round(time.monotonic() - started, 3)
    assert d.release is not None
    state.finish_release(d.release, "succeeded", d.timings)
    _report_success(d)
    timeline.mark("deploy.done")
    return d.release


def _message(phase: str, error: BaseException, d: Deploy) -> str:
    text = str(error) or type(error).__name__
    where = phase.replace("_", "-")
    keeps = f"; v{d.previous.version} keeps serving" if d.previous else ""
    return f"{where} failed: {text}{keeps}"


def _fail(d: Deploy, phase: str, error: BaseException) -> None:
    # Call each implementation on its own (in pluggy's order) so that one
    # failing cleanup does not keep the others from running.
    kwargs = {"deploy": d, "phase": phase, "error": error}
    for impl in reversed(d.context.hook.skiff_deploy_failed.get_hookimpls()):
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as exc:  # cleanup must not hide the original error
            d.output.warn(f"cleanup by {impl.plugin_name} failed: {exc}")
    if d.release is not None and d.release.status == "pending":
        d.context.state.finish_release(d.release, "failed", d.timings)


def _receive(d: Deploy) -> None:
    assert d.source is not None
    handled = d.context.hook.skiff_receive(deploy=d)
    if not handled:
        raise SkiffError(f"no plugin can receive {d.source.kind} sources")


def _pre_build(d: Deploy) -> None:
    d.builder = builders.choose(d)
    d.context.hook.skiff_pre_build(deploy=d)


def _build(d: Deploy) -> None:
    d.output.step(f"Building {d.app}" + (f" from {d.revision[:7]}" if d.revision else ""))
    image = d.context.hook.skiff_build(deploy=d)
    if not image:
        if d.builder:
            raise SkiffError(f"the {d.builder} builder returned no image")
        raise SkiffError("no builder could build this app")
    d.image = image
    if d.builder:
        d.meta["builder"] = d.builder


def _release(d: Deploy) -> None:
    state = d.context.state
    # Variables plugins set on deploy.config before the release (e.g. GIT_REV)
    # belong to this image: they are layered over the app's config and kept
    # for every redeploy of it. A rollback brings its whole config along.
    if d.kind == "deploy":
        release_env = dict(d.config)
    else:
        release_env = d.release_env
    if d.kind == "deploy" or not d.config:
        d.config = {**state.effective_config(d.app), **release_env}
    d.meta["app_json"] = d.app_json
    d.release_env = release_env
    d.release = state.create_release(
        d.app,
        description=d.description,
        image=d.image,
        revision=d.revision,
        config=d.config,
        processes=d.processes,
        meta=d.meta,
    )
    d.output.step(f"Releasing {d.app} v{d.release.version} ({d.description})")
    d.context.hook.skiff_release(deploy=d)
    d.release.meta = d.meta


def _deploy(d: Deploy) -> None:
    if not d.context.hook.skiff_deploy(deploy=d):
        raise SkiffError("no scheduler plugin is enabled to run the release")


def _post_deploy(d: Deploy) -> None:
    d.context.hook.skiff_post_deploy(deploy=d)


_PHASE_RUNNERS = {
    "receive": _receive,
    "pre_build": _pre_build,
    "build": _build,
    "release": _release,
    "deploy": _deploy,
    "post_deploy": _post_deploy,
}


def _report_success(d: Deploy) -> None:
    out = d.output
    phases = ", ".join(f"{p.replace('_', '-')} {t:.1f}s" for p, t in d.timings.items() if p != "total")
    out.step(f"Done in {d.timings['total']:.1f}s ({phases})")
    if d.urls:
        out.banner("Application deployed:")
        for url in d.urls:
            out.info(url)


def rollback_target(context: Context, app: str, version: int | None) -> Release:
    """The release to roll back to: ``version``, or the one before the current."""
    state = context.state
    if version is not None:
        release = state.get_release(app, version)
        if release.status != "succeeded":
            raise SkiffError(f"v{version} of {app} did not deploy successfully; cannot roll back to it")
        return release
    current = state.current_release(app)
    if current is None:
        raise NotFound(f"app {app} has no release to roll back from")
    earlier = [r for r in state.releases(app, "succeeded") if r.version < current.version]
    if not earlier:
        raise NotFound(f"app {app} has no earlier release to roll back to")
    return earlier[-1]
