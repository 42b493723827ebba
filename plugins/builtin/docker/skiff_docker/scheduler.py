"""Containers of a release: names, environment, create arguments, listing, retirement, one-offs.

Naming: the running containers of an app are ``<app>.<process>.<n>``. A
deploy starts the new ones as ``<app>.<process>.<n>.v<version>`` next to
them; once they pass their checks and the proxy switched, the old ones are
renamed ``<app>.<process>.<n>.old-<id>`` and the new ones take the plain
names. A detached helper (:mod:`skiff_docker.retire`) stops the old ones
after ``wait-to-retire`` and prunes old images, so the deploy returns at once.
The deploy itself, step by step, is :mod:`skiff_docker.rollout`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from skiff import contracts
from skiff.contracts import ReleaseMeta
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError

from . import engine, options, settings
from .engine import LABEL_APP, LABEL_INDEX, LABEL_JOB, LABEL_PORT, LABEL_PROCESS, LABEL_RELEASE, LABEL_ROLE

SCRATCH = "docker"
DEFAULT_PORT = contracts.DEFAULT_PORT
PROCESS_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,29}\Z")
CANONICAL = re.compile(r"\A(?P<app>[a-z][a-z0-9-]*)\.(?P<process>[A-Za-z0-9_-]+)\.(?P<index>[0-9]+)\Z")
LOG_LINES = 20
PORT_TAKEN = re.compile(r"port is already allocated|address already in use", re.I)
#: the temporary name of a new container (``.v<version>``; ``.v<version>.pre``: prestarted, skiff_docker.prestart)
STRAY = re.compile(r"\.v[0-9]+(\.pre)?\Z")
PRESTARTED = ".pre"
#: the ``containers.create`` argument :func:`create_container` takes out: networks to join before the start
CONNECT = "skiff_connect"


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


def container_port(meta: ReleaseMeta) -> int:
    """The web process's port for a release of this image: the core's rule (:func:`skiff.contracts.container_port`)."""
    return contracts.container_port(meta.get("exposed_ports"))


def command_of(line: str) -> list[str] | None:
    """A Procfile command runs under ``/bin/sh -c`` (after the image's ENTRYPOINT, if any)."""
    return ["/bin/sh", "-c", line] if line and line.strip() else None


def container_env(config: dict[str, str], *, dyno: str, port: int, revision: str | None) -> dict[str, str]:
    """The environment of every container of a release, whatever its kind.

    Web and worker processes, release tasks, app.json scripts and ``run``
    containers all get it (``enter`` joins a running process container, so it
    has that one's): the release's config, which holds every linked service's
    URL (``postgres:link`` sets ``DATABASE_URL``), ``PORT``, ``GIT_REV`` and
    Heroku's ``DYNO``. Only ``DYNO`` tells the kinds apart (docs/processes.md).
    """
    env = dict(config)
    env["PORT"] = str(port)  # the port Skiff publishes and checks; not taken from the config
    env["DYNO"] = dyno
    if revision:
        env.setdefault("GIT_REV", revision)
    # tini (--init) forwards SIGTERM to the whole process group, so `sh -c CMD` stops gracefully
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    return env


def process_env(config: dict[str, str], process: str, index: int, port: int, revision: str | None) -> dict[str, str]:
    """A process container's environment: ``DYNO`` is ``<process>.<n>`` (``web.1``)."""
    return container_env(config, dyno=f"{process}.{index}", port=port, revision=revision)


def oneoff_dyno(kind: str, number: int | None = None) -> str:
    """Heroku's ``DYNO`` of a one-off container: ``release.<n>``, ``run.<n>``, ``scheduler.<n>``.

    Release tasks and app.json scripts pass the release's version; ``run``
    (and a cron plugin's ``scheduler`` jobs) get a random four-digit number,
    as on Heroku. Apps only test that ``DYNO`` is set, or its prefix.
    """
    if number is None:
        import secrets

        number = 1000 + secrets.randbelow(9000)
    return f"{kind}.{number}"


def create_kwargs(
    c,
    *,
    app: str,
    image: str,
    name: str,
    process: str,
    index: int,
    release: int,
    command: list[str] | None,
    env: dict[str, str],
    port: int,
    host_port: int | None,
    limits: dict[str, str],
    extra: list[str],
    plugin_options: contracts.ContainerOptions | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = options.run_kwargs(extra)
    labels = dict(kwargs.pop("labels", {}))
    labels.update(
        {
            LABEL_APP: app,
            LABEL_PROCESS: process,
            LABEL_RELEASE: str(release),
            LABEL_INDEX: str(index),
            LABEL_ROLE: "process",
        }
    )
    if host_port:
        labels[LABEL_PORT] = str(host_port)
        kwargs["ports"] = {f"{port}/tcp": ("127.0.0.1", host_port)}
    if limits.get("memory"):
        kwargs["mem_limit"] = limits["memory"]
    if limits.get("cpu"):
        kwargs["nano_cpus"] = int(float(limits["cpu"]) * 1e9)
    kwargs.update(
        image=image,
        command=command,
        name=name,
        environment=env,
        labels=labels,
        init=True,
        restart_policy={"Name": "unless-stopped"},
        detach=True,
    )
    apply_container_options(c, kwargs, plugin_options or {}, app=app, alias=f"{app}.{process}")
    return kwargs


def container_options(context: Any, app: str, process: str, role: str) -> contracts.ContainerOptions:
    """What the plugins add to a container of ``app`` (``skiff_container_options``), merged."""
    answers = context.hook.skiff_container_options(context=context, app=app, process=process, role=role)
    return contracts.merge_container_options(answers)


def apply_container_options(
    c: Any, kwargs: dict[str, Any], plugin_options: contracts.ContainerOptions, *, app: str, alias: str | None
) -> None:
    """Put the plugins' options and the networks into the ``containers.create`` arguments.

    Root's ``--network`` (``network_mode``) replaces every network. Otherwise the
    container's primary network is the app's own, ``skiff-app-APP`` (or the one a
    plugin chose: ``network:set APP initial-network``), and it joins the app's own
    network and the plugins' extra networks too, each with the alias ``APP.PROCESS``
    when there is one. The engine (API < 1.44) takes one network at create: the
    others are joined by :func:`create_container` after the create, before the start."""
    if plugin_options.get("binds"):
        kwargs["volumes"] = list(kwargs.get("volumes") or []) + list(plugin_options["binds"])
    if plugin_options.get("log_config") and "log_config" not in kwargs:  # the app's --log-driver/--log-opt win
        kwargs["log_config"] = plugin_options["log_config"]
    if plugin_options.get("labels"):
        kwargs["labels"] = {**plugin_options["labels"], **kwargs.get("labels", {})}
    if "network_mode" in kwargs:
        return
    own = contracts.app_network(app)
    primary = plugin_options.get("network") or own
    names = [primary]
    for name in [*plugin_options.get("networks", []), own]:
        if name not in names:
            names.append(name)
    aliases = [alias] if alias else None
    kwargs["network"] = primary
    kwargs["networking_config"] = {primary: c.api.create_endpoint_config(aliases=aliases)}
    kwargs[CONNECT] = [(name, aliases) for name in names[1:]]


def create_container(c: Any, kwargs: dict[str, Any]) -> Any:
    """``containers.create`` with the arguments of :func:`create_kwargs` or :func:`oneoff_kwargs`,
    then joining the container's other networks (before it starts); a failure removes it."""
    connect = kwargs.pop(CONNECT, [])
    container = c.containers.create(**kwargs)
    try:
        for name, aliases in connect:
            c.api.connect_container_to_network(container.id, name, aliases=aliases)
    except BaseException:
        engine.remove_container(c, container.id)
        raise
    return container


def alive_probe(c, ident: str) -> Callable[[], str | None]:
    def alive() -> str | None:
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


def pool(n: int) -> ThreadPoolExecutor:
    """Threads for ``n`` parallel engine calls (at most 8)."""
    return ThreadPoolExecutor(max_workers=max(1, min(8, n)))


# -- listing --------------------------------------------------------------------


def running_instances(c, app: str, entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The app's containers with plain names ``<app>.<process>.<n>`` (any state)."""
    result = []
    for entry in engine.list_containers(c, app) if entries is None else entries:
        if (entry.get("Labels") or {}).get(LABEL_ROLE) != "process":
            continue
        match = CANONICAL.fullmatch(engine.name_of(entry))
        if match and match["app"] == app:
            result.append(entry)
    return sorted(result, key=lambda e: (e["Labels"].get(LABEL_PROCESS, ""), int(e["Labels"].get(LABEL_INDEX, 0) or 0)))


def stray_containers(c, app: str, entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Containers of ``app`` left by an interrupted deploy (temporary names, prestarted ones too)."""
    return [
        e
        for e in (engine.list_containers(c, app) if entries is None else entries)
        if (e.get("Labels") or {}).get(LABEL_ROLE) == "process" and STRAY.search(engine.name_of(e))
    ]


def retiring_containers(c, app: str | None = None) -> list[dict[str, Any]]:
    return [e for e in engine.list_containers(c, app) if ".old-" in engine.name_of(e)]


# -- retirement -------------------------------------------------------------------


def spawn_retire(
    app: str, containers: list[str], images: list[str], wait: float, stop_timeout: int, remove_network: bool = False
) -> None:
    """Retire ``containers`` and prune ``images`` in a detached helper; ``remove_network``: then
    remove the app's own network too (the old name of a renamed app)."""
    if not containers and not images:
        return
    args = [
        sys.executable,
        "-m",
        "skiff_docker.retire",
        "--app",
        app,
        "--wait",
        str(wait),
        "--stop-timeout",
        str(stop_timeout),
    ]
    for ident in containers:
        args += ["--container", ident]
    for image in images:
        args += ["--image", image]
    if remove_network:
        args.append("--remove-network")
    subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


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


# -- one-off containers -----------------------------------------------------------


def oneoff_kwargs(
    c,
    *,
    app: str,
    image: str,
    command: list[str] | None,
    env: dict[str, str],
    role_process: str,
    release: int | None,
    extra: list[str],
    limits: dict[str, str],
    tty: bool = False,
    stdin: bool = False,
    plugin_options: contracts.ContainerOptions | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = options.run_kwargs(extra)
    labels = dict(kwargs.pop("labels", {}))
    labels.update(
        {LABEL_APP: app, LABEL_PROCESS: role_process, LABEL_ROLE: "oneoff", LABEL_RELEASE: str(release or "")}
    )
    if limits.get("memory"):
        kwargs["mem_limit"] = limits["memory"]
    if limits.get("cpu"):
        kwargs["nano_cpus"] = int(float(limits["cpu"]) * 1e9)
    kwargs.update(
        image=image,
        command=command,
        environment=env,
        labels=labels,
        init=True,
        detach=True,
        tty=tty,
        stdin_open=tty or stdin,
    )
    apply_container_options(c, kwargs, plugin_options or {}, app=app, alias=None)
    return kwargs


def run_oneoff(c, kwargs: dict[str, Any], write: Callable[[str], None], remove: bool = True) -> int:
    """Run a container to completion, streaming its output line by line; remove it (unless not ``remove``)."""
    container = create_container(c, kwargs)
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
        code = int(container.wait().get("StatusCode", 1))
    except BaseException:
        engine.remove_container(c, container.id)  # interrupted: nothing keeps running
        raise
    if remove:
        engine.remove_container(c, container.id)
    return code


def run_oneoff_of(context: Any, oneoff: contracts.OneOff, write: Callable[[str], None]) -> int:
    """``skiff_run_oneoff``: ``oneoff.command`` in a one-off container of the app's current release.

    The same environment, docker options (phase ``run``), resources and plugin options
    as ``run``; ``DYNO`` is ``scheduler.<n>`` for the ``scheduler`` role. A named one
    replaces an exited container of that name and is refused while one runs.
    """
    c = engine.client()
    kind = "scheduler" if oneoff.role == "scheduler" else "run"
    kwargs = release_oneoff_kwargs(context, c, oneoff.app, list(oneoff.command), kind, oneoff.role)
    if oneoff.tag:
        kwargs["labels"][LABEL_JOB] = oneoff.tag
    if oneoff.name:
        _replace_exited(c, oneoff.name)
        kwargs["name"] = oneoff.name
    if oneoff.detach:  # run:detached: APP.run.NNNN, removed when it exits
        kwargs.setdefault("name", f"{oneoff.app}.{kwargs['environment']['DYNO']}")
        kwargs["auto_remove"] = True
        create_container(c, kwargs).start()
        write(kwargs["name"])
        return 0
    return run_oneoff(c, kwargs, write, remove=not oneoff.tag)


def release_oneoff_kwargs(
    context: Any,
    c,
    app: str,
    command: list[str],
    kind: str,
    role: str,
    tty: bool = False,
    stdin: bool = False,
) -> dict[str, Any]:
    """``containers.create`` arguments of a one-off container (``run``, a scheduled job) of
    ``app``'s current release: its config, docker options of phase ``run``, resources of
    ``kind``, the plugins' options for ``role``."""
    state = context.state
    release = state.current_release(app)
    if release is None or not release.image:
        raise SkiffError(f"app {app} has not been deployed yet: push it first")
    engine.ensure_app_network(c, app)
    return oneoff_kwargs(
        c,
        app=app,
        image=release.image,
        command=command,
        env=release_env_of(release, kind),
        role_process=kind,
        release=release.version,
        extra=settings.applied_docker_options(state, app, "run", context.output.warn),
        limits=settings.resources_for(state, app, kind),
        plugin_options=container_options(context, app, kind, role),
        tty=tty,
        stdin=stdin,
    )


def _replace_exited(c, name: str) -> None:
    from docker.errors import NotFound

    try:
        found = c.api.inspect_container(name)
    except NotFound:
        return
    if (found.get("State") or {}).get("Running"):
        raise SkiffError(f"{name} is still running")
    engine.remove_container(c, found["Id"])


def release_env(d: Deploy) -> dict[str, str]:
    """A release task's or app.json script's environment: ``DYNO`` is ``release.<version>``."""
    version = d.release.version if d.release is not None else None
    return container_env(
        d.config, dyno=oneoff_dyno("release", version), port=container_port(d.meta), revision=d.revision
    )


def release_env_of(release, kind: str = "run") -> dict[str, str]:
    """A one-off container's environment for a stored release: ``run.<n>``, or ``scheduler.<n>``
    for the jobs of a cron plugin (``release_env_of(release, "scheduler")``)."""
    return container_env(
        release.config, dyno=oneoff_dyno(kind), port=container_port(release.meta), revision=release.revision
    )


def run_task(d: Deploy, label: str, line: str) -> None:
    """Run a release task (``release``, ``predeploy``, ``postdeploy``); raise if it fails."""
    c = engine.client()
    engine.ensure_app_network(c, d.app)
    state = d.context.state
    d.output.step(f"Running {label}: {line}")
    kwargs = oneoff_kwargs(
        c,
        app=d.app,
        image=d.image or "",
        command=command_of(line),
        env=release_env(d),
        role_process=label,
        release=d.release.version if d.release else None,
        extra=settings.applied_docker_options(state, d.app, "deploy", d.output.warn),
        limits=settings.resources_for(state, d.app, label),
        plugin_options=container_options(d.context, d.app, label, "release"),
    )
    code = run_oneoff(c, kwargs, d.output.info)
    if code != 0:
        raise SkiffError(f"{label} command failed with exit status {code}")


def app_json_script(app_json: dict[str, Any], name: str) -> str | None:
    scripts = (app_json or {}).get("scripts") if isinstance(app_json, dict) else None
    dokku = scripts.get("dokku") if isinstance(scripts, dict) else None
    value = dokku.get(name) if isinstance(dokku, dict) else None
    return value if isinstance(value, str) and value.strip() else None
