"""One Python start per push: ``skiff ssh-command`` serves its own pre-receive hook.

Instead of replacing itself with ``git receive-pack`` (after which the hook
would start a second ``skiff``), the ``ssh-command`` process that took the push
lock runs ``git receive-pack`` as its child and stays alive, warm: plugins
loaded, state open, lock held. The repository's pre-receive hook is a short,
static POSIX ``sh`` script (:func:`skiff_git.repo.hook_script`). When
``SKIFF_GIT_HOOK_DIR`` is set it talks to the parent through two FIFOs in that
directory (``mkdtemp``: 0700, the FIFOs 0600, so only the service account
reaches them):

``request``
    the hook writes ``GIT_QUARANTINE_PATH`` (empty when the push brought no
    objects), then git's ``OLD NEW REF`` lines as it read them on stdin, then a
    line ``end``, and closes it;
``output``
    the parent writes the deploy's output (its fds 1 and 2 point there while it
    runs, so subprocesses' output goes there too); the hook copies it to its
    stdout, which git sends to the pusher as ``remote:`` lines. Before closing
    it the parent writes the exit status to the regular file ``status``; the
    hook exits with it (no ``status``, or not a number: 1). A non-zero status
    rejects the push: git does not move any ref.

Neither side can block for good on the other. The hook opens each FIFO
read-write first (on Linux that never blocks), which lets the real read-only
and write-only opens that follow return at once, then drops the read-write
descriptor. The parent holds a writer of ``output`` from the start, so the
hook's copy only ends when the parent closes it or dies (then: no status, the
push is rejected), and it watches its child with a pidfd while it waits for
the request, so a push that never runs the hook (a refused pack, nothing to
update) ends as git decides.

What the hook sends is checked like any input: the quarantine path must be a
``tmp_objdir-incoming-*`` directory of this repository's object store, the ref
lines are parsed by :func:`skiff_git.push.parse_updates`. Without
``SKIFF_GIT_HOOK_DIR`` (a push that did not come through ``ssh-command``, or
``git:set --global hook-in-process false``) the hook starts ``skiff git-hook
APP`` as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff import background, timeline
from skiff.cli import run_guarded
from skiff.context import Context
from skiff.errors import SkiffError
from skiff.output import Output

HOOK_DIR_ENV = "SKIFF_GIT_HOOK_DIR"
#: git's quarantine directory (``tmp_objdir-incoming-XXXXXX`` since 2.21, ``incoming-XXXXXX`` before)
QUARANTINE_NAME = re.compile(r"(tmp_objdir-)?incoming-[A-Za-z0-9]{1,64}")
#: far above the ref lines of any real push (about 100 bytes per ref)
MAX_REQUEST = 16 * 1024 * 1024
END = "end"
QUARANTINE_ENV = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


@dataclass(frozen=True)
class Request:
    """What the pre-receive hook sent: git's quarantine directory and its ref lines."""

    quarantine: str
    lines: list[str]


def parse_request(data: bytes) -> Request:
    """The hook's request; a cut-off or malformed one is refused (the push is rejected)."""
    if len(data) > MAX_REQUEST:
        raise SkiffError("the pre-receive hook sent more than 16 MiB of ref lines; the push is refused")
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(lines) < 3 or lines[-1] != "" or lines[-2] != END:
        raise SkiffError("the pre-receive hook sent an incomplete request; the push is refused")
    return Request(quarantine=lines[0], lines=[f"{line}\n" for line in lines[1:-2]])


def quarantine_env(repo: Path, quarantine: str) -> dict[str, str]:
    """The object directories a hook of ``repo`` sees, from its ``GIT_QUARANTINE_PATH``."""
    if not quarantine:
        return {}
    objects = os.path.realpath(repo / "objects")
    path = Path(quarantine)
    real = os.path.realpath(path)
    if (
        not path.is_absolute()
        or os.path.dirname(real) != objects
        or not QUARANTINE_NAME.fullmatch(os.path.basename(real))
        or path.is_symlink()
        or not os.path.isdir(real)
    ):
        raise SkiffError("the pre-receive hook sent a quarantine path outside the repository; the push is refused")
    return {"GIT_QUARANTINE_PATH": real, "GIT_OBJECT_DIRECTORY": real, "GIT_ALTERNATE_OBJECT_DIRECTORIES": objects}


class HookChannel:
    """The private directory and FIFOs between this process and its hook."""

    def __init__(self, parent: Path):
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="push-", dir=parent))  # 0700
        self.request_path = self.dir / "request"
        self.output_path = self.dir / "output"
        self.request_fd: int | None = None
        self.output_fd: int | None = None
        try:
            os.mkfifo(self.request_path, 0o600)
            os.mkfifo(self.output_path, 0o600)
            self.request_fd = os.open(self.request_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            # a writer from the start: the hook's read-only open never blocks, and its copy
            # of the output ends only when this process closes it (or dies)
            self.output_fd = os.open(self.output_path, os.O_RDWR | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def wait_request(self, child: subprocess.Popen[bytes]) -> bytes | None:
        """The hook's request as sent, or ``None`` when ``child`` exits first (git ran no hook).

        Reading stops at 16 MiB (:func:`parse_request` refuses it); the request FIFO is
        closed on return, so a hook still writing gets ``EPIPE`` instead of waiting.
        """
        assert self.request_fd is not None
        pidfd = _pidfd(child.pid)
        poller = select.poll()
        poller.register(self.request_fd, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        data = bytearray()
        try:
            while True:
                events = poller.poll(None if pidfd is not None else 50)
                if child.poll() is not None:
                    return None
                if any(fd == self.request_fd for fd, _ in events) and self._read_some(data):
                    timeline.mark("git.hook.request-read")
                    return bytes(data)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            os.close(self.request_fd)
            self.request_fd = None

    def _read_some(self, data: bytearray) -> bool:
        """Read what is there; True at the end of the request (the hook closed its side, or too much)."""
        assert self.request_fd is not None
        while len(data) <= MAX_REQUEST:
            try:
                chunk = os.read(self.request_fd, 65536)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            data += chunk
        return True

    def open_output(self) -> int:
        """The write end of ``output`` (the hook holds its read end by now); ours alone from here."""
        assert self.output_fd is not None
        fd = os.open(self.output_path, os.O_WRONLY | os.O_CLOEXEC)  # readers exist: it returns at once
        os.close(self.output_fd)
        self.output_fd = fd
        return fd

    def finish(self, status: int) -> None:
        """Leave the status for the hook, then end its output: it exits with ``status``."""
        partial = self.dir / ".status"
        partial.write_text(f"{int(status)}\n")
        os.replace(partial, self.dir / "status")
        if self.output_fd is not None:
            os.close(self.output_fd)
            self.output_fd = None

    def close(self) -> None:
        for name in ("request_fd", "output_fd"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd: poll with a timeout instead
        return None


@contextlib.contextmanager
def _fds_to(fd: int) -> Iterator[None]:
    """Point fds 1 and 2 at ``fd`` for a while (the deploy's own and its subprocesses' output)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for copy in saved:
            os.close(copy)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """The hook's quarantine variables in ``os.environ`` while the deploy runs."""
    saved = {name: os.environ.get(name) for name in QUARANTINE_ENV}
    for name in QUARANTINE_ENV:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def serve(context: Context, app: str, repo: Path, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``git receive-pack`` (``argv``) as a child and its pre-receive hook's deploy here.

    Returns git's exit status. ``stdin``/``stdout`` (git's protocol) go to the child
    untouched; this process writes to neither while it runs.
    """
    channel = HookChannel(context.path("tmp"))
    try:
        child = subprocess.Popen(list(argv), env={**env, HOOK_DIR_ENV: str(channel.dir)}, close_fds=True)
        data = channel.wait_request(child)
        if data is not None:
            out = channel.open_output()
            context.output = Output()
            with _fds_to(out):
                status = run_guarded(context, lambda: _run_hook(context, app, repo, data))
                # what the deploy left running prints to the client too, as a hook process's exit waited for it
                background.wait()
            channel.finish(status)
            timeline.mark("git.hook.status-sent")
        code = child.wait()
        timeline.mark("git.receive-pack.done")
        return code
    finally:
        channel.close()


def _run_hook(context: Context, app: str, repo: Path, data: bytes) -> None:
    """What ``skiff git-hook APP`` does, with the hook's request and quarantine."""
    from . import push

    request = parse_request(data)
    with _environment(quarantine_env(repo, request.quarantine)):
        push.run_hook(context, app, request.lines)
