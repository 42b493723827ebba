"""Push -> serving on a three-node swarm against the single-host docker scheduler, same run.

One Skiff server (bench/deploy.py's: its own SKIFF_ROOT, a private sshd and nginx on
loopback, the python buildpack building on this machine's engine, ``SKIFF_TIMELINE`` set)
and, beside it, three Docker engines in network namespaces of their own forming a swarm
(:mod:`skiff.testing.cluster`). The registry is the one Skiff runs (``registry:serve`` on
this machine's address on the cluster network, TLS with its own CA that every node's engine
trusts); this machine's engine pushes to it over loopback (``push-server``), as
``make demo-cluster`` sets it up. ``swarm:set --global manager`` points at the first node.

For BENCH_RUNS interleaved rounds (default 3; the cases' order rotates from round to round),
each on fresh apps, the Flask sample app (tests/apps/flask) is pushed with a real ``git push``
over the sshd and timed until nginx serves its text (a prober sends a GET every 10 ms), then a
code-only commit is pushed and timed until the new text is served:

- ``single-host``: the app on this machine's engine (the docker scheduler, web=1);
- ``cluster web=1``: ``scheduler:set APP selected swarm``;
- ``cluster web=3``: the same with ``ps:scale APP web=3`` stored before the first push
  (the tasks spread over the three nodes; every node pulls the image).

Printed: medians, min, max and the ratio to the single-host push of the same kind; the push
timeline of each kind (the server's marks: build, the registry push (``swarm.image-for-nodes``),
``swarm.services-created``, ``swarm.tasks-started`` (pulled and started on their nodes),
``swarm.tasks-healthy``, nginx; the client's: command returned,
new text served); the sizes of the build image, the run image and the app's release image
(what every node pulls), via bench/run_image.py's names.

Needs root (namespaces), ``docker-registry``, the stack images (``make stack``) and PyPI.
Not part of ``make bench`` (it takes about 10 minutes here): run it as

    .venv/bin/python bench/cluster.py      # or: make bench BENCH=cluster
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
# isort: off
import deploy as single  # noqa: E402  (bench/deploy.py: its server, prober and timelines)
from _common import RESULTS, report, runs  # noqa: E402
from _stack import remove_labelled, wait_for_engine  # noqa: E402
from run_image import RUN, STACK, run_image  # noqa: E402

# isort: on

SINGLE = "single-host"
KINDS = ("cold push", "code-only push")
CASES = {SINGLE: None, "cluster web=1": 1, "cluster web=3": 3}  # name -> swarm replicas (None: docker)
TEXT = "hello from flask"


class Bench:
    """The Skiff server, the cluster and the registry; :meth:`close` removes all of them."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        self.apps: list[str] = []
        self.server: single.SkiffServer | None = None
        self.cluster: Any = None
        self.registry = False
        self.image_mb = 0.0  # the size of the last release image (what the nodes pull)
        self.cluster_up = 0.0

    def start(self) -> None:
        from skiff.testing import cluster

        start = time.monotonic()
        self.cluster = cluster.start(3)
        self.cluster_up = time.monotonic() - start
        self.server = single.SkiffServer(self.work)
        self._registry()
        self.server.local("swarm:set", "--global", "manager", self.cluster.manager.base_url)

    def _registry(self) -> None:
        assert self.server is not None
        host = self.cluster.host_address
        with socket.socket() as probe:
            probe.bind((host, 0))
            address = f"{host}:{probe.getsockname()[1]}"
        self.registry = True
        self.server.local("registry:serve", address)
        report_ = self.output("registry:report", "--format", "json")
        ca = Path(json.loads(report_)["ca_certificate"]).read_bytes()
        for node in self.cluster.nodes:
            node.trust(address, ca)
        self.server.local("registry:set", "--global", "server", address)
        self.server.local("registry:set", "--global", "push-server", f"127.0.0.1:{address.rsplit(':', 1)[1]}")

    def output(self, *args: str) -> str:
        import os
        import subprocess

        assert self.server is not None
        env = {**os.environ, **self.server.env}
        return subprocess.run([self.server.skiff, *args], env=env, check=True, capture_output=True, text=True).stdout

    def round(self, case: str, replicas: int | None) -> dict[str, float]:
        """Cold push, then a code-only push, of a fresh app; seconds until nginx serves each."""
        from skiff.testing.sshd import commit_files, init_repo

        server = self.server
        assert server is not None
        app = f"bcl{secrets.token_hex(3)}"
        self.apps.append(app)
        server.ssh("apps:create", app)
        if replicas is not None:
            server.ssh("scheduler:set", app, "selected", "swarm")
            server.ssh("swarm:set", app, "wait-to-retire", "2")
            if replicas != 1:
                server.ssh("ps:scale", app, f"web={replicas}")  # stored: the first deploy runs them
        result: dict[str, float] = {}
        try:
            with single.Prober(server.nginx.http_port, f"{app}.{single.DOMAIN}") as probe:
                repo = init_repo(self.work / app, single.flask_files())
                t0, marks = server.push_timed(repo, app)
                served = probe.wait_for(TEXT, t0)
                result["cold push"] = served - t0
                single.record_timeline(f"{case}: cold push", server, t0, single.marks_with(marks, served))
                commit_files(repo, {"app.py": single.flask_files("v2")["app.py"]}, "code change")
                t0, marks = server.push_timed(repo, app)
                served = probe.wait_for(f"v2 {TEXT}", t0)
                result["code-only push"] = served - t0
                single.record_timeline(f"{case}: code-only push", server, t0, single.marks_with(marks, served))
            version, image = self._release(app)
            self.image_mb = size_mb(image)
            if replicas is not None:
                self._check_spread(app, replicas, version)
        finally:
            self._destroy(app)
        return result

    def _check_spread(self, app: str, replicas: int, version: int) -> None:
        """The figures are the cluster's only if the release's tasks ran there, one per node
        (the previous release's tasks may still be retiring: they are not counted)."""
        listed = json.loads(self.output("apps:report", app, "--format", "json"))["scheduler"]["tasks"]
        tasks = [t for t in listed if f" v{version} " in f" {t} "]
        nodes = {t.rsplit(" on ", 1)[1] for t in tasks}
        if len(tasks) != replicas or len(nodes) != replicas:
            raise RuntimeError(f"{app} v{version}: expected {replicas} task(s) on {replicas} node(s), got {listed}")

    def _release(self, app: str) -> tuple[int, str]:
        """The current release's version and image."""
        releases = json.loads(self.output("releases", app, "--format", "json"))
        latest = max(releases, key=lambda r: r["version"])
        return int(latest["version"]), str(latest["image"])

    def _destroy(self, app: str) -> None:
        assert self.server is not None
        try:
            self.server.local("apps:destroy", app, "--force")
        except Exception as exc:  # noqa: BLE001 - report, keep going
            print(f" !     could not destroy {app}: {exc}", flush=True)

    def close(self) -> list[str]:
        """Remove everything; what of the cluster is left (empty when all went)."""
        wait_for_engine()
        if self.server is not None:
            if self.registry:
                try:
                    self.server.local("registry:serve", "--stop")
                except Exception as exc:  # noqa: BLE001
                    print(f" !     could not stop the registry: {exc}", flush=True)
            self.server.close()
        try:
            remove_labelled(self.apps)
        except Exception as exc:  # noqa: BLE001
            print(f" !     could not remove the images of {', '.join(self.apps)}: {exc}", flush=True)
        left: list[str] = []
        if self.cluster is not None:
            self.cluster.stop()
            left = self.cluster.leftovers()
        shutil.rmtree(self.work, ignore_errors=True)
        return left


def size_mb(ref: str) -> float:
    import docker

    client = docker.from_env()
    try:
        return float(client.images.get(ref).attrs["Size"]) / 1e6
    finally:
        client.close()


def print_ratios(samples: dict[str, dict[str, list[float]]]) -> None:
    for kind in KINDS:
        report(
            f"cluster: {kind} -> served (Flask app)",
            {f"{case}, {kind}": samples[case][kind] for case in CASES if samples[case].get(kind)},
            baseline=f"{SINGLE}, {kind}",
        )


def main() -> None:
    from skiff.testing import cluster

    problem = cluster.preflight() or (None if shutil.which("docker-registry") else "docker-registry is not installed")
    if problem:
        raise RuntimeError(f"bench/cluster.py cannot run here: {problem}")
    wait_for_engine()
    run_image()  # the app images are built on it; derive it first if the stack is newer
    n = runs(3)
    bench = Bench()
    samples: dict[str, dict[str, list[float]]] = {case: {} for case in CASES}
    failed = 0
    left: list[str] = []
    try:
        bench.start()
        print(f"       three engines up as a swarm in {bench.cluster_up:.1f}s", flush=True)
        for i in range(n):
            order = list(CASES.items())
            for case, replicas in order[i % len(order) :] + order[: i % len(order)]:  # each case first once
                try:
                    values = bench.round(case, replicas)
                except Exception as exc:  # one broken round must not hide the others
                    failed += 1
                    print(f" !     {case} round {i + 1} failed: {type(exc).__name__}: {str(exc)[-400:]}", flush=True)
                    continue
                for key, value in values.items():
                    samples[case].setdefault(key, []).append(value)
                print(
                    f"       {case} round {i + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in values.items()), flush=True
                )
        image_sizes = {"build image": size_mb(STACK), "run image": size_mb(RUN), "app release image": bench.image_mb}
    finally:
        left = bench.close()
    if not samples[SINGLE] or not any(samples[c] for c in CASES if c != SINGLE):
        raise RuntimeError("no round succeeded")
    print(f"\ncluster ({n} interleaved rounds, {failed} failed; load average {load()})")
    print_ratios(samples)
    report(
        "cluster: image sizes (MB)",
        {name: [mb] for name, mb in image_sizes.items()},
        "MB",
        "build image",
    )
    timelines = single.print_timelines()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["cluster timeline"] = {"unit": "ms", "tables": timelines, "when": time.strftime("%Y-%m-%d %H:%M")}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True))
    if left:
        raise RuntimeError(f"left behind: {left}")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
