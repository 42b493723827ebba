"""One release on the swarm, as two sets of services: the new ones start beside the old ones.

``skiff_deploy`` -> :func:`deploy`: the image reaches the nodes, one service per process
type of the new release is created (``skiff-APP-PROCESS-vN``), and Skiff waits until every
task runs and is healthy (its Docker healthcheck passed), then reads each web task's
host-mode published port and its node's address into ``deploy.upstreams``.
``skiff_post_deploy`` (after nginx switched to them) -> :func:`retire`: the old release's
services are removed after ``wait-to-retire``. ``skiff_deploy_failed`` -> :func:`failed`:
the new services go; the old ones never stopped. docs/swarm.md says why Skiff switches
between services rather than letting swarm update one in place.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from skiff import timeline
from skiff.contracts import StashKey
from skiff.deploy import Deploy
from skiff.errors import SkiffError

from . import PLUGIN, engine, settings, spec

POLL = 0.25
FAILED_STATES = ("failed", "rejected", "orphaned", "complete")


@dataclass
class SwarmRollout:
    app: str
    version: int
    manager: str
    created: list[str] = field(default_factory=list)  # ids of the services this deploy created
    processes: list[str] = field(default_factory=list)  # the process type of each of them
    old: list[str] = field(default_factory=list)  # ids of the services it replaces
    checked: bool = False


ROLLOUT: StashKey[SwarmRollout] = StashKey(PLUGIN, "rollout")


def process_table(processes: dict[str, str]) -> dict[str, str]:
    table = dict(processes) or {"web": ""}
    for name in table:
        if not spec.PROCESS_NAME.fullmatch(name):
            raise SkiffError(f"invalid process type {name!r}: use letters, digits, '-' and '_'")
    return table


def deploy(d: Deploy) -> bool:
    """Start the release's services beside the running ones and wait until they are healthy."""
    if not d.image or d.release is None:
        raise SkiffError("nothing to run: the release has no image")
    state = d.context.state
    address = settings.manager(state)
    c = engine.client(address)
    rollout = SwarmRollout(d.app, d.release.version, address)
    d.stash[ROLLOUT] = rollout
    table = process_table(d.processes)
    formation = settings.formation(state, d.app, table, d.app_json)
    port = spec.container_port(d.meta)
    timeout = float(settings.SWARM.get(state, "timeout", app=d.app))
    d.formation = formation
    d.container_port = port
    rollout.old = [s["ID"] for s in engine.services(c, d.app)]
    running = {name: n for name, n in formation.items() if n > 0}
    d.output.step(
        f"Starting {d.app} v{rollout.version} on the swarm ("
        + (", ".join(f"{p}={n}" for p, n in formation.items()) or "no processes")
        + ")"
    )
    if not running:
        d.upstreams = []
        rollout.checked = True
        return True
    image = engine.image_for_nodes(d.context, c, d.app, d.image, local=not address)
    timeline.mark("swarm.image-for-nodes")
    engine.ensure_network(c, d.app)
    for process in running:
        linked_services(d.context, d.app, process, "process")
    for process, replicas in running.items():
        kwargs = spec.service_spec(
            app=d.app,
            process=process,
            version=rollout.version,
            image=image,
            line=table[process],
            config=d.config,
            revision=d.revision,
            replicas=replicas,
            port=port,
            app_json=d.app_json,
            start_timeout=timeout,
        )
        stale = c.api.services(filters={"name": kwargs["name"]})
        for found in stale:  # a killed deploy of this version left it
            if found["Spec"]["Name"] == kwargs["name"]:
                engine.remove_service(c, found["ID"])
                rollout.old = [ident for ident in rollout.old if ident != found["ID"]]
        created = c.api.create_service(**kwargs)
        rollout.created.append(created["ID"])
        rollout.processes.append(process)
    timeline.mark("swarm.services-created")
    tasks = wait_healthy(c, rollout, running, timeout, d.output)
    timeline.mark("swarm.tasks-healthy")
    nodes = engine.nodes(c)
    web = tasks.get("web", [])
    d.upstreams = spec.upstreams(web, nodes)
    for process, found in tasks.items():
        where = sorted({nodes.get(t.get("NodeID") or "", "?") for t in found})
        d.output.info(f"{process}: {len(found)} task(s) running and healthy on {', '.join(where)}")
    if "web" in running and len(d.upstreams) < running["web"]:
        raise SkiffError(f"only {len(d.upstreams)} of {running['web']} web tasks publish a port")
    rollout.checked = True
    return True


def linked_services(context: Any, app: str, process: str, role: str) -> None:
    """Ask ``skiff_container_options`` before tasks start, as the docker scheduler does before it
    creates a container: the service plugins put the services linked to the app on its overlay
    network then (``skiff_link_network``). Binds, extra networks and log options of the answers
    are this host's and do not apply to tasks on other nodes."""
    context.hook.skiff_container_options(context=context, app=app, process=process, role=role)


def _task_error(task: dict[str, Any]) -> str:
    status = task.get("Status") or {}
    text = status.get("Err") or status.get("Message") or status.get("State") or "failed"
    if "unhealthy" in text:
        text += " (its health check failed; the probe runs python3 in the image)"
    return text


def wait_healthy(
    c: Any, rollout: SwarmRollout, running: dict[str, int], timeout: float, output: Any
) -> dict[str, list[dict[str, Any]]]:
    """Until every new service has its replicas running (healthy) at once: ``{process: tasks}``.

    A task that failed (unhealthy, exited, rejected: no such image) fails the deploy at once."""
    deadline = time.monotonic() + timeout
    started = False  # every task's container started (its image pulled), health not yet known
    while True:
        result: dict[str, list[dict[str, Any]]] = {}
        begun: dict[str, int] = {}
        for ident, process in zip(rollout.created, rollout.processes):
            tasks = engine.tasks(c, ident)
            for task in tasks:
                if (task.get("Status") or {}).get("State") in FAILED_STATES:
                    raise SkiffError(f"a {process} task of v{rollout.version} failed: {_task_error(task)}")
            live = [t for t in tasks if t.get("DesiredState") == "running"]
            result[process] = [t for t in live if (t.get("Status") or {}).get("State") == "running"]
            begun[process] = sum(1 for t in live if (t.get("Status") or {}).get("State") in ("starting", "running"))
        if not started and all(begun.get(p, 0) >= n for p, n in running.items()):
            started = True
            timeline.mark("swarm.tasks-started")
        if all(len(result.get(p, [])) >= n for p, n in running.items()):
            return result
        if time.monotonic() > deadline:
            raise SkiffError(f"the new tasks of v{rollout.version} were not all running and healthy in {timeout:g}s")
        time.sleep(POLL)


def rollout_of(d: Deploy) -> SwarmRollout | None:
    found = d.stash.get(ROLLOUT)
    return found if isinstance(found, SwarmRollout) else None


def retire(d: Deploy) -> None:
    """Remove the old release's services after ``wait-to-retire`` (a detached helper)."""
    rollout = rollout_of(d)
    if rollout is None or not rollout.checked or not rollout.old:
        return
    wait = float(settings.SWARM.get(d.context.state, "wait-to-retire", app=d.app))
    spawn_retire(rollout.manager, rollout.old, wait)
    d.output.info(f"the services of the previous release retire in {wait:g}s")


def spawn_retire(manager: str, services: list[str], wait: float, network_of: str | None = None) -> None:
    """Remove ``services`` after ``wait`` seconds in a detached helper; ``network_of``: then the
    overlay network of that app too (the old name of a renamed app)."""
    args = [sys.executable, "-m", "skiff_swarm.retire", "--wait", str(wait), "--manager", manager]
    for ident in services:
        args += ["--service", ident]
    if network_of:
        args += ["--network-of", network_of]
    subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def failed(d: Deploy) -> None:
    """The new services go (with their tasks' last words); the old ones kept running throughout."""
    rollout = rollout_of(d)
    if rollout is None or not rollout.created:
        return
    c = engine.client(rollout.manager)
    for ident in rollout.created:
        for line in service_log_tail(c, ident, 10):
            d.output.warn(f"  {line}")
        engine.remove_service(c, ident)
    rollout.created = []
    if rollout.old:
        d.output.warn(f"the new tasks were removed; v{d.previous.version if d.previous else '?'} keeps serving")


def service_log_tail(c: Any, ident: str, lines: int) -> list[str]:
    try:
        raw = c.api.service_logs(ident, stdout=True, stderr=True, tail=lines, timestamps=False)
        data = b"".join(raw) if not isinstance(raw, (bytes, str)) else raw
    except Exception:
        return []
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return [line for line in text.splitlines() if line.strip()][-lines:]


def renamed(context: Any, old: str, new: str) -> None:
    """``apps:rename``: run the current release as ``new``'s services, switch nginx, retire ``old``'s.

    Called under both apps' locks after the state moved to ``new`` (as the docker scheduler
    does for containers). It never raises (the rename is done): a failure says to run
    ``ps:restart NEW``.
    """

    state = context.state
    if not settings.is_swarm_app(state, new):
        return
    manager = settings.manager(state)
    try:
        c = engine.client(manager)
        previous = [s["ID"] for s in engine.services(c, old)]
        release = state.current_release(new)
        if release is not None and release.image and previous:
            context.output.step(f"Starting {old}'s release v{release.version} on the swarm as {new}")
            d = Deploy.of_release(context, new, release, f"Rename {old} to {new}")
            try:
                deploy(d)
            except BaseException:
                failed(d)
                raise
            release.meta = d.meta
            state.finish_release(release, "succeeded", release.timings)  # same release, new upstreams
            context.hook.skiff_post_deploy(deploy=d)
        wait = float(settings.SWARM.get(state, "wait-to-retire", app=new))
        spawn_retire(manager, previous, wait, network_of=old)
    except Exception as exc:
        context.output.warn(f"swarm: could not run {new}'s services ({exc}); run 'ps:restart {new}'")
