"""Per-app file locks under ``SKIFF_ROOT/locks``.

``flock`` locks die with their process, so a deploy killed with SIGKILL never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .errors import LockTimeout


def lock_path(root: Path, name: str) -> Path:
    directory = root / "locks"
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        owned_like(directory, root)
    return directory / f"{name}.lock"


def owned_like(path: Path, model: Path) -> None:
    """Root (``stack:build``, ``plugin:install``) gives what it creates under ``SKIFF_ROOT`` to the
    owner of ``model``, so the service account can take the same locks afterwards."""
    if os.geteuid() != 0:
        return
    try:
        owner = os.stat(model)
        if owner.st_uid != 0:
            os.chown(path, owner.st_uid, owner.st_gid)
    except OSError:
        pass


@contextmanager
def file_lock(
    path: Path,
    timeout: float,
    on_wait: Callable[[], None] | None = None,
    poll: float = 0.05,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; call ``on_wait`` once if it is busy."""
    existed = os.path.exists(path)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    if not existed:
        owned_like(Path(path), Path(path).parent)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"timed out after {timeout:g}s waiting for the lock {path.name}") from None
                    time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
