"""Swarm: an in-place start-first update against Skiff's switch between two services.

Usage: ``python bench/swarm_update.py unix:///PATH/docker.sock`` (or ``BENCH_SWARM_MANAGER``) with a swarm manager that
holds ``skiff/stack-base:trixie`` (a single-node swarm in a network namespace of its own,
as the swarm plugin's e2e fixture starts, is enough). Only that engine's tasks get traffic.

A web service of BENCH_REPLICAS (default 1) tasks (host-mode, dynamically published ports, the swarm plugin's spec
and healthcheck) gets a steady load from 4 clients. Each request goes to one of the task
addresses the "proxy" knows, trying up to 3 of them as nginx's ``proxy_next_upstream`` does;
the proxy's list is refreshed from the task list every 0.25 s (a better case than nginx
following a task that moved through ``swarm:sync``). Then, for BENCH_RUNS rounds:

- ``start-first update``: ``service update`` of the running service (a new env value:
  every task is replaced, start-first, one at a time), until it converged;
- ``two services``: what the swarm plugin does: a second service, all of its tasks
  healthy, the proxy told its addresses, then the first one removed.

Printed: requests and failed requests of each window.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request

import docker

from skiff_swarm import engine, spec

IMAGE = "skiff/stack-base:trixie"
LINE = "exec python3 -m http.server $PORT"


class Proxy:
    def __init__(self) -> None:
        self.known: list[str] = []
        self.ok = 0
        self.failed = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def client(self) -> None:
        n = 0
        while not self.stop.is_set():
            known = list(self.known)
            done = False
            for attempt in range(min(3, len(known))):
                address = known[(n + attempt) % len(known)]
                try:
                    with urllib.request.urlopen(f"http://{address}/", timeout=3) as answer:
                        answer.read()
                    done = True
                    break
                except OSError:
                    continue
            n += 1
            with self.lock:
                if done:
                    self.ok += 1
                else:
                    self.failed += 1
            time.sleep(0.005)

    def count(self) -> tuple[int, int]:
        with self.lock:
            return self.ok, self.failed


def addresses(c, ident: str) -> list[str]:
    return spec.upstreams(engine.tasks(c, ident), engine.nodes(c))


REPLICAS = int(os.environ.get("BENCH_REPLICAS", "1"))


def create(c, name_version: int, replicas: int = REPLICAS) -> str:
    kwargs = spec.service_spec(
        app="bench",
        process="web",
        version=name_version,
        image=IMAGE,
        line=LINE,
        config={"ROUND": "0"},
        revision=None,
        replicas=replicas,
        port=8000,
        app_json={},
        start_timeout=30,
    )
    ident = c.api.create_service(**kwargs)["ID"]
    wait_converged(c, ident, replicas)
    return ident


def wait_converged(c, ident: str, replicas: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = engine.tasks(c, ident)
        live = [t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]
        stale = [t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] != "running"]
        update = (c.api.inspect_service(ident).get("UpdateStatus") or {}).get("State")
        if len(live) >= replicas and not stale and update in (None, "completed"):
            return
        time.sleep(0.25)
    raise RuntimeError("the service did not converge")


def manager_socket() -> str | None:
    """The manager's ``DOCKER_HOST``: ``BENCH_SWARM_MANAGER`` or the first argument."""
    candidates = [os.environ.get("BENCH_SWARM_MANAGER", ""), *sys.argv[1:2]]
    return next((c for c in candidates if c.startswith(("unix://", "tcp://", "ssh://"))), None)


def main() -> int:
    manager = manager_socket()
    if manager is None:
        print("swarm_update: give the swarm manager's socket (argument or BENCH_SWARM_MANAGER)", file=sys.stderr)
        return 2
    c = docker.DockerClient(base_url=manager, timeout=120)
    engine.ensure_network(c, "bench")
    proxy = Proxy()
    current = {"id": create(c, 1)}
    proxy.known = addresses(c, current["id"])

    def follow() -> None:
        while not proxy.stop.is_set():
            try:
                found = addresses(c, current["id"])
                if found:
                    proxy.known = found
            except Exception:
                pass
            time.sleep(0.25)

    threads = [threading.Thread(target=proxy.client, daemon=True) for _ in range(4)]
    threads.append(threading.Thread(target=follow, daemon=True))
    for t in threads:
        t.start()
    results: list[tuple[str, int, int]] = []
    version = 1
    for round_ in range(int(os.environ.get("BENCH_RUNS", "2"))):
        ok0, failed0 = proxy.count()
        spec_ = c.api.inspect_service(current["id"])
        template = spec_["Spec"]["TaskTemplate"]
        template["ContainerSpec"]["Env"] = [e for e in template["ContainerSpec"]["Env"] if not e.startswith("ROUND=")]
        template["ContainerSpec"]["Env"].append(f"ROUND={round_ + 1}")
        c.api.update_service(
            current["id"],
            spec_["Version"]["Index"],
            task_template=template,
            name=spec_["Spec"]["Name"],
            labels=spec_["Spec"]["Labels"],
            mode=spec_["Spec"]["Mode"],
            update_config=spec_["Spec"]["UpdateConfig"],
            endpoint_spec=spec_["Spec"]["EndpointSpec"],
        )
        time.sleep(1)
        wait_converged(c, current["id"], REPLICAS)
        time.sleep(1)
        ok1, failed1 = proxy.count()
        results.append(("start-first update", ok1 - ok0, failed1 - failed0))

        version += 1
        new = create(c, version)
        proxy.known = addresses(c, new)
        old, current["id"] = current["id"], new
        time.sleep(2)  # wait-to-retire
        engine.remove_service(c, old)
        time.sleep(3)
        ok2, failed2 = proxy.count()
        results.append(("two services", ok2 - ok1, failed2 - failed1))
    proxy.stop.set()
    for t in threads:
        t.join(10)
    engine.remove_service(c, current["id"])
    engine.remove_network(c, "bench")
    for name, ok, failed in results:
        print(f"{name:<20} replicas {REPLICAS}  requests {ok + failed:>6}  failed {failed:>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
