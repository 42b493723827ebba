"""Helpers of the cron plugin's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def make_release(h: Any, app: str, cron: list[dict[str, str]] | None, status: str = "succeeded") -> Any:
    """Record a release of ``app`` whose app.json holds ``cron`` (succeeded: it becomes current)."""
    r = h.state.create_release(
        app,
        description="deploy",
        image="img",
        revision=None,
        config={},
        processes={},
        meta={"app_json": {"cron": cron or []}},
    )
    h.state.finish_release(r, status, {})
    return r


@pytest.fixture
def release() -> Callable[..., Any]:
    return make_release
