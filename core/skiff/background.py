"""Work a command leaves running after its deploy, and waiting for it.

A plugin may hand work that need not hold up the deploy (a shared cache filled after the
build, old layers pruned) to a thread and :func:`track` its future. The push waits for it
before it ends, so what that work prints still reaches the client and the next command in the
same process finds it done: a separate ``skiff`` process does so at exit (the interpreter joins
executor threads); ``skiff ssh-command`` serving the pre-receive hook in-process calls
:func:`wait` before it tells the hook the deploy's status.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

# concurrent.futures (which imports logging) is imported by wait(), and by the plugins that make
# futures: a push's start (skiff_git.receiver imports this module) does not need it.

T = TypeVar("T")

_lock = threading.Lock()
_pending: list[Future[object]] = []


def track(future: Future[T]) -> Future[T]:
    """Count ``future`` as work of this process that a push waits for; returns it."""
    with _lock:
        _pending[:] = [f for f in _pending if not f.done()]
        _pending.append(future)  # type: ignore[arg-type]
    return future


def wait(timeout: float | None = None) -> None:
    """Wait until the tracked work is done (or ``timeout`` seconds passed), including work it tracked."""
    while True:
        with _lock:
            pending = [f for f in _pending if not f.done()]
            _pending[:] = pending
        if not pending:
            return
        from concurrent.futures import wait as wait_all

        if wait_all(pending, timeout=timeout).not_done:
            return
