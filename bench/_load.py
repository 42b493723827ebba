"""A small, bounded HTTP load generator against 127.0.0.1 (standard library only).

Two kinds of clients run side by side, each in its own threads:

- ``new``: a new TCP connection for every request (``Connection: close``);
- ``keepalive``: one connection reused for every request. When a *reused*
  connection is closed before any byte of the answer arrives (nginx retiring
  an idle connection at a reload), the client sends the request again on a new
  connection, as browsers and most HTTP client libraries do; that is counted as
  a ``retry``, not as a failure. Any other error and any non-200 answer is a
  failure.

Every request's end time and outcome is kept, so :meth:`Load.stats` can give,
for a window, the requests, the failures and the longest time without a
successful answer ("gap").
"""

from __future__ import annotations

import http.client
import threading
import time


class Load:
    def __init__(
        self, port: int, host: str, new: int = 2, keepalive: int = 2, pause: float = 0.005, limit: float = 300.0
    ):
        self.port, self.host, self.pause, self.limit = port, host, pause, limit
        self.counts = {"new": new, "keepalive": keepalive}
        self.samples: dict[str, list[tuple[float, bool]]] = {"new": [], "keepalive": []}
        self.retries = {"new": 0, "keepalive": 0}
        self.errors: dict[str, list[str]] = {"new": [], "keepalive": []}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        deadline = time.monotonic() + self.limit
        for mode, count in self.counts.items():
            for _ in range(count):
                thread = threading.Thread(target=self._run, args=(mode, deadline), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _record(self, mode: str, ok: bool, error: str | None = None) -> None:
        with self._lock:
            self.samples[mode].append((time.monotonic(), ok))
            if error:
                self.errors[mode].append(error)

    def _once(self, conn: http.client.HTTPConnection, close: bool) -> tuple[int, str]:
        headers = {"Host": self.host}
        if close:
            headers["Connection"] = "close"
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        if response.will_close:
            conn.close()
        return response.status, body

    def _run(self, mode: str, deadline: float) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            reused = conn is not None and conn.sock is not None
            if conn is None or conn.sock is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                status, body = self._once(conn, close=(mode == "new"))
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                if reused:  # a stale keep-alive connection: retry once on a new one
                    with self._lock:
                        self.retries[mode] += 1
                    continue
                self._record(mode, False, f"{type(exc).__name__}: {exc}")
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = None
                self._record(mode, False, f"{type(exc).__name__}: {exc}")
                continue
            if mode == "new":
                conn.close()
                conn = None
            ok = status == 200
            self._record(mode, ok, None if ok else f"HTTP {status}: {body.strip()[:60]}")
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def stats(self, mode: str, start: float, end: float) -> dict[str, float]:
        """Requests, failures and the longest gap between successful answers in [start, end]."""
        with self._lock:
            window = [(t, ok) for t, ok in self.samples[mode] if start <= t <= end]
        ok_times = [t for t, ok in window if ok]
        points = [start] + ok_times + [end]
        gap, gap_end = max((b - a, b) for a, b in zip(points, points[1:]))
        return {"requests": len(window), "failed": sum(1 for _, ok in window if not ok), "gap": gap, "gap_end": gap_end}
