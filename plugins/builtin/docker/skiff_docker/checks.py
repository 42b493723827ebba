"""Health checks of new containers, without fixed waits.

app.json ``healthchecks.<process>`` entries (Dokku's keys): ``path``,
``content``, ``attempts``, ``timeout``, ``wait``, ``initialDelay``,
``uptime``. A check with a ``path`` polls the published port every 20 ms
until the process answers HTTP (connection errors do not count as attempts;
the app's start is bounded by the ``timeout`` setting), then wants a 2xx/3xx
answer holding ``content``; each wrong answer is one attempt, ``wait``
seconds apart. Without any check, a web process must answer ``/`` with a
status below 500, and every other process must stay up ``uptime`` seconds.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from typing import Any, Callable

POLL = 0.02
ALIVE_EVERY = 0.25


class CheckFailed(Exception):
    """A container failed one of its checks (the message says which and why)."""


@dataclass
class Check:
    name: str
    path: str | None = None
    content: str | None = None
    attempts: int = 5
    timeout: float = 5.0
    wait: float = 1.0
    initial_delay: float = 0.0
    uptime: float = 0.0
    max_status: int = 399  # a path check wants 2xx/3xx; the default web check < 500


def _number(entry: dict[str, Any], key: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return default
    return float(value)


def checks_for(app_json: dict[str, Any], process: str, settings: dict[str, Any]) -> list[Check]:
    """The checks a new ``process`` container must pass."""
    entries = ((app_json or {}).get("healthchecks") or {}).get(process) if isinstance(app_json, dict) else None
    attempts = int(settings.get("attempts", 5))
    if isinstance(entries, list) and entries:
        result = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            if entry.get("type") in ("liveness",):  # only startup/readiness checks gate a deploy
                continue
            path = entry.get("path")
            result.append(
                Check(
                    name=str(entry.get("name") or f"{process} check {i + 1}"),
                    path=path if isinstance(path, str) and path.startswith("/") else None,
                    content=entry.get("content") if isinstance(entry.get("content"), str) else None,
                    attempts=max(1, int(_number(entry, "attempts", attempts))),
                    timeout=_number(entry, "timeout", 5.0),
                    wait=_number(entry, "wait", 1.0),
                    initial_delay=_number(entry, "initialDelay", 0.0),
                    uptime=_number(entry, "uptime", 0.0),
                )
            )
        if result:
            return result
    if process == "web":
        return [Check(name="default web check", path="/", attempts=attempts, wait=0.5, max_status=499)]
    return [Check(name="default uptime check", uptime=float(settings.get("uptime", 2)))]


def http_get(port: int, path: str, timeout: float) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "skiff-checks", "Connection": "close"})
        response = conn.getresponse()
        body = response.read(1 << 20).decode("utf-8", "replace")
        return response.status, body
    finally:
        conn.close()


def run_check(
    check: Check,
    port: int | None,
    alive: Callable[[], str | None],
    start_timeout: float,
) -> None:
    """Run one check; raise :class:`CheckFailed`.

    ``alive()`` returns None while the container runs, else why it is not.
    """
    if check.initial_delay:
        time.sleep(check.initial_delay)
    if check.path is not None:
        if port is None:
            raise CheckFailed(f"{check.name}: the process publishes no port to check {check.path}")
        _http_check(check, port, alive, start_timeout)
    if check.uptime:
        deadline = time.monotonic() + check.uptime
        while time.monotonic() < deadline:
            reason = alive()
            if reason:
                raise CheckFailed(f"{check.name}: {reason} within {check.uptime:g}s")
            time.sleep(min(ALIVE_EVERY, max(0.0, deadline - time.monotonic())))
        reason = alive()
        if reason:
            raise CheckFailed(f"{check.name}: {reason}")


def _http_check(check: Check, port: int, alive: Callable[[], str | None], start_timeout: float) -> None:
    deadline = time.monotonic() + start_timeout
    next_alive = 0.0
    failures = 0
    last = ""
    while True:
        try:
            status, body = http_get(port, check.path or "/", check.timeout)
        except (OSError, http.client.HTTPException) as exc:
            # not listening yet (docker-proxy accepts, then resets): no attempt used
            now = time.monotonic()
            if now >= deadline:
                raise CheckFailed(
                    f"{check.name}: no HTTP answer on {check.path} within {start_timeout:g}s ({exc})"
                ) from exc
            if now >= next_alive:
                reason = alive()
                if reason:
                    raise CheckFailed(f"{check.name}: {reason} before answering HTTP") from exc
                next_alive = now + ALIVE_EVERY
            time.sleep(POLL)
            continue
        if status <= check.max_status and (check.content is None or check.content in body):
            return
        failures += 1
        last = f"HTTP {status}" if status > check.max_status else f"the answer lacks {check.content!r}"
        if failures >= check.attempts:
            raise CheckFailed(f"{check.name}: GET {check.path} gave {last} ({failures} attempts)")
        time.sleep(check.wait)
