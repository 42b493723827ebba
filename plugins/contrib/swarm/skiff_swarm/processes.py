"""``ps:stop``, ``ps:start`` and ``ps:report`` of a swarm app, and its release tasks.

:func:`stop` (``skiff_app_stop``): every process service of the app goes to 0 replicas (the
services stay, so ``ps:start`` needs no new release). :func:`start` (``skiff_app_start``): the
current release's services go back to its formation; once their tasks run (healthy), nginx is
pointed at them (the tasks have new ports). :func:`status` (``skiff_app_status``): a row per
task that should run, on every node. :func:`enter` (``skiff_app_enter``): ``docker exec``
in a task's container on the manager. :func:`release_tasks` / :func:`postdeploy`
(``skiff_release`` / ``skiff_post_deploy``): ``release:`` and app.json ``predeploy`` /
``postdeploy`` as one-off job tasks on the cluster, with the new release's image and config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from skiff.context import Context
from skiff.deploy import Deploy
from skiff.errors import NotFound, SkiffError

from . import engine, oneoff, settings, spec, sync

STOP_WAIT = 60.0


def _replicas(service: dict[str, Any]) -> int:
    return int((((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)


def _scale(c: Any, service: dict[str, Any], replicas: int) -> None:
    c.api.update_service(
        service["ID"],
        version=service["Version"]["Index"],
        mode={"Replicated": {"Replicas": replicas}},
        fetch_current_spec=True,
    )


def _running(c: Any, service_id: str) -> list[dict[str, Any]]:
    return [
        t
        for t in engine.tasks(c, service_id)
        if t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running"
    ]


def stop(context: Context, app: str) -> int:
    """Scale every process service of ``app`` to 0; wait until their tasks stopped; how many ran."""
    c = engine.client(settings.manager(context.state))
    found = engine.services(c, app)
    count = 0
    for service in found:
        count += len(_running(c, service["ID"]))
        if _replicas(service):
            _scale(c, service, 0)
    deadline = time.monotonic() + STOP_WAIT
    while any(_running(c, s["ID"]) for s in found) and time.monotonic() < deadline:
        time.sleep(0.25)
    return count


def start(context: Context, app: str) -> str | None:
    """The current release's services back to its formation; ``None`` when they are gone."""
    from skiff.lifecycle import app_lock

    c = engine.client(settings.manager(context.state))
    with app_lock(context, app):
        started = _scale_up(context, c, app)
    if started is None:
        return None
    count, web = started
    result = sync.sync_app(context, c, app) if web else ""  # new tasks, new ports: nginx follows
    return f"started {count} task(s)" + (f"; {result}" if result else "")


def _scale_up(context: Context, c: Any, app: str) -> tuple[int, bool] | None:
    """Scale the current release's services to its formation and wait until the tasks run."""
    state = context.state
    release = state.current_release(app)
    if release is None:
        return None
    mine = {
        (s["Spec"].get("Labels") or {}).get(spec.LABEL_PROCESS): s
        for s in engine.services(c, app)
        if (s["Spec"].get("Labels") or {}).get(spec.LABEL_RELEASE) == str(release.version)
    }
    table = dict(release.processes) or {"web": ""}
    want = {p: n for p, n in settings.formation(state, app, table, release.meta.get("app_json") or {}).items() if n}
    if not want or set(want) - set(mine):
        return None  # a process without its service: a redeploy makes them all
    for process, replicas in want.items():
        if _replicas(mine[process]) != replicas:
            _scale(c, mine[process], replicas)
    timeout = float(settings.SWARM.get(state, "timeout", app=app))
    deadline = time.monotonic() + timeout
    while not all(len(_running(c, mine[p]["ID"])) >= n for p, n in want.items()):
        for process in want:
            for task in engine.tasks(c, mine[process]["ID"]):
                state_now = (task.get("Status") or {}).get("State")
                if task.get("DesiredState") == "running" and state_now in ("failed", "rejected"):
                    raise SkiffError(f"a {process} task of v{release.version} failed to start: {_error(task)}")
        if time.monotonic() > deadline:
            raise SkiffError(f"the tasks of v{release.version} were not all running and healthy in {timeout:g}s")
        time.sleep(0.25)
    return sum(want.values()), "web" in want


def _error(task: dict[str, Any]) -> str:
    status = task.get("Status") or {}
    return str(status.get("Err") or status.get("Message") or status.get("State"))


def status(context: Context, app: str) -> list[dict[str, Any]]:
    """One row per task that should run (``ps:report``), across every node; the previous
    release's tasks that still run until they retire are ``retiring``."""
    from . import status as listing

    c = engine.client(settings.manager(context.state))
    restarts: dict[tuple[str, Any], int] = {}
    for service in engine.services(c, app):
        for task in engine.tasks(c, service["ID"]):
            if task.get("DesiredState") != "running":
                key = (service["Spec"]["Name"], task.get("Slot"))
                restarts[key] = restarts.get(key, 0) + 1
    release = context.state.current_release(app)
    current = release.version if release else None
    rows = []
    for row in listing.tasks_of(c, app):
        retiring = row["release"] != current and row["state"] == "running"  # the previous release's
        rows.append(
            {
                "name": f"{app}.{row['process']}.{row['slot']}",
                "process": row["process"],
                "release": row["release"],
                "status": "retiring" if retiring else row["state"],
                "restarts": restarts.get((row["service"], row["slot"]), 0),
                "node": row["node"],
                "address": row["address"],
                "port": None,
                "id": row["task"][:12],
            }
        )
    return rows


def enter(context: Context, app: str, target: str | None, command: list[str], write: Callable[[str], None]) -> int:
    """``enter APP [TYPE.N] [COMMAND]``: ``docker exec`` in the task's container, through the
    manager's engine: tasks on the manager only (Skiff does not reach the workers' engines)."""
    c = engine.client(settings.manager(context.state))
    kind, _, slot_text = (target or "").partition(".")
    if target and not (spec.PROCESS_NAME.fullmatch(kind) and (not slot_text or slot_text.isdigit())):
        raise SkiffError(f"invalid process {target!r}: use TYPE or TYPE.N (web.2)")
    slot = int(slot_text or 1)
    release = context.state.current_release(app)
    chosen = None
    for service in engine.services(c, app):
        labels = service["Spec"].get("Labels") or {}
        if release is None or labels.get(spec.LABEL_RELEASE) != str(release.version):
            continue
        if target and labels.get(spec.LABEL_PROCESS) != kind:
            continue
        for task in _running(c, service["ID"]):
            if not target or task.get("Slot") == slot:
                chosen = chosen or (labels.get(spec.LABEL_PROCESS), task)
    if chosen is None:
        raise NotFound(f"{app} has no running task" + (f" {kind}.{slot}" if target else ""))
    process, task = chosen
    here = ((c.info() or {}).get("Swarm") or {}).get("NodeID")
    if task.get("NodeID") != here:
        nodes = {n["ID"]: (n.get("Description") or {}).get("Hostname") for n in c.api.nodes()}
        raise SkiffError(
            f"{app}.{process}.{task.get('Slot')} runs on {nodes.get(task.get('NodeID')) or task.get('NodeID')}, "
            f"whose engine Skiff does not reach (only the manager's): use 'run {app} COMMAND', "
            "or enter a task on the manager"
        )
    container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
    if not container:
        raise SkiffError(f"{app}.{process}.{task.get('Slot')} has no container yet")
    exec_id = c.api.exec_create(container, command, stdout=True, stderr=True)["Id"]
    for chunk in c.api.exec_start(exec_id, stream=True):
        write(chunk.decode("utf-8", "replace"))
    return int(c.api.exec_inspect(exec_id).get("ExitCode") or 0)


def app_json_script(app_json: dict[str, Any], name: str) -> str | None:
    """app.json ``scripts.dokku.NAME`` (Dokku's key), as the docker scheduler reads it."""
    scripts = (app_json or {}).get("scripts") if isinstance(app_json, dict) else None
    dokku = scripts.get("dokku") if isinstance(scripts, dict) else None
    value = dokku.get(name) if isinstance(dokku, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _run(d: Deploy, label: str, line: str) -> None:
    d.output.step(f"Running {label} on the swarm: {line}")
    job = oneoff.Job(d.app, d.image or "", dict(d.config), label, spec.container_port(d.meta), d.revision)
    code = oneoff.run_job(d.context, job, ("/bin/sh", "-c", line), d.output.info)
    if code != 0:
        raise SkiffError(f"{label} command failed with exit status {code}")


def release_tasks(d: Deploy) -> None:
    """``release:`` and app.json ``predeploy`` before any new task starts (as the docker scheduler)."""
    previous = d.previous
    if d.kind == "redeploy" and previous is not None and previous.image == d.image and previous.config == d.config:
        return  # same image, same config (scale, restart, start): nothing for release tasks to do
    predeploy = app_json_script(d.app_json, "predeploy")
    if predeploy:
        _run(d, "predeploy", predeploy)
    if d.release_command:
        _run(d, "release", d.release_command)


def postdeploy(d: Deploy) -> None:
    """app.json ``postdeploy`` once nginx serves the new tasks."""
    line = app_json_script(d.app_json, "postdeploy")
    if line:
        _run(d, "postdeploy", line)
