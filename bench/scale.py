"""Scale on one host: the 1st vs the 20th app, nginx with 50 apps, Skiff's own memory.

On a private Skiff server (SKIFF_ROOT, nginx and sshd on 127.0.0.1; real buildpacks,
docker scheduler and nginx plugin):

1. 20 copies of the Flask sample app are pushed with `git push`, each timed from the
   push until nginx serves it. Apps 1-3 (an empty host) are compared with apps 18-20
   (17 apps running); those six are pushed one at a time, apps 4-17 three at a time only
   to fill the host sooner.
2. 30 more apps are registered with a release that points at app 1's container (only
   the proxy reads it; deploying 30 more real apps would add minutes and measure the
   builder again), then `skiff proxy:build-config --all` (render 50 files, `nginx -t`,
   reload) and `proxy:build-config APP` are timed next to a plain
   `nginx -t && nginx -s reload` of the same 50-app config (BENCH_RUNS rounds, default 5).
3. Peak memory (VmHWM of the skiff process, sampled every 5 ms) of a local
   `skiff deploy APP` (build + release + deploy of app 1 from its repository) and of
   `skiff config:set`, next to `skiff --help` and `python -c "import click"` (3 rounds).
   The containers, dockerd and the short-lived git processes are not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs, time_command  # noqa: E402
from _stack import Server, flask_files, new_app, wait_for_engine  # noqa: E402

APPS = int(os.environ.get("BENCH_SCALE_APPS", 20))  # at least 6
TOTAL = 50


def deploy_one(server: Server, i: int) -> tuple[str, float]:
    app = new_app(f"s{i:02d}x")
    repo = server.repo(app, flask_files(f"app{i}"))
    t0 = time.monotonic()
    try:
        server.push(repo, app)
    except RuntimeError as exc:  # e.g. the shared engine restarted under us: once more, timed afresh
        print(f" !     app {i}: {str(exc)[-200:]}; pushing again", flush=True)
        wait_for_engine()
        t0 = time.monotonic()
        server.push(repo, app)
    t1 = server.wait_for(app, f"app{i} hello from flask")
    print(f"  app {i:2d}: {t1 - t0:.2f}s", flush=True)
    return app, t1 - t0


def deploy_apps(server: Server) -> list[tuple[str, float]]:
    """Apps 1-3 and 18-20 one at a time (measured); 4-17 three at a time (only to fill the host)."""
    deployed = [deploy_one(server, i) for i in (1, 2, 3)]
    with ThreadPoolExecutor(3) as pool:
        deployed += list(pool.map(lambda i: deploy_one(server, i), range(4, APPS - 2)))
    deployed += [deploy_one(server, i) for i in range(APPS - 2, APPS + 1)]
    return deployed


def register_proxied_apps(server: Server, template_app: str, count: int) -> list[str]:
    """Apps with one succeeded release copied from ``template_app`` (same upstream)."""
    from skiff.state import State

    names = []
    state = State(server.root)
    try:
        template = state.current_release(template_app)
        assert template is not None and template.meta.get("upstreams"), "app 1 has no upstreams"
        for i in range(count):
            app = new_app(f"p{i:02d}x")
            server.local("apps:create", app)
            release = state.create_release(
                app,
                description="bench: copy of app 1",
                image=template.image,
                revision=template.revision,
                config={},
                processes=template.processes,
                meta=template.meta,
            )
            state.finish_release(release, "succeeded", {})
            names.append(app)
    finally:
        state.close()
    server.apps.extend(names)
    return names


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_rss_mb(argv: list[str], env: dict[str, str]) -> float:
    """Peak RSS (VmHWM) in MB of the process running ``argv``, sampled every 5 ms until it exits.

    Not ``wait4``'s ru_maxrss: Linux carries the parent's high-water mark over the
    fork + exec, so every child of this (bigger) process would report at least its size.
    """
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm_kb(proc.pid))  # VmHWM only grows: the last sample is the largest
        time.sleep(0.005)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return peak / 1024


def main() -> None:
    server = Server("bench-scale-")
    try:
        deployed = deploy_apps(server)
        times = [t for _, t in deployed]
        last = f"apps {APPS - 2}-{APPS} ({APPS - 3}+ apps running)"
        report(
            "scale: deploy of the Nth app (push -> served)",
            {
                "apps 1-3 (first on the host)": times[:3],
                last: times[-3:],
            },
            baseline="apps 1-3 (first on the host)",
        )

        first = deployed[0][0]
        register_proxied_apps(server, first, TOTAL - APPS)
        nginx = server.nginx
        nginx_cmd = [nginx.binary, "-p", str(nginx.prefix), "-c", str(nginx.conf)]
        env = server.local_env
        files = list((server.root / "nginx" / "conf.d").glob("*.conf"))

        def plain_reload() -> float:
            start = time.perf_counter()
            subprocess.run(nginx_cmd + ["-t", "-q"], check=True, capture_output=True)
            subprocess.run(nginx_cmd + ["-s", "reload"], check=True, capture_output=True)
            return time.perf_counter() - start

        cases = {
            "nginx -t && nginx -s reload (baseline)": plain_reload,
            "skiff apps:list (CLI start-up, for scale)": lambda: time_command([server.skiff, "apps:list"], env),
            f"proxy:build-config --all ({TOTAL} apps)": lambda: time_command(
                [server.skiff, "proxy:build-config", "--all"], env
            ),
            f"proxy:build-config APP (1 of {TOTAL})": lambda: time_command(
                [server.skiff, "proxy:build-config", first], env
            ),
        }
        samples = interleave(cases, runs(5))
        files = list((server.root / "nginx" / "conf.d").glob("*.conf"))
        assert len(files) >= TOTAL, f"only {len(files)} nginx files"
        report(
            f"scale: nginx config rebuild + reload, {TOTAL} apps",
            samples,
            baseline="nginx -t && nginx -s reload (baseline)",
        )

        python = sys.executable
        memory = {
            'python -c "import click" (floor)': lambda: peak_rss_mb([python, "-c", "import click"], env),
            "skiff --help": lambda: peak_rss_mb([server.skiff, "--help"], env),
            "skiff config:set APP (redeploy)": lambda: peak_rss_mb(
                [server.skiff, "config:set", first, f"N={time.time()}"], env
            ),
            "skiff deploy APP (build + deploy)": lambda: peak_rss_mb([server.skiff, "deploy", first], env),
        }
        report(
            "scale: skiff peak memory (max RSS)",
            interleave(memory, 3),
            unit="MB",
            baseline='python -c "import click" (floor)',
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
