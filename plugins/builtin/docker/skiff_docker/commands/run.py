"""logs, run, enter."""

from __future__ import annotations

import sys
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError

from .. import engine, settings
from ..engine import LABEL_INDEX, LABEL_PROCESS


def _prefix(app: str, entry: dict[str, Any]) -> str:
    labels = entry["Labels"]
    return f"{app}[{labels.get(LABEL_PROCESS)}.{labels.get(LABEL_INDEX)}]"


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
    """Show APP's logs: every container interleaved by time, prefixed by process.n."""
    from ..scheduler import running_instances

    context.state.require_app(app)
    c = engine.client()
    entries = running_instances(c, app)
    if process:
        entries = [
            e
            for e in entries
            if process
            in (e["Labels"].get(LABEL_PROCESS), f"{e['Labels'].get(LABEL_PROCESS)}.{e['Labels'].get(LABEL_INDEX)}")
        ]
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
    from ..scheduler import container_options, create_container, oneoff_kwargs, release_env_of, run_oneoff

    state = context.state
    state.require_app(app)
    release = state.current_release(app)
    if release is None or not release.image:
        raise SkiffError(f"app {app} has not been deployed yet: push it first")
    c = engine.client()
    engine.ensure_app_network(c, app)
    argv = ["/bin/sh", "-c", command[0]] if len(command) == 1 else list(command)
    import shutil
    import subprocess

    tty = _interactive()
    docker_cli = shutil.which("docker")
    attach = docker_cli is not None and (tty or _real_stdin())
    kwargs = oneoff_kwargs(
        c,
        app=app,
        image=release.image,
        command=argv,
        env=release_env_of(release),
        role_process="run",
        release=release.version,
        extra=settings.applied_docker_options(state, app, "run", context.output.warn),
        limits=settings.resources_for(state, app, "run"),
        plugin_options=container_options(context, app, "run", "run"),
        tty=tty,
        stdin=attach,
    )
    if not attach:  # no stdin to pass on (e.g. in-process): stream the output through the API
        return run_oneoff(c, kwargs, click.echo)
    assert docker_cli is not None  # attach implies it
    kwargs["auto_remove"] = True
    kwargs["detach"] = False  # attach stdout/stderr (and stdin, once) like `docker create`
    container = create_container(c, kwargs)
    # the environment went through the API; the command line holds only the container id
    return subprocess.call([docker_cli, "start", "--attach", "--interactive", container.id])


@access.app_command()
@click.command("enter", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("app")
@click.argument("target", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_context
def enter(context: Context, app: str, target: str | None, command: tuple[str, ...]) -> int:
    """Run a shell (or COMMAND) inside a running container: enter APP [PROCESS.N [COMMAND...]]"""
    from ..scheduler import running_instances

    context.state.require_app(app)
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
    argv = list(command)
    if not argv:
        argv = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
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


COMMANDS: list[click.Command] = [logs, run, enter]
