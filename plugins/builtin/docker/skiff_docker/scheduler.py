"""Running a release: start new containers next to the old ones, check, switch, retire.

Naming: the running containers of an app are ``<app>.<process>.<n>``. A
deploy starts the new ones as ``<app>.<process>.<n>.v<version>`` next to
them; once they pass their checks and the proxy switched, the old ones are
renamed ``<app>.<process>.<n>.old-<id>`` and the new ones take the plain
names. A detached helper (:mod:`skiff_docker.retire`) stops the old ones
after ``wait-to-retire`` and prunes old images, so the deploy returns at once.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError

from . import engine, options, settings
from .checks import CheckFailed, checks_for, run_check
from .engine import (LABEL_APP, LABEL_INDEX, LABEL_PORT, LABEL_PROCESS, LABEL_RELEASE, LABEL_ROLE, NETWORK)

SCRATCH = "docker"
DEFAULT_PORT = 5000
PROCESS_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,29}\Z")
CANONICAL = re.compile(r"\A(?P<app>[a-z][a-z0-9-]*)\.(?P<process>[A-Za-z0-9_-]+)\.(?P<index>[0-9]+)\Z")
LOG_LINES = 20
PORT_TAKEN = re.compile(r"port is already allocated|address already in use", re.I)


@dataclass
class Instance:
    """One new process container of a deploy."""

    process: str
    index: int
    name: str
    host_port: Optional[int] = None
    id: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dyno(self) -> str:
        return f"{self.process}.{self.index}"


def validate_process(name: str) -> str:
    if not PROCESS_NAME.fullmatch(name or ""):
        raise ValidationError(f"invalid process type {name!r}: use letters, digits, '-' and '_'")
    return name


def process_table(processes: dict[str, str]) -> dict[str, str]:
    """The process table to run; an image without a Procfile runs its own CMD as ``web``."""
    table = dict(processes) or {"web": ""}
    for name in table:
        validate_process(name)
    return table


def container_port(meta: dict[str, Any]) -> int:
    exposed = meta.get("exposed_ports") or []
    if exposed and isinstance(exposed[0], int):
        return exposed[0]
    return DEFAULT_PORT


def command_of(line: str) -> Optional[list[str]]:
    """A Procfile command runs under ``/bin/sh -c`` (after the image's ENTRYPOINT, if any)."""
    return ["/bin/sh", "-c", line] if line and line.strip() else None


def process_env(config: dict[str, str], process: str, index: int, port: int, revision: Optional[str]) -> dict[str, str]:
    env = dict(config)
    env["PORT"] = str(port)  # the port Skiff publishes and checks; not taken from the config
    env["DYNO"] = f"{process}.{index}"
    if revision:
        env.setdefault("GIT_REV", revision)
    # tini (--init) forwards SIGTERM to the whole process group, so `sh -c CMD` stops gracefully
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    return env


def create_kwargs(
    c, *, app: str, image: str, name: str, process: str, index: int, release: int, command: Optional[list[str]],
    env: dict[str, str], port: int, host_port: Optional[int], limits: dict[str, str], extra: list[str],
) -> dict[str, Any]:
    kwargs: dict[str, Any] = options.run_kwargs(extra)
    labels = dict(kwargs.pop("labels", {}))
    labels.update({LABEL_APP: app, LABEL_PROCESS: process, LABEL_RELEASE: str(release),
                   LABEL_INDEX: str(index), LABEL_ROLE: "process"})
    if host_port:
        labels[LABEL_PORT] = str(host_port)
        kwargs["ports"] = {f"{port}/tcp": ("127.0.0.1", host_port)}
    if limits.get("memory"):
        kwargs["mem_limit"] = limits["memory"]
    if limits.get("cpu"):
        kwargs["nano_cpus"] = int(float(limits["cpu"]) * 1e9)
    kwargs.update(
        image=image, command=command, name=name, environment=env, labels=labels, init=True,
        restart_policy={"Name": "unless-stopped"}, detach=True,
    )
    if "network_mode" not in kwargs:  # root's --network replaces the skiff network
        kwargs.update(network=NETWORK,
                      networking_config={NETWORK: c.api.create_endpoint_config(aliases=[f"{app}.{process}"])})
    return kwargs


def create(c, kwargs: dict[str, Any]) -> str:
    """``containers.create`` without the inspect that follows it; return the id."""
    from docker.models.containers import _create_container_args

    args = _create_container_args(dict(kwargs, version=c.api._version))
    return c.api.create_container(**args)["Id"]


def alive_probe(c, ident: str) -> Callable[[], Optional[str]]:
    def alive() -> Optional[str]:
        try:
            state = c.api.inspect_container(ident)["State"]
        except Exception as exc:  # removed under us
            return f"the container is gone ({exc})"
        if state.get("Restarting") or (state.get("Running") and state.get("RestartCount", 0)):
            return "the container crashed and was restarted"
        if not state.get("Running"):
            return f"the container exited with status {state.get('ExitCode')}"
        return None

    return alive


def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(8, n)))


# -- listing --------------------------------------------------------------------


def running_instances(c, app: str, entries: Optional[list[dict[str, Any]]] = None) -> list[dict[str, Any]]:
    """The app's containers with plain names ``<app>.<process>.<n>`` (any state)."""
    result = []
    for entry in engine.list_containers(c, app) if entries is None else entries:
        if (entry.get("Labels") or {}).get(LABEL_ROLE) != "process":
            continue
        match = CANONICAL.fullmatch(engine.name_of(entry))
        if match and match["app"] == app:
            result.append(entry)
    return sorted(result, key=lambda e: (e["Labels"].get(LABEL_PROCESS, ""), int(e["Labels"].get(LABEL_INDEX, 0) or 0)))


def stray_containers(c, app: str, entries: Optional[list[dict[str, Any]]] = None) -> list[dict[str, Any]]:
    """Containers of ``app`` left by an interrupted deploy (temporary names)."""
    return [e for e in (engine.list_containers(c, app) if entries is None else entries)
            if (e.get("Labels") or {}).get(LABEL_ROLE) == "process" and re.search(r"\.v[0-9]+\Z", engine.name_of(e))]


def retiring_containers(c, app: Optional[str] = None) -> list[dict[str, Any]]:
    return [e for e in engine.list_containers(c, app) if ".old-" in engine.name_of(e)]


# -- deploy -------------------------------------------------------------------------


def deploy(d: Deploy) -> bool:
    """``skiff_deploy``: start the release's containers and check them."""
    if not d.image or d.release is None:
        raise SkiffError("nothing to run: the release has no image")
    c = engine.client()
    state = d.context.state
    engine.ensure_network(c)
    entries = engine.list_containers(c, d.app, role=None)
    leftovers = stray_containers(c, d.app, entries)  # of a killed deploy or run
    leftovers += [e for e in entries if e["Labels"].get(LABEL_ROLE) == "oneoff" and e.get("State") == "exited"]
    for entry in leftovers:
        engine.remove_container(c, entry["Id"])

    table = process_table(d.processes)
    scale = settings.formation(state, d.app, table, d.app_json)
    check_settings = settings.checks(state, d.app)
    port = container_port(d.meta)
    d.meta["formation"] = scale
    d.meta["container_port"] = port
    scratch = d.scratch_for(SCRATCH)
    scratch["new"] = []

    old = []
    for entry in running_instances(c, d.app, entries):
        process = entry["Labels"].get(LABEL_PROCESS, "")
        if settings.check_mode(check_settings, process) == "disabled":
            engine.remove_container(c, entry["Id"])  # checks disabled: old ones go first (downtime)
        else:
            old.append(entry["Id"])
    scratch["old"] = old

    instances = [Instance(process, i, f"{d.app}.{process}.{i}.v{d.release.version}")
                 for process, count in scale.items() for i in range(1, count + 1)]
    web = [inst for inst in instances if inst.process == "web"]
    for inst, host_port in zip(web, engine.allocate_ports(c, len(web)) if web else []):
        inst.host_port = host_port
    summary = ", ".join(f"{p}={n}" for p, n in scale.items())
    d.output.step(f"Starting {d.app} v{d.release.version} ({summary or 'no processes'})")
    if not instances:
        d.meta["upstreams"] = []
        return True

    extra = settings.applied_docker_options(state, d.app, "deploy", d.output.warn)
    limits = {process: settings.resources_for(state, d.app, process) for process in table}  # no db in threads

    from docker.errors import APIError

    def kwargs_for(inst: Instance) -> dict[str, Any]:
        return create_kwargs(
            c, app=d.app, image=d.image, name=inst.name, process=inst.process, index=inst.index,
            release=d.release.version, command=command_of(table[inst.process]),
            env=process_env(d.config, inst.process, inst.index, port, d.revision), port=port,
            host_port=inst.host_port, limits=limits[inst.process], extra=extra,
        )

    def start(inst: Instance) -> None:
        kwargs = kwargs_for(inst)
        for attempt in range(3):
            inst.id = create(c, kwargs)
            scratch["new"].append(inst.id)
            try:
                c.api.start(inst.id)
                return
            except APIError as exc:  # the port was taken since we picked it: pick another
                if not inst.host_port or attempt == 2 or not PORT_TAKEN.search(str(exc)):
                    raise
            engine.remove_container(c, inst.id)
            inst.host_port = engine.allocate_ports(c, 1)[0]
            kwargs = kwargs_for(inst)

    abort = threading.Event()  # one failure stops the other checks: the deploy fails anyway

    def check(inst: Instance) -> None:
        if settings.check_mode(check_settings, inst.process) != "enabled":  # skipped or disabled
            return
        probe = alive_probe(c, inst.id)

        def alive() -> Optional[str]:
            return "another container failed" if abort.is_set() else probe()

        for chk in checks_for(d.app_json, inst.process, check_settings):
            run_check(chk, inst.host_port, alive, float(check_settings["timeout"]))

    began = time.monotonic()

    def start_and_check(inst: Instance) -> None:
        try:
            start(inst)
            inst.extra["started"] = time.monotonic() - began
            check(inst)
            inst.extra["ready"] = time.monotonic() - began
        except CheckFailed as exc:
            inst.error = str(exc)
        except Exception as exc:
            inst.error = f"could not start: {exc}"
        if inst.error:
            abort.set()

    with _pool(len(instances)) as pool:
        list(pool.map(start_and_check, instances))
    failed = [inst for inst in instances if inst.error and "another container failed" not in inst.error]
    scratch["failed"] = [(inst.dyno, inst.id, inst.error) for inst in failed]
    if failed:
        names = ", ".join(inst.dyno for inst in failed)
        raise SkiffError(f"{names} failed {'its' if len(failed) == 1 else 'their'} checks: {failed[0].error}")
    for inst in instances:
        d.output.info(f"{inst.dyno}: up" + (f" on 127.0.0.1:{inst.host_port}" if inst.host_port else "")
                      + f" (started in {inst.extra['started']:.2f}s, checked in {inst.extra['ready']:.2f}s)")
    d.meta["upstreams"] = [f"127.0.0.1:{inst.host_port}" for inst in web]
    scratch["instances"] = [(inst.id, inst.name, f"{d.app}.{inst.process}.{inst.index}") for inst in instances]
    return True


def switch(d: Deploy) -> None:
    """Give the new containers the plain names; the old ones get ``.old-<id>``."""
    scratch = d.scratch.get(SCRATCH)
    if not scratch or "instances" not in scratch:
        return
    c = engine.client()
    renamed: list[tuple[str, str]] = []  # (id, name to restore on failure)
    scratch["renamed"] = renamed

    def retire_name(ident: str) -> None:
        try:
            name = c.api.inspect_container(ident)["Name"].lstrip("/")
        except Exception:
            return
        c.api.rename(ident, f"{name}.old-{ident[:12]}")
        renamed.append((ident, name))

    old = scratch.get("old", [])
    with _pool(len(old)) as pool:
        list(pool.map(retire_name, old))
    new = scratch["instances"]
    with _pool(len(new)) as pool:
        list(pool.map(lambda item: c.api.rename(item[0], item[2]), new))
    scratch["switched"] = True


def retire_later(d: Deploy) -> None:
    """Stop the old containers after wait-to-retire, then prune old images (detached)."""
    scratch = d.scratch.get(SCRATCH) or {}
    check_settings = settings.checks(d.context.state, d.app)
    spawn_retire(
        d.app,
        scratch.get("old", []),
        prunable_images(d),
        wait=float(check_settings["wait-to-retire"]),
        stop_timeout=int(check_settings["stop-timeout"]),
    )
    if scratch.get("old"):
        d.output.info(f"old containers retire in {check_settings['wait-to-retire']:g}s")


def spawn_retire(app: str, containers: list[str], images: list[str], wait: float, stop_timeout: int) -> None:
    if not containers and not images:
        return
    args = [sys.executable, "-m", "skiff_docker.retire", "--app", app, "--wait", str(wait),
            "--stop-timeout", str(stop_timeout)]
    for ident in containers:
        args += ["--container", ident]
    for image in images:
        args += ["--image", image]
    subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)


def prunable_images(d: Deploy) -> list[str]:
    """Images of releases beyond the last N succeeded ones.

    Never the new release's image, nor the one of the release it replaces
    (the default rollback target).
    """
    state = d.context.state
    keep_n = settings.keep_releases(state, d.app)
    releases = state.releases(d.app)
    succeeded = [r for r in releases if r.status == "succeeded"]
    keep = {d.image} | {r.image for r in succeeded[-keep_n:]}
    if d.previous is not None:
        keep.add(d.previous.image)
    return sorted({r.image for r in releases if r.image and r.image not in keep})


def failed(d: Deploy, phase: str) -> None:
    """``skiff_deploy_failed``: show the failing containers' logs, remove the new ones."""
    scratch = d.scratch.get(SCRATCH)
    if not scratch:
        return
    c = engine.client()
    for dyno, ident, _error in scratch.get("failed", []):
        if not ident:
            continue
        lines = engine.tail_logs(c, ident, LOG_LINES)
        d.output.warn(f"last {len(lines)} log lines of {dyno}:" if lines else f"{dyno} wrote no log lines")
        for line in lines:
            d.output.warn(f"  {line}")
    new = scratch.get("new", [])
    with _pool(len(new)) as pool:
        list(pool.map(lambda ident: engine.remove_container(c, ident), new))
    for ident, name in scratch.get("renamed", []):
        try:
            c.api.rename(ident, name)
        except Exception as exc:
            d.output.warn(f"could not give {name} its name back: {exc}")
    scratch["new"] = []


# -- one-off containers -----------------------------------------------------------


def oneoff_kwargs(
    c, *, app: str, image: str, command: Optional[list[str]], env: dict[str, str], role_process: str,
    release: Optional[int], extra: list[str], limits: dict[str, str], tty: bool = False, stdin: bool = False,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = options.run_kwargs(extra)
    labels = dict(kwargs.pop("labels", {}))
    labels.update({LABEL_APP: app, LABEL_PROCESS: role_process, LABEL_ROLE: "oneoff",
                   LABEL_RELEASE: str(release or "")})
    if limits.get("memory"):
        kwargs["mem_limit"] = limits["memory"]
    if limits.get("cpu"):
        kwargs["nano_cpus"] = int(float(limits["cpu"]) * 1e9)
    kwargs.update(image=image, command=command, environment=env, labels=labels, init=True,
                  detach=True, tty=tty, stdin_open=tty or stdin)
    if "network_mode" not in kwargs:  # root's --network replaces the skiff network
        kwargs["network"] = NETWORK
    return kwargs


def run_oneoff(c, kwargs: dict[str, Any], write: Callable[[str], None]) -> int:
    """Run a container to completion, streaming its output line by line; remove it."""
    container = c.containers.create(**kwargs)
    try:
        container.start()
        buffer = b""
        for chunk in c.api.logs(container.id, stream=True, follow=True, stdout=True, stderr=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                write(line.decode("utf-8", "replace"))
        if buffer:
            write(buffer.decode("utf-8", "replace"))
        return int(container.wait().get("StatusCode", 1))
    finally:
        engine.remove_container(c, container.id)


def release_env(d: Deploy) -> dict[str, str]:
    return _oneoff_env(d.config, d.revision)


def release_env_of(release) -> dict[str, str]:
    return _oneoff_env(release.config, release.revision)


def _oneoff_env(config: dict[str, str], revision: Optional[str]) -> dict[str, str]:
    env = dict(config)
    if revision:
        env.setdefault("GIT_REV", revision)
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    return env


def run_task(d: Deploy, label: str, line: str) -> None:
    """Run a release task (``release``, ``predeploy``, ``postdeploy``); raise if it fails."""
    c = engine.client()
    engine.ensure_network(c)
    state = d.context.state
    d.output.step(f"Running {label}: {line}")
    kwargs = oneoff_kwargs(
        c, app=d.app, image=d.image or "", command=command_of(line), env=release_env(d), role_process=label,
        release=d.release.version if d.release else None,
        extra=settings.applied_docker_options(state, d.app, "deploy", d.output.warn),
        limits=settings.resources_for(state, d.app, label),
    )
    code = run_oneoff(c, kwargs, d.output.info)
    if code != 0:
        raise SkiffError(f"{label} command failed with exit status {code}")


def app_json_script(app_json: dict[str, Any], name: str) -> Optional[str]:
    scripts = (app_json or {}).get("scripts") if isinstance(app_json, dict) else None
    dokku = scripts.get("dokku") if isinstance(scripts, dict) else None
    value = dokku.get(name) if isinstance(dokku, dict) else None
    return value if isinstance(value, str) and value.strip() else None
