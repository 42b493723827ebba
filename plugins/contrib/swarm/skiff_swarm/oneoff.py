"""One-off tasks and logs of a swarm app.

:func:`run` (``skiff_run_oneoff``, so ``run APP CMD`` and the cron plugin's jobs): a
replicated job service ``skiff-APP-run-XXXXXXXX`` of the current release (its image, its
config, ``DYNO=run.N``, the app's overlay network), waited for until its one task ends;
its output is written line by line once it ended, the exit status returned, the service
removed; ``detach`` (``run:detached``): the service's name is written and it runs on.
:func:`run_job` also runs a release's tasks (``release:``, app.json ``predeploy`` /
``postdeploy``) with the new release's image and config. :func:`logs` (``skiff_app_logs``):
the logs of every process service of the app, prefixed ``APP[PROCESS.SLOT]``, optionally
followed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff.context import Context
from skiff.contracts import OneOff
from skiff.errors import NotFound, SkiffError

from . import engine, settings, spec

LABEL_DETACHED = "skiff.detached"
DONE = ("complete", "failed", "rejected", "shutdown", "orphaned")


def run(context: Context, oneoff: OneOff, write: Callable[[str], None], poll: float = 0.25) -> int:
    state = context.state
    release = state.current_release(oneoff.app)
    if release is None or not release.image:
        raise SkiffError(f"app {oneoff.app} has not been deployed yet: push it first")
    kind = "scheduler" if oneoff.role == "scheduler" else "run"
    job = Job(oneoff.app, release.image, release.config, kind, spec.container_port(release.meta), release.revision)
    return run_job(context, job, oneoff.command, write, detach=oneoff.detach, poll=poll)


@dataclass(frozen=True)
class Job:
    """What a one-off task of an app runs: the image (local reference), config and ``DYNO`` kind."""

    app: str
    image: str
    config: dict[str, str]
    kind: str  # run, scheduler, release, predeploy, postdeploy
    port: int
    revision: str | None = None


def run_job(
    context: Context,
    job: Job,
    command: tuple[str, ...],
    write: Callable[[str], None],
    *,
    detach: bool = False,
    poll: float = 0.25,
) -> int:
    """A replicated-job service of one task on the cluster; its output once it ended, its exit status.

    ``detach``: write the service's name (``skiff-APP-run-N``) and return 0 once it is created;
    the service is removed with the app (or by ``swarm:sync`` once its task ended)."""
    manager = settings.manager(context.state)
    c = engine.client(manager)
    image = engine.image_for_nodes(context, c, job.app, job.image, local=not manager)
    engine.ensure_network(c, job.app)
    from .rollout import linked_services

    role = job.kind if job.kind in ("run", "scheduler") else "release"
    linked_services(context, job.app, job.kind, role)
    env = spec.env_list(job.config, process=job.kind, port=job.port, revision=job.revision)
    number = 1000 + secrets.randbelow(9000)
    env = [e for e in env if not e.startswith("DYNO=")] + [f"DYNO={job.kind}.{number}"]
    labels = {spec.LABEL_APP: job.app, spec.LABEL_PROCESS: job.kind, spec.LABEL_ROLE: "oneoff"}
    if detach:
        labels[LABEL_DETACHED] = "true"
    name = f"skiff-{job.app}-{job.kind}-{number}" if detach else f"skiff-{job.app}-{job.kind}-{secrets.token_hex(4)}"
    created = c.api.create_service(
        task_template={
            "ContainerSpec": {"Image": image, "Args": list(command), "Env": env, "Labels": labels, "Init": True},
            "RestartPolicy": {"Condition": "none"},
            "Networks": [{"Target": spec.network_name(job.app)}],
        },
        name=name,
        labels=labels,
        mode={"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
    )
    ident = created["ID"]
    if detach:
        write(name)
        return 0
    try:
        while True:
            tasks = engine.tasks(c, ident)
            ended = [t for t in tasks if (t.get("Status") or {}).get("State") in DONE]
            if ended:
                status = ended[0]["Status"]
                break
            time.sleep(poll)
        for _, text in split_lines(c.api.service_logs(ident, stdout=True, stderr=True, timestamps=False)):
            write(text)
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if code is None:
            raise SkiffError(f"the one-off task did not run: {status.get('Err') or status.get('State')}")
        return int(code)
    finally:
        engine.remove_service(c, ident)


def ended_detached(c: Any, app: str) -> list[str]:
    """Remove the app's detached one-off services whose task ended; their names."""
    removed = []
    for service in engine.services(c, app, role="oneoff"):
        if (service["Spec"].get("Labels") or {}).get(LABEL_DETACHED) != "true":
            continue  # a run that is still reading its output removes its own
        tasks = engine.tasks(c, service["ID"])
        if tasks and all((t.get("Status") or {}).get("State") in DONE for t in tasks):
            engine.remove_service(c, service["ID"])
            removed.append(service["Spec"]["Name"])
    return removed


def split_lines(raw: Any) -> list[tuple[str, str]]:
    """``(details, text)`` of each line of a ``service_logs`` answer (bytes or chunks)."""
    data = raw if isinstance(raw, bytes) else b"".join(raw)
    return [("", line) for line in data.decode("utf-8", "replace").splitlines()]


def _parse(line: str) -> tuple[str, str, str]:
    """A ``timestamps=True, details=True`` line, ``TIMESTAMP DETAILS TEXT``: ``(task id, timestamp, text)``."""
    ts, _, rest = line.partition(" ")
    details, _, text = rest.partition(" ")
    task = ""
    for pair in details.split(","):
        key, _, value = pair.partition("=")
        if key == "com.docker.swarm.task.id":
            task = value
    return task, ts, text


def logs(context: Context, app: str, process: str | None, num: int, follow: bool, write: Callable[[str], None]) -> None:
    c = engine.client(settings.manager(context.state))
    services = engine.services(c, app)
    if process:
        kind, _, slot = process.partition(".")
        services = [s for s in services if s["Spec"]["Labels"].get(spec.LABEL_PROCESS) == kind]
    else:
        slot = ""
    if not services:
        raise NotFound(f"{app} has no swarm service" + (f" of process {process}" if process else ""))
    slots: dict[str, str] = {}
    for service in services:
        kind_of = service["Spec"]["Labels"].get(spec.LABEL_PROCESS, "?")
        for found in engine.tasks(c, service["ID"]):
            slots[found["ID"]] = f"{kind_of}.{found.get('Slot', '?')}"

    def wanted(task: str) -> bool:
        return not slot or slots.get(task, "").endswith(f".{slot}")

    merged = []
    for service in services:
        raw = c.api.service_logs(service["ID"], stdout=True, stderr=True, timestamps=True, details=True, tail=num)
        for _, line in split_lines(raw) if num else []:
            task, ts, text = _parse(line)
            if wanted(task):
                merged.append((ts, f"{app}[{slots.get(task, '?')}]", text))
    for ts, prefix, text in sorted(merged):
        write(f"{ts} {prefix}: {text}")
    if not follow:
        return
    import queue

    lines: queue.Queue[str] = queue.Queue()

    def pump(ident: str) -> None:
        stream = c.api.service_logs(ident, stdout=True, stderr=True, timestamps=True, details=True, follow=True, tail=0)
        buffer = b""
        for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw_line in complete:
                task, ts, text = _parse(raw_line.decode("utf-8", "replace"))
                if wanted(task):
                    lines.put(f"{ts} {app}[{slots.get(task, '?')}]: {text}")

    for service in services:
        threading.Thread(target=pump, args=(service["ID"],), daemon=True).start()
    try:
        while True:
            write(lines.get())
    except KeyboardInterrupt:
        return
