"""Proxy overhead: requests/s and p50/p99 latency through nginx next to direct to the container.

examples/catmeow is deployed with the installed plugins (python buildpack, docker
scheduler, nginx plugin) on a temp SKIFF_ROOT, behind a private nginx on a free loopback
port (worker_processes auto, as Debian's). wrk (keep-alive) then hits the container's
published port directly and nginx with the app's Host header, interleaved, BENCH_RUNS
rounds (default 3): latency (p50/p99) with one connection, so queueing in the app server
does not hide the proxy's hop, and requests/s with BENCH_CONNECTIONS (default 16);
BENCH_SECONDS (default 5) each.

Targets (issue 18): p50 overhead at most 0.3 ms; at least 85% of the direct throughput, with
the app's access log on (the nginx plugin's own config, as deployed).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report, runs  # noqa: E402

TOP = Path(__file__).resolve().parents[1]
APP = "benchcat"
DOMAIN = "bench.test"


def wrk(url: str, host: str | None, seconds: int, connections: int) -> dict[str, float]:
    args = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if host:
        args[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise RuntimeError(f"wrk saw errors: {errors.group(0)}")
    return {"rps": rps, "p50": _ms(out, "50%"), "p99": _ms(out, "99%")}


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def deploy(root: Path) -> int:
    """Deploy catmeow; return the container's published port."""
    from skiff import lifecycle
    from skiff.context import Context
    from skiff.output import Output
    from skiff.testing import DirReceiver, dir_source, make_plugin_manager

    pm = make_plugin_manager(("dir", DirReceiver()), entry_points=True)
    context = Context(pm, root=root, output=Output(quiet=True))
    context.create_app(APP)
    context.state.set_property("nginx", "global-domains", [DOMAIN])
    src = Path(tempfile.mkdtemp(prefix="bench-src-"))
    shutil.copytree(TOP / "examples" / "catmeow", src, dirs_exist_ok=True)
    release = lifecycle.deploy(context, APP, dir_source(src, "0" * 40))
    upstream = release.meta["upstreams"][0]
    context.close()
    return int(upstream.rpartition(":")[2])


def cleanup(root: Path) -> None:
    import docker

    from skiff.testing.docker import DockerCleanup

    client = docker.from_env()
    c = DockerCleanup(client)
    c.app(APP)
    c.cleanup()
    client.close()
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    from skiff.testing.nginx import start_nginx

    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    seconds = int(os.environ.get("BENCH_SECONDS", 5))
    connections = int(os.environ.get("BENCH_CONNECTIONS", 16))
    root = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    nginx = start_nginx(root, workers="auto")
    os.environ.update(nginx.env)
    os.environ["SKIFF_ROOT"] = str(root)
    try:
        port = deploy(root)
        direct_url = f"http://127.0.0.1:{port}/"
        proxy_url = f"http://127.0.0.1:{nginx.http_port}/"
        host = f"{APP}.{DOMAIN}"
        wrk(direct_url, None, 1, connections)  # warm up both paths
        wrk(proxy_url, host, 1, connections)
        samples: dict[str, list[dict[str, float]]] = {"direct": [], "nginx": []}
        paths = (("direct", direct_url, None), ("nginx", proxy_url, host))
        for _ in range(runs(3)):
            # latency: one connection (no queueing); throughput: many. The two paths run back to
            # back for each figure, so a burst of other load hits both of a pair alike.
            many = {name: wrk(url, header, seconds, connections) for name, url, header in paths}
            one = {name: wrk(url, header, seconds, 1) for name, url, header in paths}
            for name, _url, _header in paths:
                samples[name].append({"p50": one[name]["p50"], "p99": one[name]["p99"], "rps": many[name]["rps"]})
    finally:
        nginx.stop()
        cleanup(root)
    labels = {"direct": "direct to the container (baseline)", "nginx": "through nginx (Host header)"}
    for metric, unit in (("rps", "/s"), ("p50", "ms"), ("p99", "ms")):
        rows = {labels[k]: [s[metric] for s in v] for k, v in samples.items()}
        report(f"proxy_{metric}", rows, unit=unit, baseline=labels["direct"])
    med = {k: {m: statistics.median(s[m] for s in v) for m in ("rps", "p50", "p99")} for k, v in samples.items()}
    overhead = med["nginx"]["p50"] - med["direct"]["p50"]
    share = med["nginx"]["rps"] / med["direct"]["rps"]
    pairs = [n["rps"] / d["rps"] for n, d in zip(samples["nginx"], samples["direct"])]
    pair_overheads = [n["p50"] - d["p50"] for n, d in zip(samples["nginx"], samples["direct"])]
    print(
        f"\n  per round (nginx / direct of the same round): throughput {statistics.median(pairs):.0%} "
        f"(min {min(pairs):.0%}, max {max(pairs):.0%}); p50 overhead {statistics.median(pair_overheads):.3f} ms"
    )
    print(f"\n  p50 overhead {overhead:.3f} ms (target <= 0.3 ms): {'ok' if overhead <= 0.3 else 'MISSED'}")
    print(f"  throughput through nginx {share:.0%} of direct (target >= 85%): {'ok' if share >= 0.85 else 'MISSED'}")


if __name__ == "__main__":
    main()
