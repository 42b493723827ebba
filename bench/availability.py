"""Availability: failed requests and the longest gap under steady load through nginx.

The Flask sample app (tests/apps/flask) is pushed once with git over a private sshd
(python buildpack, docker scheduler, private nginx on 127.0.0.1). Then, in each of
BENCH_RUNS rounds (default 2), under a bounded load through nginx (2 clients opening
a new connection per request + 2 keep-alive clients, 5 ms pause, 127.0.0.1 only):

- baseline: 7 plain `nginx -s reload`s of the unchanged config, 1 s apart;
- skiff ("skiff redeploys x7"): 5 redeploys (`git push` of a code change), a `config:set` and a `ps:restart`,
  one after the other, each checked to serve its new answer.

For each window: requests, failed requests (an error or a non-200 answer; a keep-alive
request whose idle connection nginx closed is retried once on a new connection, as
browsers do, and counted apart as a retry) and the longest time without a successful
answer. Target: 0 failed requests on new connections.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report, runs  # noqa: E402
from _load import Load  # noqa: E402
from _stack import Server, flask_files, new_app, wait_for_engine  # noqa: E402

RELOADS = "nginx -s reload x7"
SKIFF = "skiff redeploys x7"
MODES = {"new": "new conn", "keepalive": "keep-alive"}
EVENTS: list[tuple[float, str]] = []  # (time, what started) in the skiff windows, for BENCH_DEBUG


def baseline_window(server: Server) -> tuple[float, float]:
    start = time.monotonic()
    for _ in range(7):
        server.nginx_reload()
        time.sleep(1.0)
    return start, time.monotonic()


def skiff_window(server: Server, app: str, repo: Path, round_no: int) -> tuple[float, float]:
    from skiff.testing.sshd import commit_files

    greeting = "hello from flask" if round_no == 1 else f"round {round_no - 1}"  # config:set of the last round
    start = time.monotonic()
    for i in range(1, 6):
        prefix = f"r{round_no}p{i}"
        commit_files(repo, {"app.py": flask_files(prefix)["app.py"]}, f"change {prefix}")
        EVENTS.append((time.monotonic(), f"push {prefix}"))
        server.push(repo, app)
        server.wait_for(app, f"{prefix} {greeting}")
    EVENTS.append((time.monotonic(), "config:set"))
    server.ssh("config:set", app, f"GREETING=round {round_no}")
    server.wait_for(app, f"r{round_no}p5 round {round_no}")
    EVENTS.append((time.monotonic(), "ps:restart"))
    server.ssh("ps:restart", app)
    EVENTS.append((time.monotonic(), "ps:restart returned"))
    time.sleep(1.0)
    return start, time.monotonic()


def main() -> None:
    server = Server("bench-avail-")
    rows: dict[str, dict[str, list[float]]] = {"failed": {}, "gap": {}, "requests": {}}
    try:
        app = new_app("avail")
        repo = server.repo(app)
        server.push(repo, app)
        server.wait_for(app, "hello from flask")
        with Load(server.nginx.http_port, server.host(app), limit=900) as load:
            time.sleep(1.0)
            for round_no in range(1, runs(2) + 1):
                try:
                    windows = {RELOADS: baseline_window(server), SKIFF: skiff_window(server, app, repo, round_no)}
                except Exception as exc:  # e.g. the shared engine restarted under us: skip the round
                    print(f" !     round {round_no} failed: {type(exc).__name__}: {str(exc)[-300:]}", flush=True)
                    wait_for_engine()
                    continue
                for scenario, (start, end) in windows.items():
                    for mode, label in MODES.items():
                        stats = load.stats(mode, start, end)
                        if os.environ.get("BENCH_DEBUG"):
                            before = [what for t, what in EVENTS if t <= stats["gap_end"]][-1:]
                            print(
                                f"  {scenario}, {label}: longest gap {stats['gap']:.3f}s ending "
                                f"{stats['gap_end'] - start:.2f}s into the window, during {before}",
                                flush=True,
                            )
                        for key in rows:  # failed, gap, requests
                            rows[key].setdefault(f"{scenario}, {label}", []).append(stats[key])
            retries = dict(load.retries)
            errors = {mode: load.errors[mode][:3] for mode in MODES}
        if not rows["failed"]:
            raise RuntimeError("no round succeeded")
        report("availability: failed requests", rows["failed"], unit="")
        report("availability: longest gap without an answer", rows["gap"], unit="s", baseline=f"{RELOADS}, new conn")
        rows["requests"]["keep-alive requests retried (whole run)"] = [retries["keepalive"]]
        report("availability: requests sent in the window", rows["requests"], unit="")
        for mode, sample in errors.items():
            if sample:
                print(f"  first {MODES[mode]} errors: {sample}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
