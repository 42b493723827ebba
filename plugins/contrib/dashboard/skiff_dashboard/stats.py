"""CPU and memory per process over the last hour: a sampler thread and an inline SVG chart.

The sampler (started by ``dashboard:serve``) lists the engine's running containers every
:data:`INTERVAL` seconds, picks those named ``APP.PROCESS.N`` (the docker scheduler's
names) and reads each one's ``stats(stream=False)``. Samples are summed per app and
process and kept in memory for :data:`WINDOW` seconds (360 points of 10 s); nothing is
written to disk. :func:`svg` draws one small chart of two lines (CPU %, memory MiB).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

INTERVAL = 10.0
WINDOW = 3600.0
NAME = re.compile(r"/?(?P<app>[a-z0-9-]+)\.(?P<process>[a-z0-9_-]+)\.(?P<index>[0-9]+)")
log = logging.getLogger("skiff.dashboard.stats")


@dataclass(frozen=True)
class Sample:
    time: float
    cpu: float  # percent of one CPU, summed over the process's containers
    memory: float  # bytes, summed


def cpu_percent(stats: dict[str, Any]) -> float:
    """Docker's own formula: the container's CPU time over the host's, times the CPUs."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    return max(0.0, used / system * cpus * 100.0) if system > 0 and used > 0 else 0.0


def memory_bytes(stats: dict[str, Any]) -> float:
    """Memory in use without the page cache (as ``docker stats`` shows it)."""
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    return float(max(0, int(mem.get("usage", 0)) - int(cache)))


class Sampler:
    """Samples of every app's processes; ``sample_once`` is one round (the thread repeats it)."""

    def __init__(self, client: Callable[[], Any], interval: float = INTERVAL, window: float = WINDOW):
        self.client, self.interval, self.window = client, interval, window
        self.samples: dict[tuple[str, str], deque[Sample]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def sample_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        containers = [
            (m["app"], m["process"], c) for c in self.client().containers.list() if (m := NAME.fullmatch(c.name or ""))
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda item: (item[0], item[1], _stats(item[2])), containers))
        totals: dict[tuple[str, str], list[float]] = {}
        for app, process, stats in results:
            if stats is None:
                continue
            total = totals.setdefault((app, process), [0.0, 0.0])
            total[0] += cpu_percent(stats)
            total[1] += memory_bytes(stats)
        with self.lock:
            for key, (cpu, memory) in totals.items():
                self.samples.setdefault(key, deque(maxlen=int(self.window / self.interval) + 1))
                self.samples[key].append(Sample(now, cpu, memory))
            for series in self.samples.values():
                while series and series[0].time < now - self.window:
                    series.popleft()

    def series(self, app: str, process: str) -> list[Sample]:
        with self.lock:
            return list(self.samples.get((app, process), ()))

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # the engine is down: try again next round
                log.warning("stats: %s", exc)
            self.stopping.wait(self.interval)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="dashboard-stats", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()


def _stats(container: Any) -> dict[str, Any] | None:
    try:
        stats: dict[str, Any] = container.stats(stream=False)
        return stats
    except Exception:  # it went away between the list and the read
        return None


def _points(values: list[tuple[float, float]], top: float, start: float, width: int, height: int) -> str:
    return " ".join(
        f"{(t - start) / WINDOW * width:.1f},{height - (v / top * (height - 4) if top else 0) - 2:.1f}"
        for t, v in values
    )


def svg(samples: list[Sample], now: float | None = None, width: int = 320, height: int = 80) -> str:
    """An inline SVG of the last hour: CPU % (line ``cpu``) and memory (line ``memory``)."""
    now = time.time() if now is None else now
    start = now - WINDOW
    shown = [s for s in samples if s.time >= start]
    cpu_top = max([s.cpu for s in shown] + [1.0])
    mem_top = max([s.memory for s in shown] + [1.0])
    last = shown[-1] if shown else None
    label = (
        f"CPU {last.cpu:.1f}% (max {cpu_top:.1f}%), memory {last.memory / 1048576:.1f} MiB "
        f"(max {mem_top / 1048576:.1f} MiB), last hour"
        if last
        else "no samples yet"
    )
    cpu = _points([(s.time, s.cpu) for s in shown], cpu_top, start, width, height)
    mem = _points([(s.time, s.memory) for s in shown], mem_top, start, width, height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="none" stroke="#ccc"/>'
        f'<polyline class="cpu" fill="none" stroke="#d33" stroke-width="1.5" points="{cpu}"/>'
        f'<polyline class="memory" fill="none" stroke="#36c" stroke-width="1.5" points="{mem}"/>'
        "</svg>"
    )
