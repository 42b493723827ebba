"""The cron runner: one process that starts every periodic task of Skiff on its schedule.

``skiff cron:runner`` (``make install`` starts it detached, with a pidfile). Once a
minute, at the minute, it asks every plugin for its tasks (``skiff_periodic_tasks``:
app.json jobs, ``cleanup``, whatever other plugins register) and starts each task
whose schedule names this minute as ``skiff ARGV``: an argument list, never a shell
line, run as the service account the runner itself runs as. A task whose previous
run is still going is not started again (and an app job also holds a lock of its
own in ``cron:run``). Nothing is written into a host crontab or unit: a restarted
runner reads the same tasks from the store, so jobs resume after a reboot or a
reinstall. Runs missed while it was down are not caught up (as cron).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from skiff.context import Context
from skiff.contracts import PeriodicTask
from skiff.errors import SkiffError, ValidationError

from . import jobs

PIDFILE = ("cron", "runner.pid")


def log(out: IO[str], message: str) -> None:
    out.write(f"{datetime.now().isoformat(timespec='seconds')} cron: {message}\n")
    out.flush()


def collect(context: Context, out: IO[str]) -> list[tuple[PeriodicTask, str]]:
    """Every plugin's tasks with their five-field schedules; a bad task is reported and skipped."""
    found: list[tuple[PeriodicTask, str]] = []
    seen: set[str] = set()
    for answer in context.hook.skiff_periodic_tasks(context=context):
        for task in answer or []:
            try:
                if (
                    not isinstance(task, PeriodicTask)
                    or not task.argv
                    or not all(isinstance(a, str) for a in task.argv)
                ):
                    raise ValidationError(f"not a PeriodicTask with argv: {task!r}")
                if task.name in seen:
                    raise ValidationError(f"a second task named {task.name}")
                expression = jobs.check_schedule(task.schedule)
            except (ValidationError, TypeError) as exc:
                log(out, f"skipping task {getattr(task, 'name', '?')}: {exc}")
                continue
            seen.add(task.name)
            found.append((task, expression))
    return found


def due(tasks: Iterable[tuple[PeriodicTask, str]], minute: datetime) -> list[PeriodicTask]:
    return [task for task, expression in tasks if jobs.matches(expression, minute)]


class Runner:
    """Starts due tasks as child processes and remembers which are still running."""

    def __init__(self, context: Context, out: IO[str], command: list[str]):
        self.context = context
        self.out = out
        self.command = command  # how to run skiff: [skiff executable]
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def reap(self) -> None:
        for name, child in list(self.children.items()):
            code = child.poll()
            if code is not None:
                log(self.out, f"{name} finished with status {code}")
                del self.children[name]

    def start(self, task: PeriodicTask) -> bool:
        running = self.children.get(task.name)
        if running is not None and running.poll() is None:
            log(self.out, f"{task.name} is still running (pid {running.pid}): not starting it again")
            return False
        argv = [*self.command, *task.argv]
        log(self.out, f"starting {task.name}: skiff {' '.join(task.argv)}")
        try:
            self.out.fileno()
            sink: Any = self.out
        except (AttributeError, OSError, ValueError):  # not a real file (a test's buffer)
            sink = subprocess.DEVNULL
        self.children[task.name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, close_fds=True
        )
        return True

    def tick(self, minute: datetime) -> list[str]:
        """Start what is due at ``minute``; return the names started."""
        self.reap()
        started: list[str] = []
        try:
            tasks = collect(self.context, self.out)
        except Exception as exc:  # the store is busy or a plugin failed: try again next minute
            log(self.out, f"could not read the tasks: {exc}")
            return started
        for task in due(tasks, minute):
            try:
                if self.start(task):
                    started.append(task.name)
            except OSError as exc:
                log(self.out, f"could not start {task.name}: {exc}")
        return started


def run_forever(
    runner: Runner,
    stopping: Callable[[], bool],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Tick once per minute, at the minute, until ``stopping()``; a minute lost to a
    suspended machine or a clock jump is not caught up (only the current one runs)."""
    last = int(clock() // 60)
    log(runner.out, f"runner started (pid {os.getpid()})")
    while not stopping():
        now = clock()
        minute = int(now // 60)
        if minute > last:
            last = minute
            runner.tick(datetime.fromtimestamp(minute * 60))
            continue
        runner.reap()
        sleep(min(1.0, max(0.05, (minute + 1) * 60 - now)))
    log(runner.out, "runner stopped")


def pidfile_lock(path: Path) -> int:
    """Hold an exclusive lock on ``path`` for the life of this process and write our pid in it;
    refuse when another runner holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode().strip() or "?"
        os.close(fd)
        raise SkiffError(f"another cron runner is running (pid {other}, {path})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def runner_pid(path: Path) -> int | None:
    """The pid of the runner holding ``path``, or ``None`` when none runs."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else -1
    else:
        return None
    finally:
        os.close(fd)


def main(context: Context, pidfile: Path, command: list[str]) -> None:
    fd = pidfile_lock(pidfile)
    stop: list[Any] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.append(True))
    try:
        run_forever(Runner(context, sys.stdout, command), lambda: bool(stop))
    finally:
        os.close(fd)
