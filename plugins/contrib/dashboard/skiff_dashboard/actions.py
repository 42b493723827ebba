"""Changes from the dashboard run as the session's key, exactly as over SSH.

Each action is one ``skiff ssh-command`` child process with the environment the key's
forced command gives it (``SKIFF_KEY_NAME``, ``SSH_ORIGINAL_COMMAND``): the same
authorization (:func:`skiff.access.authorize`), the same validation, and the same entry in
the event log with the key's name. The command line is an argument list joined with
:func:`shlex.join` and split again by ``ssh-command``; values are checked before (names,
numbers), so nothing a browser sends reaches a shell.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.errors import SkiffError
from skiff.executable import skiff_executable

ERROR_LINE = re.compile(r"^ ?!\s+(?P<message>.+)$")
TIMEOUT = 600.0
MAX_SCALE = 100
PROCESS = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,254}")


class BadInput(SkiffError):
    """A value from a form that no command would take (HTTP 400)."""


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The command's one-line error (``!     ...``), else its last line of output."""
        for line in reversed(self.stderr.splitlines()):
            match = ERROR_LINE.match(line.strip("\r"))
            if match:
                return match["message"].strip()
        lines = [line for line in (self.stderr + self.stdout).splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit status {self.status}"


def environment(root: Path, key: str, args: Sequence[str]) -> dict[str, str]:
    """What the key's forced command gives ``skiff ssh-command`` (plus an unbuffered stdout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ORIGINAL_COMMAND", "SKIFF_KEY_FINGERPRINT")}
    env.update(
        SKIFF_ROOT=str(root),
        SKIFF_KEY_NAME=key,
        SSH_ORIGINAL_COMMAND=shlex.join(args),
        PYTHONUNBUFFERED="1",
    )
    return env


def command(root: Path, key: str, args: Sequence[str], timeout: float = TIMEOUT) -> Outcome:
    """Run ``args`` as ``key`` over the SSH entry point; wait for it."""
    proc = subprocess.run(
        [skiff_executable(), "ssh-command"],
        env=environment(root, key, args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


async def stream(root: Path, key: str, args: Sequence[str], idle: float = 15.0) -> AsyncIterator[str | None]:
    """The output lines of ``args`` run as ``key`` as they come (``None`` after ``idle`` quiet seconds).

    The child process is killed when the iteration ends (the browser went away)."""
    proc = await asyncio.create_subprocess_exec(
        skiff_executable(),
        "ssh-command",
        env=environment(root, key, args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), idle)
            except asyncio.TimeoutError:
                yield None
                continue
            if not line:
                break
            yield line.decode("utf-8", "replace").rstrip("\n")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def scale_args(app: str, known: Sequence[str], form: dict[str, str]) -> list[str]:
    """``ps:scale APP TYPE=N ...`` from the scale form; :class:`BadInput` for anything off."""
    pairs = []
    for process in known:
        if process not in form:
            continue
        text = str(form[process]).strip()
        if not PROCESS.fullmatch(process):
            raise BadInput(f"invalid process type {process!r}")
        if not (text.isascii() and text.isdigit()) or len(text) > 3:
            raise BadInput(f"{process}: {text!r} is not a number of processes from 0 to {MAX_SCALE}")
        count = int(text)
        if count > MAX_SCALE:
            raise BadInput(f"{process}: {count} is more than {MAX_SCALE} processes")
        pairs.append(f"{process}={count}")
    unknown = sorted(set(form) - set(known) - {"csrf_token"})
    if unknown:
        raise BadInput(f"{app} has no process type {unknown[0]!r}")
    if not pairs:
        raise BadInput("give the number of processes of at least one type")
    return ["ps:scale", app, *pairs]


def rollback_args(app: str, versions: Sequence[int], version: str) -> list[str]:
    text = str(version).strip()
    if not (text.isascii() and text.isdigit()) or int(text) not in versions:
        raise BadInput(f"{app} has no release {text!r}")
    return ["releases:rollback", app, text]


def reveal_args(app: str, keys: Sequence[str], key: str) -> list[str]:
    if not CONFIG_KEY.fullmatch(key) or key not in keys:
        raise BadInput(f"{app} has no config key {key!r}")
    return ["config:get", app, key]
