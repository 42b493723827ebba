"""logs, run, run:detached, run:list, run:stop, enter."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError

from .. import engine
from ..engine import LABEL_INDEX, LABEL_JOB, LABEL_PROCESS


def _prefix(app: str, entry: dict[str, Any]) -> str:
    labels = entry["Labels"]
    if labels.get(LABEL_JOB):  # the last run of a scheduled job: app[scheduler.JOBID]
        return f"{app}[{labels.get(LABEL_PROCESS)}.{labels[LABEL_JOB]}]"
    return f"{app}[{labels.get(LABEL_PROCESS)}.{labels.get(LABEL_INDEX)}]"


def job_containers(c, app: str) -> list[dict[str, Any]]:
    """The kept containers of the app's scheduled jobs (their last runs), any state."""
    return [e for e in engine.list_containers(c, app, role="oneoff") if (e.get("Labels") or {}).get(LABEL_JOB)]


def _split(raw: bytes) -> list[tuple[str, str]]:
    """``(timestamp, text)`` pairs of a ``timestamps=True`` log chunk."""
    pairs = []
    for line in raw.decode("utf-8", "replace").splitlines():
        ts, _, text = line.partition(" ")
        pairs.append((ts, text))
    return pairs


@access.app_command()
@click.command("logs")
@click.argument("app")
@click.option("-t", "--tail", "follow", is_flag=True, help="Keep following the logs.")
@click.option("-n", "--num", type=click.IntRange(0), default=100, show_default=True, help="Lines per container.")
@click.option("-p", "--ps", "process", help="Only this process type (or PROCESS.N).")
@click.option("-q", "--quiet", is_flag=True, help="Lines only, without time and container prefix.")
@pass_context
def logs(context: Context, app: str, follow: bool, num: int, process: str | None, quiet: bool) -> None:
    """Show APP's logs: every container interleaved by time, prefixed by process.n.

    The last run of each scheduled job (cron) is there too, as ``scheduler.JOBID``."""
    from ..scheduler import running_instances

    context.state.require_app(app)
    # another scheduler that runs the app (swarm) shows its logs itself
    if context.hook.skiff_app_logs(context=context, app=app, process=process, num=num, follow=follow, write=click.echo):
        return
    c = engine.client()
    entries = running_instances(c, app) + job_containers(c, app)
    if process:
        entries = [e for e in entries if process in (e["Labels"].get(LABEL_PROCESS), _prefix("", e)[1:-1])]
        if not entries:
            raise NotFound(f"{app} has no container of process {process}")

    def show(ts: str, prefix: str, text: str) -> None:
        click.echo(text if quiet else f"{ts} {prefix}: {text}")

    merged = []
    for entry in entries:
        raw = c.api.logs(entry["Id"], timestamps=True, tail=num) if num else b""
        merged += [(ts, _prefix(app, entry), text) for ts, text in _split(raw)]
    for ts, prefix, text in sorted(merged, key=lambda item: item[0]):
        show(ts, prefix, text)
    if not follow or not entries:
        return
    import queue
    import threading

    lines: queue.Queue[tuple[str, str, str]] = queue.Queue()

    def pump(entry: dict[str, Any]) -> None:
        buffer = b""
        for chunk in c.api.logs(entry["Id"], timestamps=True, stream=True, follow=True, tail=0):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                for ts, text in _split(line):
                    lines.put((ts, _prefix(app, entry), text))

    for entry in entries:
        threading.Thread(target=pump, args=(entry,), daemon=True).start()
    try:
        while True:
            show(*lines.get())
    except KeyboardInterrupt:
        return


def _interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _real_stdin() -> bool:
    """stdin is a file descriptor (a pipe, a file, ssh's channel) that a container can read."""
    try:
        sys.stdin.fileno()
        return True
    except (AttributeError, ValueError, OSError):
        return False


def _other_scheduler(context: Context, app: str) -> bool:
    """Whether ``scheduler:set APP selected`` names another scheduler than docker (docs/contracts.md)."""
    from ..settings import other_scheduler

    context.state.require_app(app)
    return other_scheduler(context.state, app)


def _oneoff(
    context: Context, app: str, command: tuple[str, ...], *, tty: bool = False, stdin: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The engine and the create arguments of a one-off ``run`` container of APP's current release."""
    from ..scheduler import release_oneoff_kwargs

    context.state.require_app(app)
    c = engine.client()
    argv = ["/bin/sh", "-c", command[0]] if len(command) == 1 else list(command)
    kwargs = release_oneoff_kwargs(context, c, app, argv, "run", "run", tty=tty, stdin=stdin)
    return c, kwargs


@access.app_command()
@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("app")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_context
def run(context: Context, app: str, command: tuple[str, ...]) -> int:
    """Run COMMAND in a one-off container of APP's current release, then remove it.

    With a single argument the command runs under /bin/sh -c (like a Procfile
    line); with several, they are the program and its arguments. stdin is
    passed on; with a terminal (ssh -t) the container gets one too. The exit
    status is the command's.
    """
    import shutil
    import subprocess

    from ..scheduler import create_container, run_oneoff

    if _other_scheduler(context, app):  # e.g. swarm: a one-off task there, output once it ended
        from skiff.contracts import OneOff

        argv = ("/bin/sh", "-c", command[0]) if len(command) == 1 else tuple(command)
        code = context.hook.skiff_run_oneoff(context=context, oneoff=OneOff(app, argv, role="run"), write=click.echo)
        return int(code if code is not None else 1)
    tty = _interactive()
    docker_cli = shutil.which("docker")
    attach = docker_cli is not None and (tty or _real_stdin())
    c, kwargs = _oneoff(context, app, command, tty=tty, stdin=attach)
    if not attach:  # no stdin to pass on (e.g. in-process): stream the output through the API
        return run_oneoff(c, kwargs, click.echo)
    assert docker_cli is not None  # attach implies it
    kwargs["auto_remove"] = True
    kwargs["detach"] = False  # attach stdout/stderr (and stdin, once) like `docker create`
    container = create_container(c, kwargs)
    # the environment went through the API; the command line holds only the container id
    return subprocess.call([docker_cli, "start", "--attach", "--interactive", container.id])


@access.app_command()
@click.command("run:detached", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("app")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_context
def run_detached(context: Context, app: str, command: tuple[str, ...]) -> None:
    """Start COMMAND in a one-off container of APP in the background; print its name.

    The container (``APP.run.NNNN``, like its DYNO) is removed when the command
    exits; run:list shows it while it runs, run:stop stops it.
    """
    from ..scheduler import create_container

    if _other_scheduler(context, app):  # e.g. swarm: a one-off job task on the cluster
        from skiff.contracts import OneOff

        argv = ("/bin/sh", "-c", command[0]) if len(command) == 1 else tuple(command)
        oneoff = OneOff(app, argv, role="run", detach=True)
        if context.hook.skiff_run_oneoff(context=context, oneoff=oneoff, write=click.echo) is None:
            raise SkiffError(f"no scheduler runs {app}'s one-off tasks")
        return
    c, kwargs = _oneoff(context, app, command)
    name = f"{app}.{kwargs['environment']['DYNO']}"
    kwargs.update(name=name, auto_remove=True)
    container = create_container(c, kwargs)
    container.start()
    click.echo(name)


def _run_containers(context: Context, app: str) -> list[dict[str, Any]]:
    """APP's one-off ``run`` containers that have not exited (``run`` and ``run:detached``)."""
    context.state.require_app(app)
    entries = engine.list_containers(engine.client(), app, role="oneoff")
    return [e for e in entries if e["Labels"].get(LABEL_PROCESS) == "run" and e.get("State") != "exited"]


@access.app_command()
@click.command("run:list")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def run_list(context: Context, app: str, fmt: str) -> None:
    """List APP's running one-off containers: name, state, command."""
    import json

    rows = [
        {
            "name": engine.name_of(e),
            "state": e.get("State"),
            "status": e.get("Status"),
            "command": e.get("Command"),
            "created": e.get("Created"),
        }
        for e in sorted(_run_containers(context, app), key=lambda e: e.get("Created") or 0)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    context.output.banner(f"{app} run containers")
    for row in rows:
        context.output.info(f"{row['name']}  {row['status']}  {row['command']}")


@access.app_command()
@click.command("run:stop")
@click.argument("app")
@click.argument("name")
@pass_context
def run_stop(context: Context, app: str, name: str) -> None:
    """Stop APP's one-off container NAME (as run:list shows it)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.run\.[0-9]{1,8}", name or ""):
        raise SkiffError(f"invalid run container name {name!r}: use the name run:list shows (APP.run.NNNN)")
    chosen = [e for e in _run_containers(context, app) if engine.name_of(e) == name]
    if not chosen:
        raise NotFound(f"{app} has no running one-off container {name}")
    engine.client().api.stop(chosen[0]["Id"], timeout=10)
    context.output.step(f"Stopped {name}")


@access.app_command()
@click.command("enter", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("app")
@click.argument("target", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_context
def enter(context: Context, app: str, target: str | None, command: tuple[str, ...]) -> int:
    """Run a shell (or COMMAND) inside a running container: enter APP [PROCESS.N [COMMAND...]]"""
    from ..scheduler import running_instances

    argv = list(command) or ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
    if _other_scheduler(context, app):  # e.g. swarm: the task's container, where it runs
        code = context.hook.skiff_app_enter(
            context=context, app=app, target=target, command=argv, write=lambda text: click.echo(text, nl=False)
        )
        if code is None:
            raise SkiffError(f"{app} runs on another scheduler, whose containers are not on this host")
        return int(code)
    c = engine.client()
    running = [e for e in running_instances(c, app) if e.get("State") == "running"]
    if target:
        if "." not in target:
            target = f"{target}.1"
        chosen = [e for e in running if engine.name_of(e) == f"{app}.{target}"]
        if not chosen:
            raise NotFound(f"{app} has no running container {target}")
    else:
        chosen = running[:1]
        if not chosen:
            raise NotFound(f"{app} has no running container")
    ident = chosen[0]["Id"]
    if _interactive():
        import shutil
        import subprocess

        docker_cli = shutil.which("docker")
        if not docker_cli:
            raise SkiffError("the docker command line is needed for an interactive shell")
        return subprocess.call([docker_cli, "exec", "-it", ident, *argv])
    exec_id = c.api.exec_create(ident, argv, stdout=True, stderr=True)["Id"]
    for chunk in c.api.exec_start(exec_id, stream=True):
        click.echo(chunk.decode("utf-8", "replace"), nl=False)
    return int(c.api.exec_inspect(exec_id).get("ExitCode") or 0)


COMMANDS: list[click.Command] = [logs, run, run_detached, run_list, run_stop, enter]
