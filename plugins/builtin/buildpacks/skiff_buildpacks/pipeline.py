"""The buildpacks build, step by step: packs, plan, dependency layer, code layer, record.

:func:`build_image` is what the plugin's ``skiff_build`` runs when
``deploy.builder`` is ``buildpacks``; each step is a small function over a
:class:`Session` (the build's engine client, packs and runner) and the
merged :class:`~skiff_buildpacks.plan.PackPlan`.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from skiff import background
from skiff.deploy import Deploy
from skiff.errors import SkiffError

from . import build as build_steps
from .plan import PackPlan
from .plugin import PLUGIN, _image, _prune_deps, describe_packs, docker_client, select_packs, settings

# A new dependency layer's /app for the run image is read from its build container while the engine
# commits it, and loaded onto the run image with the code layer in one call; a shared virtualenv
# layer's copy onto the run image is made once per set, beside the build that made the set
# (False: a container of the committed layer is read and the copy loaded on its own, per app, as
# before; benchmarks compare the two).
EXPORT_FOR_RUN_IMAGE = True
# With the run image, a new dependency layer is that archive of /app loaded on the stack image (in the
# code layer's load, beside the run copy) instead of a commit of its build container (False: committed,
# as before; benchmarks compare the two).
LOAD_DEPENDENCY_LAYER = True
# A new dependency layer's after-install work (promoting verified wheels into the shared cache, untagging
# older layers) starts once the code layer is built and loaded, so it does not take the CPUs from the
# cold build's own last steps (False: it starts as soon as the install is done, as before; benchmarks
# compare the two).
AFTER_INSTALL_AFTER_CODE = True

# Work of a build still running when the build ended (untagging old layers, the packs' after-install
# work) goes on beside the release and the deploy, tracked by skiff.background: the push waits for
# it before it ends.


@dataclass
class Session:
    """One buildpacks build: the deploy, the engine client, the packs' view and the container runner."""

    deploy: Deploy
    client: Any
    build: build_steps.Build
    described: dict[str, dict[str, Any]]

    @cached_property
    def runner(self) -> build_steps.Runner:
        """Made on first use, after the packs chose the stack (its user owns the files)."""
        return build_steps.Runner(self.client, self.build, settings(self.deploy.context, self.deploy.app))

    @property
    def hook(self):
        return self.deploy.context.hook

    @property
    def packs(self) -> list[str]:
        return self.build.packs


@dataclass
class DepsLayer:
    """The image the code layer starts from, and what the dependency step did."""

    base: str  # image reference (the stack image, or skiff/<app>:deps-<key>)
    image_id: str
    key: str = ""
    built: bool = False
    after: list[Future] = field(default_factory=list)  # the packs' after-install work (e.g. cache promotion)
    start_after: Callable[[], None] | None = None  # starts that work (and the untagging), once
    pending: Any = None  # a layers.NewImage not loaded yet: loaded with the code layer, in one call
    app_tar: Any = None  # the new layer's /app as read from its build container (for the run image), or None
    reports: dict[str, Any] = field(default_factory=dict)  # what the install's driver reported

    @property
    def bytecode_deferred(self) -> bool:
        """The install left the venv's bytecode to the shared layer of its wheels (made beside the deploy)."""
        return self.reports.get("bytecode") == "deferred"


def build_image(deploy: Deploy) -> str:
    """Build ``deploy.workdir`` with the packs; return the image reference."""
    started = time.monotonic()
    session = start(deploy)
    layer = None
    try:
        plan = plan_dependencies(session)
        run = run_image(session, plan)
        layer = dependency_layer(session, plan, export=run is not None and EXPORT_FOR_RUN_IMAGE)
        if not AFTER_INSTALL_AFTER_CODE:
            start_after_install(layer)
        plan_code(session, plan)
        fill_default_processes(deploy, plan)
        t0 = time.monotonic()
        bid = build_steps.build_id()
        try:
            image_id = code_layer(session, plan, layer, bid, run)
        finally:
            start_after_install(layer)
            finish_after_install(deploy, layer)
        if layer.after and (layer.bytecode_deferred or (run is not None and EXPORT_FOR_RUN_IMAGE)):
            background.track(_background(after_shared_cache, session, layer, run))
    finally:
        start_after_install(layer)  # (started already unless the build failed before its code layer)
        if layer is not None and layer.app_tar is not None:
            layer.app_tar.close()
        if "runner" in session.__dict__:
            session.runner.finish()
    ref = build_steps.image_tag(deploy.app, bid)
    record(session, layer, image_id, run)
    deploy.output.step(f"Built {ref} in {time.monotonic() - started:.1f}s (code layer {time.monotonic() - t0:.1f}s)")
    return ref


def start(deploy: Deploy) -> Session:
    """Reach the engine, find the stack, choose the packs."""
    from . import toolchains
    from .stacks import all_stacks, configured_image, ensure_stack, ready_stack, stack_from_image

    context = deploy.context
    assert deploy.workdir is not None
    client = docker_client()
    build_steps.remove_leftover_build_containers(client, deploy.app)
    ensure_stack(context, client, configured_image(context), deploy.output)
    stack = stack_from_image(context, client, configured_image(context))
    config = deploy.state.effective_config(deploy.app)
    build = build_steps.Build(
        app=deploy.app,
        source=deploy.workdir,
        config=config,
        stack=stack,
        stacks=None,
        output=deploy.output,
        stacks_loader=lambda: all_stacks(context, client, stack),
        settings=settings(context, deploy.app),
        cache_dir=context.path("cache", "buildpacks"),
        stack_ensurer=lambda chosen: ready_stack(context, client, chosen, deploy.output),
        toolchain_loader=lambda on, name, packages, command: toolchains.ensure(
            client, on, name, packages, command, deploy.output, lock_dir=context.root / "locks"
        ),
    )
    build.packs = select_packs(context, deploy, build)
    described = {d["name"]: d for d in describe_packs(context)}
    return Session(deploy, client, build, described)


def plan_dependencies(session: Session) -> PackPlan:
    """Ask each pack for its dependencies; print its detection line and notes."""
    plan = PackPlan(packs=list(session.packs))
    out = session.deploy.output
    for name in session.packs:
        deps = session.hook.skiff_buildpack_dependencies(pack=name, build=session.build) or {}
        label = deps.get("label") or session.described[name].get("label") or name.capitalize() + " app"
        out.step(f"{label} detected")
        for line in deps.get("notes", []):
            out.info(line)
        for line in deps.get("warnings", []):
            out.warn(line)
        plan.add_dependencies(name, deps)
    return plan


def _versions(session: Session) -> list[tuple[str, str]]:
    return [(n, str(session.described[n].get("version", "0"))) for n in session.packs]


def dependency_layer(session: Session, plan: PackPlan, export: bool = False) -> DepsLayer:
    """Reuse or build the dependency layer; without install steps the stack image is the base.

    ``export``: a new layer's /app is also read from its build container (``app_tar``), for the run image.
    """
    stack = session.build.stack
    if not plan.steps:
        return DepsLayer(base=stack.image, image_id=stack.id)
    env = plan.env(stack.path)
    key = build_steps.hash_key(
        session.build, _versions(session), plan.files, plan.generated, plan.steps, env, plan.archive_keys
    )
    tag = f"deps-{key[:16]}"
    ref = build_steps.image_tag(session.deploy.app, tag)
    existing = _image(session.client, ref)
    if existing is not None:
        session.deploy.output.step(f"Reusing the dependency layer (unchanged: {', '.join(plan.files) or 'none'})")
        return DepsLayer(base=ref, image_id=existing.id, key=key)
    installed = install_dependencies(session, plan, key, tag, export)
    if isinstance(installed, str):
        layer = DepsLayer(base=ref, image_id=installed, key=key, built=True, app_tar=session.runner.exported)
    else:  # the app's labels on a shared layer, or the exported /app as a layer: loaded with the code layer
        layer = DepsLayer(base=ref, image_id=installed.id, key=key, built=True, pending=installed)
        layer.app_tar = installed.layer  # (None for a shared layer)
    session.runner.exported = None
    layer.reports = dict(session.runner.reports)
    layer.start_after = lambda: after_install(session, plan, layer)  # started by build_image
    return layer


def after_install(session: Session, plan: PackPlan, layer: DepsLayer) -> None:
    """Start, on the host and beside the rest of the deploy: the untagging of older layers, and the packs'
    after-install work (e.g. promoting verified wheels into the shared cache; not for a shared layer: it
    is made of them)."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="skiff-after-install")
    background.track(pool.submit(_prune_deps, session.client, session.deploy.app, layer.image_id))
    if "shared_venv" not in layer.reports:
        layer.after = [pool.submit(fn, layer.reports, session.client) for fn in plan.after_install]
    pool.shutdown(wait=False)


def start_after_install(layer: DepsLayer | None) -> None:
    """Start the new dependency layer's after-install work, if it has some not started yet."""
    if layer is not None and layer.start_after is not None:
        start, layer.start_after = layer.start_after, None
        start()


def finish_after_install(deploy: Deploy, layer: DepsLayer) -> None:
    """Print the lines of the after-install work that is done; the rest goes on in the background.

    Its failures only warn: the build stands.
    """

    def report(future: Future) -> None:
        try:
            for line in future.result():
                deploy.output.info(line)
        except Exception as exc:
            deploy.output.warn(f"after the install: {type(exc).__name__}: {exc}")

    pending = 0
    for future in layer.after:
        if future.done():
            report(future)
        else:
            pending += 1
            background.track(_reported(future, report))  # printed when it is done, maybe after the deploy
    if pending:
        deploy.output.info("Shared wheel cache: verifying and adding the new wheels in the background")


def _reported(future: Future, report: Callable[[Future], None]) -> Future:
    """A future that is done once ``report(future)`` has run (a plain done callback may run after
    :func:`concurrent.futures.wait` returned, so a waiter could miss what it prints)."""
    reported: Future = Future()

    def run(done: Future) -> None:
        try:
            report(done)
        finally:
            reported.set_result(None)

    future.add_done_callback(run)
    return reported


def wait_background(timeout: float | None = None) -> None:
    """Wait for after-install work of earlier builds in this process (benchmarks, tests)."""
    background.wait(timeout)


def install_dependencies(session: Session, plan: PackPlan, key: str, tag: str, export: bool = False) -> Any:
    """Run the install steps on the stack image, or on top of the previous layer when requirements were only added.

    Returns the image id, or the dependency image still to load (a :class:`layers.NewImage` made of
    a shared layer the install step resolved to).
    """
    from . import layers

    deploy, out = session.deploy, session.deploy.output
    assert deploy.workdir is not None
    t0 = time.monotonic()
    env = plan.env(session.build.stack.path)
    compat = build_steps.hash_key(session.build, _versions(session), [], {}, plan.steps, env, plan.archive_keys)[:32]
    lines = plan.additive_lines
    previous = build_steps.previous_layer(session.client, deploy.app, compat, lines) if lines else None
    depth, start_from = 0, session.build.stack.image
    if previous is not None:
        depth = int(previous.labels.get("skiff.deps.depth", "0")) + 1
        start_from = previous.id
        out.step("Dependencies were only added: installing them on top of the previous layer")
    runner = session.runner
    shared = shared_candidates(session, plan)
    # the run image needs /app read out anyway: that archive is the layer on the build image too, loaded
    # with the code layer (no commit of the build container); an engine that refuses loads gets a commit
    load = export and LOAD_DEPENDENCY_LAYER and layers.supported(session.client)
    for attempt in (shared, {}) if shared else ({},):
        with build_steps.code_tar(
            deploy.workdir, (), plan.generated, runner.uid, runner.gid, only=plan.files, tmpdir=deploy.workdir.parent
        ) as archive:
            image_id = runner.run_or_export(
                start_from,
                plan.steps,
                env,
                archive,
                build_steps.deps_labels(deploy.app, key, compat, lines, depth),
                f"skiff/{deploy.app}",
                tag,
                plan.archive_paths,
                plan.read_only,
                shared=sorted(attempt),
                export="/app" if export else None,
                load=load,
            )
        if image_id is None:  # not committed: the exported /app is the layer, on the stack image
            image = exported_layer(session, build_steps.deps_labels(deploy.app, key, compat, lines, depth), tag)
            out.step(f"Dependency layer ready in {time.monotonic() - t0:.1f}s")
            return image
        if image_id:
            break
        digest = runner.reports["shared_venv"]
        image = shared_image(session, attempt[digest], build_steps.deps_labels(deploy.app, key, compat, lines, 0), tag)
        if image is not None:
            out.step(f"Dependency layer: the shared layer {digest[:12]} ({time.monotonic() - t0:.1f}s)")
            return image
    out.step(f"Dependency layer ready in {time.monotonic() - t0:.1f}s")
    return image_id


def exported_layer(session: Session, changes: build_steps.ImageChanges, tag: str) -> Any:
    """The dependency image made of the /app archive read from its build container, on the stack image.

    The archive holds all of /app (also when the install ran on top of a previous layer), so the
    stack image is its base. Not loaded yet: it goes in the code layer's load, beside the run copy
    made of the same archive.
    """
    from . import layers

    client, archive = session.client, session.runner.exported
    try:
        base = client.api.inspect_image(session.build.stack.image)
    except build_steps._engine_errors() as exc:
        raise build_steps.engine_error(exc) from exc
    return layers.NewImage(base, changes, f"skiff/{session.deploy.app}", tag, archive)


def shared_candidates(session: Session, plan: PackPlan) -> dict[str, dict[str, Any]]:
    """The shared layers the one install step may resolve to, whose images are on the engine."""
    if len(plan.steps) != 1 or plan.archives or not plan.shared_layers or not plan.steps[0].get("shared_venv"):
        return {}
    return {h: r for h, r in plan.shared_layers.items() if _image(session.client, r["image"]) is not None}


def shared_image(session: Session, record: dict[str, Any], changes: build_steps.ImageChanges, tag: str) -> Any:
    """The app's dependency image made of a shared layer (its labels on the shared image's layers), or None."""
    from . import layers

    client = session.client
    if not layers.supported(client):
        return None
    try:
        base = client.api.inspect_image(record["image"])
    except build_steps._engine_errors():
        return None  # gone since it was listed: install
    return layers.NewImage(base, changes, f"skiff/{session.deploy.app}", tag)


def plan_code(session: Session, plan: PackPlan) -> None:
    """Ask each pack for its compile steps, extra files and default process types."""
    for name in session.packs:
        plan.add_compile(session.hook.skiff_buildpack_compile(pack=name, build=session.build) or {})
    for name in session.packs:
        plan.add_processes(session.hook.skiff_buildpack_processes(pack=name, build=session.build) or {})


def fill_default_processes(deploy: Deploy, plan: PackPlan) -> None:
    """Packs' default process types fill the types the Procfile does not name."""
    out = deploy.output
    for ptype, command in plan.processes.items():
        if ptype not in deploy.processes:
            deploy.processes[ptype] = command
            out.info(f"default process type {ptype}: {command}")
    if not deploy.processes:
        out.warn("no Procfile and no default process type: nothing will run (add a Procfile)")


def run_stages(session: Session, plan: PackPlan) -> list[tuple[str, Any]]:
    """Run the packs' stages (e.g. ``go build`` in the Go toolchain layer); return their outputs.

    Each output is ``(path under /app, tar file)``; the caller closes the files.
    """
    deploy, stack, runner = session.deploy, session.build.stack, session.runner
    assert deploy.workdir is not None
    outputs: list[tuple[str, Any]] = []
    for stage in plan.stages:
        paths = list(stage.get("outputs", []))
        env = {"PATH": stack.path, **stage.get("env", {})}
        with build_steps.code_tar(
            deploy.workdir, plan.exclude, plan.compile_files, runner.uid, runner.gid, tmpdir=deploy.workdir.parent
        ) as archive:
            files = runner.collect(stage["image"], stage.get("steps", []), env, archive, paths)
        outputs += zip(paths, files)
    return outputs


RUN_DEPS_LABEL = "skiff.deps.run"  # on the dependency layer copied onto a run image: the app
KEEP_RUN_LAYERS = 2


def run_image(session: Session, plan: PackPlan) -> dict[str, str] | None:
    """The stack's run image the app image is based on, or ``None`` to base it on the build image.

    The run image is used when the ``run-image`` setting is on, every pack of the build
    runs on it (``"run_image": True`` in its description), the stack plugin has one for
    the build's stack, derived from the very image the dependencies were built on, and it
    has what the packs need at run time (``run_needs``).
    """
    deploy, stack = session.deploy, session.build.stack
    if not session.build.settings.get("run-image", True):
        return None
    if not all(session.described[name].get("run_image") for name in session.packs):
        return None
    hook = getattr(session.hook, "skiff_stack_run_image", None)
    run = hook(context=deploy.context, image=stack.image, output=deploy.output) if hook is not None else None
    if not run or run.get("of") != stack.id:
        return None
    missing = [need for need in plan.run_needs if not run.get(need)]
    if missing:
        deploy.output.info(f"the run image {run['image']} has no {', '.join(missing)}: the app runs on the build image")
        return None
    return run


def run_base(session: Session, plan: PackPlan, layer: DepsLayer, run: dict[str, str]) -> tuple[str, Any]:
    """The run image with the dependency layer's /app on it (``skiff/<app>:run-<key>``, reused while unchanged).

    Returns its reference and, when it is still to load, the :class:`layers.NewImage` (made of the
    archive read from the layer's build container): loaded with the code layer in one call.
    """
    deploy = session.deploy
    if not plan.steps:
        return run["image"], None
    shared = shared_source(session, layer) if EXPORT_FOR_RUN_IMAGE else None
    if shared is not None:
        return shared_run_copy(session, *shared, run), None
    key = hashlib.sha256(f"{layer.image_id}\0{run['id']}".encode()).hexdigest()[:16]
    ref = build_steps.image_tag(deploy.app, f"run-{key}")
    if _image(session.client, ref) is not None:
        return ref, None
    pending = run_copy_image(session, layer, run, f"run-{key}")
    if pending is not None:
        return ref, pending
    load_pending(session, layer)  # the copy below reads a container of it
    t0 = time.monotonic()
    image_id = load_run_copy(session, layer.base, run["image"], f"run-{key}")
    if image_id is None:
        label = f"LABEL {RUN_DEPS_LABEL}={build_steps.dockerfile_value(deploy.app)}"
        image_id = session.runner.copy_app(layer.base, run["image"], [label], f"skiff/{deploy.app}", f"run-{key}")
    deploy.output.step(f"Dependencies copied onto the run image {run['image']} in {time.monotonic() - t0:.1f}s")
    background.track(_background(_prune_run_layers, session.client, deploy.app, image_id))
    return ref, None


def shared_source(session: Session, layer: DepsLayer) -> tuple[Any, str, dict[str, Any]] | None:
    """``(records, hash, record)`` when the dependency layer is exactly a shared virtualenv layer (same layers)."""
    from .venvs import LABEL, SharedVenvs

    client, build = session.client, session.build
    if build.cache_dir is None:
        return None
    try:
        mine = layer.pending.inspect if layer.pending is not None else client.api.inspect_image(layer.image_id)
        digest = ((mine.get("Config") or {}).get("Labels") or {}).get(LABEL) or ""
        records = SharedVenvs(build.cache_dir, build.stack.id)
        record = records.get(digest)
        if record is None:
            return None
        theirs = client.api.inspect_image(record["image"])
    except build_steps._engine_errors():
        return None  # not there (any more): the app's own copy
    layers_of = [(i.get("RootFS") or {}).get("Layers") for i in (mine, theirs)]
    return (records, digest, record) if layers_of[0] and layers_of[0] == layers_of[1] else None


def _shared_tag(digest: str, run: dict[str, str]) -> str:
    return f"run-{digest[:16]}-{run['id'].split(':')[-1][:12]}"


def shared_run_copy(session: Session, records: Any, digest: str, record: dict[str, Any], run: dict[str, str]) -> str:
    """The shared layer's /app on the run image: made once per set and run image, then every app's base."""
    from .venvs import REPOSITORY

    deploy = session.deploy
    known = records.run_copy(digest, run["id"])
    if known is not None and _image(session.client, known) is not None:
        deploy.output.step(f"Dependencies on the run image {run['image']}: the shared layer's copy {digest[:12]}")
        return known
    t0 = time.monotonic()
    tag = _shared_tag(digest, run)
    try:
        made = copy_layer(
            session.client, deploy.app, record["image"], run, REPOSITORY, tag, {}, session.runner._discard
        )
    except _LoadRefusedHere:
        made = None
    if made is None:
        made = session.runner.copy_app(record["image"], run["image"], [], REPOSITORY, tag)
    records.put_run_copy(digest, run["id"], f"{REPOSITORY}:{tag}")
    deploy.output.step(
        f"Dependencies copied onto the run image {run['image']} in {time.monotonic() - t0:.1f}s "
        f"(the shared layer {digest[:12]}: once for every app of the set)"
    )
    return f"{REPOSITORY}:{tag}"


def after_shared_cache(session: Session, layer: DepsLayer, run: dict[str, str] | None) -> None:
    """After the build's shared-cache work (beside the deploy): the shared layers' run image copies, then,
    when the build left its bytecode to the shared layer, the app's dependency image becomes that layer.

    In this order, a build of the app that starts meanwhile finds the run copy of what it is given.
    """
    from concurrent.futures import wait

    wait(layer.after)
    if run is not None and EXPORT_FOR_RUN_IMAGE:
        premake_shared_run_copies(session, run)
    if layer.bytecode_deferred:
        adopt_shared_layer(session, layer)


def adopt_shared_layer(session: Session, layer: DepsLayer) -> str | None:
    """Make the app's dependency image (``layer.base``) the shared layer of exactly what its install installed.

    That layer holds the same distributions, from the verified wheels, with their bytecode, which the
    build left out (``bytecode_deferred``); the app's image keeps its labels (key, lines, depth), so its
    next builds reuse it (and the shared layer's run image copy) as they would have reused its own.
    Returns the new image id, or None when there is no such layer (the app keeps its layer; Python
    compiles what it imports when the app starts).
    """
    from . import layers
    from .venvs import SharedVenvs, pins_hash

    build, client = session.build, session.client
    installed = wheels_installed(layer.reports)
    if build.cache_dir is None or not installed or not layers.supported(client):
        return None
    record = SharedVenvs(build.cache_dir, build.stack.id).get(pins_hash(installed))
    failures: tuple[type[BaseException], ...] = (layers.LoadRefused, *build_steps._engine_errors())
    try:
        mine = client.api.inspect_image(layer.base)
        if record is None or mine.get("Id") != layer.image_id:
            return None  # no such layer, or the app's image changed since (another build)
        base = client.api.inspect_image(record["image"])
        labels = {k: v for k, v in ((mine.get("Config") or {}).get("Labels") or {}).items() if k.startswith("skiff.")}
        repository, _, tag = layer.base.rpartition(":")
        image = layers.NewImage(base, build_steps.ImageChanges(labels=labels), repository, tag)
        layers.load(client, [image])
    except failures:
        return None
    try:
        client.images.remove(layer.image_id)  # the app's own layer, now untagged (images made of it keep it)
    except Exception:
        pass
    return image.id


def wheels_installed(reports: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, version)`` of what the driver reported installed (validated)."""
    from .wheels import parse_report

    return [(i.name, i.version) for i in parse_report(reports.get("installed"))]


def premake_shared_run_copies(session: Session, run: dict[str, str]) -> None:
    """The run image copy of each shared layer of the stack that has none."""
    from .venvs import REPOSITORY, SharedVenvs

    build, client = session.build, session.client
    if build.cache_dir is None:
        return
    records = SharedVenvs(build.cache_dir, build.stack.id)
    for digest, record in records.all().items():
        known = records.run_copy(digest, run["id"])
        if (known is not None and _image(client, known) is not None) or _image(client, record["image"]) is None:
            continue
        tag = _shared_tag(digest, run)
        try:
            made = copy_layer(client, session.deploy.app, record["image"], run, REPOSITORY, tag, {}, _remove_now)
        except _LoadRefusedHere:
            return  # the next app of the set copies with containers
        if made is not None:
            records.put_run_copy(digest, run["id"], f"{REPOSITORY}:{tag}")


def _remove_now(container) -> None:
    try:
        container.remove(force=True, v=True)
    except Exception:
        pass


def run_copy_image(session: Session, layer: DepsLayer, run: dict[str, str], tag: str) -> Any:
    """The run image's copy of /app made of the archive read from the layer's build container, not loaded yet.

    None when there is no such archive or the engine does not load layers (the caller copies).
    """
    from . import layers

    client = session.client
    # the same archive as the dependency image's own layer (still to load): checked and hashed once
    same = layer.pending is not None and layer.pending.layer is layer.app_tar
    digest = layer.pending.diff_id if same else None
    if layer.app_tar is None or not layers.supported(client) or not (same or layers.loadable(layer.app_tar)):
        return None
    try:
        base = client.api.inspect_image(run["image"])
    except build_steps._engine_errors() as exc:
        raise build_steps.engine_error(exc) from exc
    changes = build_steps.ImageChanges(labels={RUN_DEPS_LABEL: session.deploy.app})
    return layers.NewImage(base, changes, f"skiff/{session.deploy.app}", tag, layer.app_tar, digest)


def loaded_run_copy(session: Session, run: dict[str, str], image: Any, seconds: float, with_code: bool = False) -> None:
    """Say that the run image's copy of /app is in (loaded with the code layer or alone); untag older copies."""
    deploy = session.deploy
    how = " (one load with the code layer)" if with_code else ""
    deploy.output.step(f"Dependencies copied onto the run image {run['image']} in {seconds:.1f}s{how}")
    background.track(_background(_prune_run_layers, session.client, deploy.app, image.id))


def load_run_copy(session: Session, source: str, run_image: str, tag: str) -> str | None:
    """``/app`` of ``source`` as one new layer on ``run_image``, by ``docker load`` (None: use containers)."""
    try:
        run = {"image": run_image}
        changes = {RUN_DEPS_LABEL: session.deploy.app}
        app = session.deploy.app
        return copy_layer(session.client, app, source, run, f"skiff/{app}", tag, changes, session.runner._discard)
    except _LoadRefusedHere as exc:
        session.deploy.output.info(f"the engine does not load layers on a base ({exc}): copying with containers")
        return None


class _LoadRefusedHere(Exception):
    pass


def copy_layer(
    client, app: str, source: str, run: dict[str, str], repository: str, tag: str, labels: dict[str, str], discard
) -> str | None:
    """``/app`` of the image ``source`` as one new layer on the run image, by ``docker load`` (None: use containers).

    The engine's archive of ``/app`` (entries ``app/...``, owners and modes kept) is the layer tar;
    ``discard`` removes the container it is read from (labelled as a build container of ``app``).
    Raises ``_LoadRefusedHere`` when the engine refuses the load (it is then marked unsupported).
    """
    import tempfile

    from . import layers

    if not layers.supported(client):
        return None
    src = None
    try:
        src = client.containers.create(source, ["true"], labels={build_steps.BUILD_LABEL: app}, network_disabled=True)
        with tempfile.TemporaryFile(prefix="skiff-run-", suffix=".tar") as tar:
            stream, _ = src.get_archive("/app")
            for chunk in stream:
                tar.write(chunk)
            tar.seek(0)
            if not layers.loadable(tar):
                return None
            changes = build_steps.ImageChanges(labels=labels)
            image = layers.NewImage(client.api.inspect_image(run["image"]), changes, repository, tag, tar)
            return layers.load(client, [image])[0]
    except layers.LoadRefused as exc:
        layers.mark_unsupported(client)
        raise _LoadRefusedHere(str(exc)) from None
    except build_steps._engine_errors() as exc:
        raise build_steps.engine_error(exc) from exc
    finally:
        if src is not None:
            discard(src)


def _background(fn, *args) -> Future:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiff-after-install")
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def run_layers(client, app: str) -> list:
    """The app's dependency layers copied onto a run image."""
    return client.images.list(filters={"label": f"{RUN_DEPS_LABEL}={app}"})


def _prune_run_layers(client, app: str, keep: str) -> None:
    """Untag all but the newest run layers of ``app`` (images in use keep their layers)."""
    images = sorted(run_layers(client, app), key=lambda i: i.attrs.get("Created", ""), reverse=True)
    for image in [i for i in images if i.id != keep][KEEP_RUN_LAYERS - 1 :]:
        for tag in image.tags or []:
            try:
                client.images.remove(tag)
            except Exception:
                pass


def code_layer(session: Session, plan: PackPlan, layer: DepsLayer, bid: str, run: dict[str, str] | None = None) -> str:
    """Add the code (and the stages' outputs) to the dependency image, run the compile steps, commit.

    With a ``run`` image the app image is based on it: the dependency layer's /app is
    copied onto it (:func:`run_base`), the compile steps run on the build side and only
    what they and the code added reaches the run side.
    """
    outputs = run_stages(session, plan)
    if layer.pending is not None and plan.compile_steps:
        load_pending(session, layer)  # compile steps need it loaded (and a run copy of it, see run_base)
    try:
        return _code_layer(session, plan, layer, bid, outputs, run)
    finally:
        for _, fileobj in outputs:
            fileobj.close()


def _code_layer(
    session: Session,
    plan: PackPlan,
    layer: DepsLayer,
    bid: str,
    outputs: list[tuple[str, Any]],
    run: dict[str, str] | None,
) -> str:
    deploy, stack, runner = session.deploy, session.build.stack, session.runner
    assert deploy.workdir is not None
    base, run_copy = run_base(session, plan, layer, run) if run else (layer.base, None)
    with build_steps.code_tar(
        deploy.workdir, plan.exclude, plan.compile_files, runner.uid, runner.gid, tmpdir=deploy.workdir.parent
    ) as archive:
        for rel, fileobj in outputs:
            build_steps.add_outputs(archive, fileobj, rel, runner.uid, runner.gid)
        size = build_steps.archive_size(archive)
        deploy.output.step(f"Adding the code ({size // 1024} KiB)" + (" and compiling" if plan.compile_steps else ""))
        changes = build_steps.final_changes(
            deploy.app, bid, plan.image_env(stack.path), stack.user, deploy.processes.get("web"), plan.packs
        )
        repository, env = f"skiff/{deploy.app}", plan.env(stack.path)
        if not plan.compile_steps:
            t0 = time.monotonic()
            loaded = load_layer(session, layer, archive, changes, bid, base, run_copy)
            if loaded is not None:
                if run_copy is not None and run is not None:
                    loaded_run_copy(session, run, run_copy, time.monotonic() - t0, with_code=True)
                return loaded
        if run_copy is not None and run is not None:  # on its own: the code goes in by a container
            place_run_copy(session, layer, run, run_copy)
        load_pending(session, layer)
        if run is None or not plan.compile_steps:
            return runner.run(base, plan.compile_steps, env, archive, changes, repository, bid)
        with runner.compile_changes(layer.base, plan.compile_steps, env, archive) as changed:
            return runner.run(base, [], env, changed, changes, repository, bid)


def load_pending(session: Session, layer: DepsLayer) -> None:
    """Load the dependency image still to load (a shared layer's), on its own."""
    from . import layers

    if layer.pending is None:
        return
    try:
        layers.load(session.client, [layer.pending])
    except layers.LoadRefused as exc:
        layers.mark_unsupported(session.client)  # the next builds commit their dependency layers
        raise SkiffError(f"the engine refused the dependency image: {exc}") from None
    except build_steps._engine_errors() as exc:
        raise build_steps.engine_error(exc) from exc
    layer.pending = None


def place_run_copy(session: Session, layer: DepsLayer, run: dict[str, str], image: Any) -> None:
    """Load the run image's copy of /app on its own, or copy it with containers when the engine refuses."""
    from . import layers

    deploy, t0 = session.deploy, time.monotonic()
    if layers.supported(session.client):
        try:
            layers.load(session.client, [image])
            loaded_run_copy(session, run, image, time.monotonic() - t0)
            return
        except layers.LoadRefused as exc:
            layers.mark_unsupported(session.client)
            deploy.output.info(f"the engine does not load layers on a base ({exc}): copying with containers")
        except build_steps._engine_errors() as exc:
            raise build_steps.engine_error(exc) from exc
    label = f"LABEL {RUN_DEPS_LABEL}={build_steps.dockerfile_value(deploy.app)}"
    image_id = session.runner.copy_app(layer.base, run["image"], [label], image.repository, image.tag)
    deploy.output.step(f"Dependencies copied onto the run image {run['image']} in {time.monotonic() - t0:.1f}s")
    background.track(_background(_prune_run_layers, session.client, deploy.app, image_id))


def load_layer(
    session: Session,
    layer: DepsLayer,
    archive: Any,
    changes: build_steps.ImageChanges,
    tag: str,
    base: str,
    run_copy: Any = None,
) -> str | None:
    """The code layer as ``docker load`` of a tar on ``base`` (no container); None: use a container.

    ``base`` is the dependency image or the run image with its /app; a dependency image still to
    load, or the run image's copy of /app still to load (``run_copy``, then ``base``), goes in the
    same call.
    """
    from . import layers

    client = session.client
    if not layers.supported(client) or not layers.loadable(archive):
        return None
    pending = [image for image in (layer.pending, run_copy) if image is not None]
    try:
        if run_copy is not None:
            base_image, base_id = run_copy.inspect, run_copy.id
        elif layer.pending is not None and base == layer.base:
            base_image, base_id = layer.pending.inspect, layer.pending.id
        else:  # the dependency image (a shared layer's, still to load) goes in the same call beside it
            base_image = client.api.inspect_image(base)
            base_id = base_image.get("Id", "")
        image = layers.NewImage(base_image, changes, f"skiff/{session.deploy.app}", tag, layer=archive)
        announce_code(session.deploy, base_id, archive)
        loaded = layers.load(client, [*pending, image])[-1]
        layer.pending = None
        hand_off_code(session.deploy, base_id, archive)
        return loaded
    except layers.LoadRefused as exc:
        layers.mark_unsupported(client)
        session.deploy.output.info(f"the engine does not load layers on a base ({exc}): using a build container")
        return None
    except build_steps._engine_errors() as exc:
        raise build_steps.engine_error(exc) from exc


def hand_off_code(deploy: Deploy, base_id: str, archive: Any) -> None:
    """The code layer's tar for the scheduler (``contracts.CODE_LAYER``: its prestart puts it into
    containers of ``base_id`` started meanwhile); ``code_base`` in the release's meta."""
    from skiff.contracts import CODE_LAYER, CodeLayer

    reopened = _reopened(archive) if base_id else None
    if reopened is None:
        return
    deploy.stash[CODE_LAYER] = CodeLayer(base=base_id, archive=reopened)
    deploy.meta["code_base"] = base_id


def announce_code(deploy: Deploy, base_id: str, archive: Any) -> None:
    """Before the load: the code layer's tar to a scheduler that asked for it (``CODE_LAYER_WANTED``)."""
    from skiff.contracts import CODE_LAYER_WANTED, CodeLayer

    wanted = deploy.stash.get(CODE_LAYER_WANTED)
    reopened = _reopened(archive) if wanted is not None and base_id else None
    if wanted is None or reopened is None:
        return
    try:
        wanted(CodeLayer(base=base_id, archive=reopened))
    except Exception as exc:  # the scheduler's business: the build goes on
        deploy.output.info(f"the code layer could not be handed over early: {exc}")


def _reopened(archive: Any) -> Any:
    """The (deleted) temporary file of ``archive`` opened again: its own offset, open after the build
    closes it (None: not a file)."""
    import io

    try:
        return open(f"/proc/self/fd/{archive.fileno()}", "rb")
    except (AttributeError, io.UnsupportedOperation, OSError):
        return None


def record(session: Session, layer: DepsLayer, image_id: str, run: dict[str, str] | None = None) -> None:
    """What the build made, stored with the release (docs/contracts.md)."""
    session.deploy.meta.update(
        {
            "builder": PLUGIN,
            "buildpacks": session.packs,
            "stack": session.build.stack.image,
            "deps_key": layer.key[:16],
            "deps_image": layer.image_id,
            "run_image": run["image"] if run else "",
        }
    )
    session.deploy.image_id = image_id
