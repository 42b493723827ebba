"""One release rolled out on the local engine: named steps around a :class:`Rollout`.

``skiff_deploy`` -> :func:`deploy`::

    remove_leftovers -> begin (read the settings once) -> take_old -> plan
    -> start_and_check_all -> raise_if_failed -> report_up / publish

``skiff_post_deploy`` (after the proxy switched) -> :func:`switch`, then
:func:`retire_later`; ``skiff_deploy_failed`` -> :func:`failed`: the new
containers go, the old ones keep (or get back) their names and keep serving.

The rollout lives in the deploy's stash (``deploy.stash[ROLLOUT]``, i.e.
``deploy.scratch["docker"]["rollout"]``) from :func:`begin` on; it reads the state store once, into
:class:`RolloutSettings`, and the steps work from it alone (the container
starts run in threads, which must not touch the store).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from skiff import timeline
from skiff.contracts import ContainerOptions, ReleaseMeta, StashKey
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.output import Output
from skiff.state import State

from . import engine, prestart, settings
from .checks import CheckFailed, checks_for, run_check
from .engine import LABEL_PROCESS, LABEL_ROLE
from .scheduler import (
    LOG_LINES,
    PORT_TAKEN,
    SCRATCH,
    alive_probe,
    command_of,
    container_options,
    container_port,
    create_container,
    create_kwargs,
    pool,
    process_env,
    process_table,
    prunable_images,
    running_instances,
    spawn_retire,
    stray_containers,
)

ANOTHER_FAILED = "another container failed"


@dataclass(frozen=True)
class RolloutSettings:
    """What a rollout needs from the state store, read once when it begins."""

    formation: dict[str, int]  # {process: quantity}: ps:scale, app.json formation, defaults
    checks: dict[str, Any]  # settings.checks(): timeouts, counts, disabled / skipped processes
    docker_options: tuple[str, ...]  # the deploy options that may apply, checked when the rollout began
    resources: dict[str, dict[str, str]]  # {process: {"memory": ..., "cpu": ...}}
    container_port: int  # the port the web process listens on inside its container

    @property
    def start_timeout(self) -> float:
        return float(self.checks["timeout"])

    @property
    def wait_to_retire(self) -> float:
        return float(self.checks["wait-to-retire"])

    @property
    def stop_timeout(self) -> int:
        return int(self.checks["stop-timeout"])

    def check_mode(self, process: str) -> str:
        """``enabled``, ``skipped`` or ``disabled`` (checks:*)."""
        return settings.check_mode(self.checks, process)


def read_settings(
    state: State,
    app: str,
    table: dict[str, str],
    app_json: dict[str, Any],
    meta: ReleaseMeta,
    warn: Callable[[str], None],
) -> RolloutSettings:
    """Everything the rollout of ``app`` reads from the store, in one place."""
    table_resources = settings.resources(state, app)
    return RolloutSettings(
        formation=settings.formation(state, app, table, app_json),
        checks=settings.checks(state, app),
        docker_options=tuple(settings.applied_docker_options(state, app, "deploy", warn)),
        resources={process: settings.merge_resources(table_resources, process) for process in table},
        container_port=container_port(meta),
    )


@dataclass
class Instance:
    """One new process container of a rollout."""

    process: str
    index: int
    name: str  # the temporary name, <app>.<process>.<n>.v<version>
    final_name: str  # the plain name it takes at the switch, <app>.<process>.<n>
    host_port: int | None = None
    id: str = ""
    error: str = ""
    started: float = 0.0  # seconds from the start of the rollout
    ready: float = 0.0
    prestarted: bool = False  # started ahead, waiting for the code (:mod:`skiff_docker.prestart`)
    handed: bool = False  # prestarted and given the code while the image loaded

    @property
    def dyno(self) -> str:
        return f"{self.process}.{self.index}"


@dataclass
class Rollout:
    """A release of one app going live: what it runs, and what it did so far."""

    app: str
    version: int
    image: str
    table: dict[str, str]  # {process: Procfile line}
    config: dict[str, str]
    revision: str | None
    app_json: dict[str, Any]
    settings: RolloutSettings
    #: what plugins add to each process's containers (skiff_container_options), read when it began
    container_options: dict[str, ContainerOptions] = field(default_factory=dict)
    old: list[str] = field(default_factory=list)  # ids of the running containers it replaces
    instances: list[Instance] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # every container it created: removed when it fails
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (id, name to give back) of old containers
    checked: bool = False  # every instance started and passed its checks
    switched: bool = False
    code: Any = None  # the code layer's tar, for prestarted instances (closed when the rollout's checks end)

    @property
    def web(self) -> list[Instance]:
        return [inst for inst in self.instances if inst.process == "web"]

    @property
    def failures(self) -> list[Instance]:
        """The instances that failed themselves (not those stopped because another one failed)."""
        return [inst for inst in self.instances if inst.error and ANOTHER_FAILED not in inst.error]

    @property
    def upstreams(self) -> list[str]:
        return [f"127.0.0.1:{inst.host_port}" for inst in self.web]

    def summary(self) -> str:
        return ", ".join(f"{process}={n}" for process, n in self.settings.formation.items()) or "no processes"

    def create_kwargs(self, c: Any, inst: Instance) -> dict[str, Any]:
        port = self.settings.container_port
        return create_kwargs(
            c,
            app=self.app,
            image=self.image,
            name=inst.name,
            process=inst.process,
            index=inst.index,
            release=self.version,
            command=command_of(self.table[inst.process]),
            env=process_env(self.config, inst.process, inst.index, port, self.revision),
            port=port,
            host_port=inst.host_port,
            limits=self.settings.resources.get(inst.process, {}),
            extra=list(self.settings.docker_options),
            plugin_options=self.container_options.get(inst.process),
        )


#: where :func:`begin` keeps the rollout: ``deploy.scratch["docker"]["rollout"]``
ROLLOUT: StashKey[Rollout] = StashKey(SCRATCH, "rollout")


def rollout_of(d: Deploy) -> Rollout | None:
    """The rollout :func:`deploy` began for ``d``, if any."""
    found = d.stash.get(ROLLOUT)
    return found if isinstance(found, Rollout) else None


# -- skiff_deploy -------------------------------------------------------------------


def deploy(d: Deploy) -> bool:
    """``skiff_deploy``: start the release's containers next to the old ones and check them."""
    runnable(d)
    c = engine.client()
    engine.ensure_app_network(c, d.app)
    pre = prestart.take(d)
    entries = engine.list_containers(c, d.app, role=None)
    remove_leftovers(c, d.app, [e for e in entries if pre is None or e["Id"] not in pre.ids])
    rollout = begin(d)
    take_old(c, rollout, entries)
    try:
        if pre is None or not prestart.adopt(c, d, pre, rollout):
            plan(c, rollout)
        prestart.close_code(d)
        d.output.step(f"Starting {d.app} v{rollout.version} ({rollout.summary()})" + prestarted_note(rollout))
        if rollout.instances:
            start_and_check_all(c, rollout)
            raise_if_failed(rollout)
            report_up(d.output, rollout)
            rollout.checked = True
    finally:
        if rollout.code is not None:
            rollout.code.close()
            rollout.code = None
    d.upstreams = rollout.upstreams
    return True


def prestarted_note(rollout: Rollout) -> str:
    return ": prestarted, handing over the code" if any(inst.prestarted for inst in rollout.instances) else ""


def remove_leftovers(c: Any, app: str, entries: list[dict[str, Any]]) -> None:
    """Containers of a killed deploy (temporary names) or run (exited one-offs) go first."""
    leftovers = stray_containers(c, app, entries)
    leftovers += [e for e in entries if e["Labels"].get(LABEL_ROLE) == "oneoff" and e.get("State") == "exited"]
    for entry in leftovers:
        engine.remove_container(c, entry["Id"])


def runnable(d: Deploy) -> tuple[str, int]:
    """The image and version the deploy runs; a release without an image cannot run."""
    if not d.image or d.release is None:
        raise SkiffError("nothing to run: the release has no image")
    return d.image, d.release.version


def begin(d: Deploy) -> Rollout:
    """Read the settings, record the formation and port in the release, keep the rollout in the stash."""
    image, version = runnable(d)
    table = process_table(d.processes)
    rollout = Rollout(
        app=d.app,
        version=version,
        image=image,
        table=table,
        config=dict(d.config),
        revision=d.revision,
        app_json=d.app_json,
        settings=read_settings(d.context.state, d.app, table, d.app_json, d.meta, d.output.warn),
    )
    rollout.container_options = {process: container_options(d.context, d.app, process, "process") for process in table}
    d.formation = rollout.settings.formation
    d.container_port = rollout.settings.container_port
    d.stash[ROLLOUT] = rollout
    return rollout


def take_old(c: Any, rollout: Rollout, entries: list[dict[str, Any]]) -> None:
    """The running containers this rollout replaces; those of a process whose checks are
    disabled are removed now, before the new ones start (downtime, as Dokku does)."""
    for entry in running_instances(c, rollout.app, entries):
        if rollout.settings.check_mode(entry["Labels"].get(LABEL_PROCESS, "")) == "disabled":
            engine.remove_container(c, entry["Id"])
        else:
            rollout.old.append(entry["Id"])


def instance_keys(formation: dict[str, int]) -> list[tuple[str, int]]:
    """``(process, index)`` of every container of ``formation``, in order."""
    return [(process, i) for process, count in formation.items() for i in range(1, count + 1)]


def plan_instances(rollout: Rollout) -> None:
    """One instance per process and index of the formation (no host ports yet)."""
    app, version = rollout.app, rollout.version
    rollout.instances = [
        Instance(process, i, f"{app}.{process}.{i}.v{version}", engine.container_name(app, process, i))
        for process, i in instance_keys(rollout.settings.formation)
    ]


def plan(c: Any, rollout: Rollout) -> None:
    """One instance per process and index of the formation; web ones get a free host port."""
    plan_instances(rollout)
    web = rollout.web
    for inst, host_port in zip(web, engine.allocate_ports(c, len(web)) if web else []):
        inst.host_port = host_port


def start_instance(c: Any, rollout: Rollout, inst: Instance, attempts: int = 3) -> None:
    """Create and start the container; pick another host port when its port was taken meanwhile."""
    from docker.errors import APIError

    for attempt in range(attempts):
        inst.id = create_container(c, rollout.create_kwargs(c, inst)).id
        rollout.created.append(inst.id)
        try:
            c.api.start(inst.id)
            return
        except APIError as exc:
            if not inst.host_port or attempt == attempts - 1 or not PORT_TAKEN.search(str(exc)):
                raise
        engine.remove_container(c, inst.id)
        inst.host_port = engine.allocate_ports(c, 1)[0]


def hand_off_or_start(c: Any, rollout: Rollout, inst: Instance) -> None:
    """Hand the code to a prestarted container; when that fails, remove it and start one of the image."""
    try:
        assert rollout.code is not None
        prestart.hand_off(c, rollout.code, rollout.table[inst.process], inst)
        timeline.mark(f"docker.handed-off.{inst.process}")
    except Exception:
        engine.remove_container(c, inst.id)
        inst.prestarted = False
        inst.name = f"{rollout.app}.{inst.process}.{inst.index}.v{rollout.version}"
        start_instance(c, rollout, inst)


def check_instance(c: Any, rollout: Rollout, inst: Instance, abort: threading.Event) -> None:
    """Run the instance's checks (none when they are skipped or disabled); raise CheckFailed."""
    if rollout.settings.check_mode(inst.process) != "enabled":
        return
    probe = alive_probe(c, inst.id)

    def alive() -> str | None:
        return ANOTHER_FAILED if abort.is_set() else probe()

    for check in checks_for(rollout.app_json, inst.process, rollout.settings.checks):
        run_check(check, inst.host_port, alive, rollout.settings.start_timeout)


def start_and_check(c: Any, rollout: Rollout, inst: Instance, abort: threading.Event, began: float) -> None:
    """Start then check one instance; a failure is recorded in ``inst.error`` and stops the others."""
    try:
        if not inst.prestarted:
            start_instance(c, rollout, inst)
        elif not inst.handed:  # the code is handed over now (it was not while the image loaded)
            hand_off_or_start(c, rollout, inst)
        inst.started = time.monotonic() - began
        timeline.mark(f"docker.started.{inst.process}")
        check_instance(c, rollout, inst, abort)
        inst.ready = time.monotonic() - began
        timeline.mark(f"docker.healthy.{inst.process}")
    except CheckFailed as exc:
        inst.error = str(exc)
    except Exception as exc:
        inst.error = f"could not start: {exc}"
    if inst.error:
        abort.set()  # the deploy fails anyway


def start_and_check_all(c: Any, rollout: Rollout) -> None:
    """Every instance in parallel, all process types at once."""
    abort = threading.Event()
    began = time.monotonic()
    with pool(len(rollout.instances)) as workers:
        list(workers.map(lambda inst: start_and_check(c, rollout, inst, abort, began), rollout.instances))


def raise_if_failed(rollout: Rollout) -> None:
    failures = rollout.failures
    if failures:
        names = ", ".join(inst.dyno for inst in failures)
        raise SkiffError(f"{names} failed {'its' if len(failures) == 1 else 'their'} checks: {failures[0].error}")


def report_up(output: Output, rollout: Rollout) -> None:
    for inst in rollout.instances:
        where = f" on 127.0.0.1:{inst.host_port}" if inst.host_port else ""
        output.info(f"{inst.dyno}: up{where} (started in {inst.started:.2f}s, checked in {inst.ready:.2f}s)")


# -- skiff_post_deploy ----------------------------------------------------------------


def switch(d: Deploy) -> None:
    """Give the new containers the plain names; the old ones get ``.old-<id>``."""
    rollout = rollout_of(d)
    if rollout is None or not rollout.checked:
        return
    c = engine.client()
    rename_old(c, rollout)
    rename_new(c, rollout)
    rollout.switched = True
    timeline.mark("docker.switched")


def rename_old(c: Any, rollout: Rollout) -> None:
    def retire_name(ident: str) -> None:
        try:
            name = c.api.inspect_container(ident)["Name"].lstrip("/")
        except Exception:  # gone meanwhile
            return
        c.api.rename(ident, f"{name}.old-{ident[:12]}")
        rollout.renamed.append((ident, name))

    with pool(len(rollout.old)) as workers:
        list(workers.map(retire_name, rollout.old))


def rename_new(c: Any, rollout: Rollout) -> None:
    with pool(len(rollout.instances)) as workers:
        list(workers.map(lambda inst: c.api.rename(inst.id, inst.final_name), rollout.instances))


def retire_timing(d: Deploy) -> tuple[float, int]:
    """``wait-to-retire`` and ``stop-timeout`` of the deploy: its rollout's, else the app's now."""
    rollout = rollout_of(d)
    if rollout is not None:
        return rollout.settings.wait_to_retire, rollout.settings.stop_timeout
    checks = settings.checks(d.context.state, d.app)  # another scheduler ran the release
    return float(checks["wait-to-retire"]), int(checks["stop-timeout"])


def retire_later(d: Deploy) -> None:
    """Stop the old containers after wait-to-retire, then prune old images (detached)."""
    rollout = rollout_of(d)
    old = rollout.old if rollout is not None else []
    wait, stop_timeout = retire_timing(d)
    spawn_retire(d.app, old, prunable_images(d), wait=wait, stop_timeout=stop_timeout)
    if old:
        d.output.info(f"old containers retire in {wait:g}s")


# -- skiff_deploy_failed ----------------------------------------------------------------


def failed(d: Deploy, phase: str) -> None:
    """``skiff_deploy_failed``: show the failing containers' logs, remove the new ones."""
    prestart.discard(d)
    prestart.close_code(d)
    rollout = rollout_of(d)
    if rollout is None:
        return
    c = engine.client()
    show_failure_logs(c, d.output, rollout)
    remove_created(c, rollout)
    give_names_back(c, d.output, rollout)


def show_failure_logs(c: Any, output: Output, rollout: Rollout) -> None:
    for inst in rollout.failures:
        if not inst.id:
            continue
        lines = engine.tail_logs(c, inst.id, LOG_LINES)
        output.warn(f"last {len(lines)} log lines of {inst.dyno}:" if lines else f"{inst.dyno} wrote no log lines")
        for line in lines:
            output.warn(f"  {line}")


def remove_created(c: Any, rollout: Rollout) -> None:
    created, rollout.created = rollout.created, []
    with pool(len(created)) as workers:
        list(workers.map(lambda ident: engine.remove_container(c, ident), created))


def give_names_back(c: Any, output: Output, rollout: Rollout) -> None:
    for ident, name in rollout.renamed:
        try:
            c.api.rename(ident, name)
        except Exception as exc:
            output.warn(f"could not give {name} its name back: {exc}")
