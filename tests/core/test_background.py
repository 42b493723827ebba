"""skiff.background: the work a push waits for before it ends."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from skiff import background


def test_wait_returns_once_tracked_work_and_the_work_it_tracked_is_done():
    order: list[str] = []
    pool = ThreadPoolExecutor(2)

    def inner() -> None:
        time.sleep(0.05)
        order.append("inner")

    def outer() -> None:
        time.sleep(0.05)
        background.track(pool.submit(inner))  # tracked while wait() is already waiting
        order.append("outer")

    background.track(pool.submit(outer))
    background.wait()
    assert order == ["outer", "inner"]
    pool.shutdown()


def test_wait_gives_up_after_its_timeout_and_nothing_tracked_returns_at_once():
    never: Future[None] = Future()
    background.track(never)
    started = time.monotonic()
    background.wait(timeout=0.1)
    assert 0.05 < time.monotonic() - started < 2
    never.set_result(None)
    started = time.monotonic()
    background.wait()
    assert time.monotonic() - started < 0.5
