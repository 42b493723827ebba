"""End to end on the three-node cluster (skiff.testing.cluster): three engines, each in a network
namespace of its own, form a swarm; the Skiff server's own engine is the manager (DOCKER_HOST),
so builds happen there, as on a real manager host. Skiff runs the registry (registry:serve on
the cluster network, TLS with its own CA that every node trusts); the release image goes
through it to the workers. An app pushed with git and scaled to web=3 runs one task per node,
and nginx (on this machine) lists the three nodes' host-mode ports; a code-only redeploy under
steady load through nginx has no failed request; a push whose app.json check fails rolls back by
itself while a prober through nginx sees v2 answer every request; ``ps:scale web=1`` and back to
``web=3`` go to one task and spread again to one per node, nginx following, with no failed
request; issue 17's bad input (``cluster:add`` of an address no node has, a registry that refuses
the push, a node that cannot pull the image) is one line and a non-zero exit, and the running
release is untouched; when a worker's link goes down, swarm moves its task, swarm:sync points
nginx at the new one, and the app keeps answering meanwhile.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skiff.testing import cluster
from skiff.testing.docker import new_app_name
from skiff.testing.nginx import HostLoad
from skiff.testing.scheduler import STACK_BASE
from skiff.testing.sshd import commit_files, git_push, init_repo
from skiff_registry import credentials

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(cluster.preflight() is not None, reason=str(cluster.preflight())),
]

APP = Path(__file__).resolve().parent / "app"
GLOBAL = "skiff.test"


@pytest.fixture(scope="module")
def manager_image(stack_base_image) -> str:
    return STACK_BASE  # the manager builds on it


def report(sshd, app: str) -> dict:
    result = sshd.ssh(["apps:report", app, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_web_3_runs_one_task_per_node_through_the_registry_and_redeploys_without_a_failed_request(
    three_nodes, private_nginx, sshd, skiff_root, tmp_path
):
    c = three_nodes
    with socket.socket() as probe:
        probe.bind((c.host_address, 0))
        server = f"{c.host_address}:{probe.getsockname()[1]}"
    engine = c.manager.base_url
    cluster.local_skiff(skiff_root, engine, "registry:serve", server)  # also logs Skiff in with a generated account
    try:
        ca = Path(
            json.loads(cluster.local_skiff(skiff_root, engine, "registry:report", "--format", "json"))["ca_certificate"]
        ).read_bytes()
        for node in c.nodes:
            node.trust(server, ca)
        sshd.ok("registry:set", "--global", "server", server)
        sshd.ok("domains:set-global", GLOBAL)
        app = new_app_name("swc")
        host = f"{app}.{GLOBAL}"
        sshd.ok("apps:create", app)
        sshd.ok("scheduler:set", app, "selected", "swarm")
        sshd.ok("swarm:set", app, "wait-to-retire", "2")
        sshd.ok("ps:scale", app, "web=3")  # stored: the first deploy runs three

        repo = init_repo(tmp_path / app, {p.name: p.read_text() for p in APP.iterdir() if p.is_file()})
        pushed = git_push(repo, app, sshd)
        assert pushed.exit_code == 0, pushed.output

        nodes = {node.address for node in c.nodes}
        listed = report(sshd, app)["proxy"]["upstreams"]
        assert {u.rsplit(":", 1)[0] for u in listed} == nodes and len(listed) == 3, (listed, nodes)
        tasks = report(sshd, app)["scheduler"]["tasks"]
        assert len(tasks) == 3 and len({t.rsplit(" on ", 1)[1] for t in tasks}) == 3, tasks  # one per node
        seen = {private_nginx.request("/", host=host).body.strip() for _ in range(30)}
        assert seen == {"v1 web.1", "v1 web.2", "v1 web.3"}, seen

        commit_files(repo, {"VERSION": "v2\n"}, "v2")
        with HostLoad(private_nginx.http_port, host, threads=4, limit=300) as load:
            pushed = git_push(repo, app, sshd)
            time.sleep(4)
        assert pushed.exit_code == 0, pushed.output
        assert load.failures == [], load.failures[:5]
        assert any(body.startswith("v2 ") for body in load.bodies), load.bodies
        print(f"cluster redeploy under load: {load.ok} answers, 0 failed, {load.stale_retries} stale retries")

        failed_health_check_rolls_back(c, sshd, private_nginx, app, host, repo)
        scale_down_and_spread_again(c, sshd, private_nginx, app, host)
        bad_input_leaves_the_release_running(c, sshd, private_nginx, skiff_root, app, host, repo, server, ca)

        # a worker's link goes down: swarm moves its task, swarm:sync follows, the app keeps answering
        gone = c.nodes[2]
        latencies: list[float] = []
        lost: list[float] = []
        with HostLoad(private_nginx.http_port, host, threads=2, limit=300) as load:
            stop = time.monotonic() + 240

            def probe() -> None:
                while time.monotonic() < stop and not done:
                    t = time.monotonic()
                    try:
                        private_nginx.request("/", host=host, timeout=90)
                    except (OSError, http.client.HTTPException):  # no answer, or cut off mid-answer
                        lost.append(time.monotonic() - t)
                    latencies.append(time.monotonic() - t)

            done = False
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            cut = time.monotonic()
            subprocess.run(["ip", "-n", c.bridge_netns, "link", "set", "p3", "down"], check=True)
            listed = []
            while time.monotonic() < cut + 180:
                sshd.ok("swarm:sync", app)
                listed = report(sshd, app)["proxy"]["upstreams"]
                if len(listed) == 3 and not any(u.startswith(f"{gone.address}:") for u in listed):
                    break
                time.sleep(2)
            moved = time.monotonic() - cut
            done = True
            prober.join(60)
        assert len(listed) == 3 and not any(u.startswith(f"{gone.address}:") for u in listed), listed
        # a request in flight on a kept-alive connection to the lost node gets no answer (at most one
        # per client); every other one is answered, a few after nginx's connect timeout and retry
        assert len(load.failures) <= load.threads and all("timed out" in f for f in load.failures), load.failures
        assert load.ok > 100
        after = {private_nginx.request("/", host=host).body.split()[0] for _ in range(30)}
        assert after == {"v2"}
        print(
            f"worker link down: task moved and nginx followed in {moved:.1f}s; {load.ok} answers, "
            f"{len(load.failures)} in flight lost; one client in sequence: {len(latencies)} requests, "
            f"{len(lost)} unanswered, longest {max(latencies, default=0):.2f}s"
        )
        sshd.ok("apps:destroy", app, "--force")
    finally:
        cluster.local_skiff(skiff_root, engine, "registry:serve", "--stop")


# -- the phases of the test above, in the order it runs them (the cluster is the module's) -----------


def current_release(sshd, app: str) -> int:
    rows = json.loads(sshd.ok("releases", app, "--format", "json"))
    return next(r["version"] for r in rows if r["current"])


def services(c: cluster.Cluster, app: str) -> list[str]:
    return sorted(s.name for s in c.manager.client().services.list(filters={"label": f"skiff.app={app}"}))


def wait_for_services(c: cluster.Cluster, app: str, wanted: list[str], timeout: float = 120) -> list[str]:
    """The app's services once they are ``wanted`` (the old ones retire after wait-to-retire)."""
    deadline = time.monotonic() + timeout
    while (found := services(c, app)) != wanted and time.monotonic() < deadline:
        time.sleep(1)
    return found


def error_lines(output: str, text: str) -> list[str]:
    """The lines of a push's or a command's output that say ``text``."""
    return [line for line in output.splitlines() if text in line]


def answers_only(load: HostLoad, version: str) -> None:
    """Every request of ``load`` was answered, by ``version`` only."""
    assert load.failures == [], load.failures[:5]
    assert load.ok > 20 and {b.split()[0] for b in load.bodies} == {version}, load.bodies


def failed_health_check_rolls_back(c: cluster.Cluster, sshd, private_nginx, app: str, host: str, repo: Path) -> None:
    """A release whose app.json check fails (it wants a content v3 never answers) is rolled back
    by the deploy itself: its services go, v2's keep serving, and a prober saw no failed request."""
    before, running = current_release(sshd, app), services(c, app)
    check = {"healthchecks": {"web": [{"type": "startup", "path": "/", "content": "not v3", "attempts": 2, "wait": 1}]}}
    commit_files(repo, {"VERSION": "v3\n", "app.json": json.dumps(check)}, "v3: its check cannot pass")
    with HostLoad(private_nginx.http_port, host, threads=2, limit=300) as load:
        pushed = git_push(repo, app, sshd)
    assert pushed.exit_code != 0, pushed.output
    assert len(error_lines(pushed.output, "its health check failed")) == 1, pushed.output
    assert "keeps serving" in pushed.output, pushed.output
    answers_only(load, "v2")
    assert current_release(sshd, app) == before
    assert wait_for_services(c, app, running) == running  # the new service went, the old one stayed
    print(f"failed health check on three nodes: rolled back; {load.ok} answers during it, 0 failed")
    commit_files(repo, {"VERSION": "v2\n", "app.json": None}, "back to v2's code")


def tasks_per_node(sshd, app: str) -> dict[str, int]:
    report = json.loads(sshd.ok("ps:report", app, "--format", "json"))
    counts: dict[str, int] = {}
    for row in report["processes"]:
        if row["status"] == "running":
            counts[row["node"]] = counts.get(row["node"], 0) + 1
    return counts


def scale_down_and_spread_again(c: cluster.Cluster, sshd, private_nginx, app: str, host: str) -> None:
    """``ps:scale web=1``, then ``web=3``: one task, then one per node again; nginx follows both
    times and the app answers throughout."""
    nodes = {node.address for node in c.nodes}
    with HostLoad(private_nginx.http_port, host, threads=2, limit=400) as load:
        sshd.ok("ps:scale", app, "web=1")
        one = wait_for_services(c, app, [f"skiff-{app}-web-v{current_release(sshd, app)}"])
        listed_one = report(sshd, app)["proxy"]["upstreams"]
        per_node_one = tasks_per_node(sshd, app)
        served_one = {private_nginx.request("/", host=host).body.strip() for _ in range(10)}
        sshd.ok("ps:scale", app, "web=3")
        three = wait_for_services(c, app, [f"skiff-{app}-web-v{current_release(sshd, app)}"])
        listed_three = report(sshd, app)["proxy"]["upstreams"]
        per_node_three = tasks_per_node(sshd, app)
    assert len(one) == 1 and len(listed_one) == 1 and sum(per_node_one.values()) == 1, (one, listed_one, per_node_one)
    assert served_one == {"v2 web.1"}, served_one  # nginx follows: only the one task answers
    assert len(three) == 1 and len(listed_three) == 3, (three, listed_three)
    assert {u.rsplit(":", 1)[0] for u in listed_three} == nodes, listed_three
    assert sorted(per_node_three.values()) == [1, 1, 1], per_node_three  # one task per node again
    answers_only(load, "v2")
    seen = {private_nginx.request("/", host=host).body.strip() for _ in range(30)}
    assert seen == {"v2 web.1", "v2 web.2", "v2 web.3"}, seen
    print(f"ps:scale web=1 and back to web=3 on three nodes: {load.ok} answers, 0 failed")


def local(root: Path, engine: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``skiff ARGS`` as root on the server, which may fail (``cluster.local_skiff`` must succeed)."""
    env = {**os.environ, "SKIFF_ROOT": str(root), "DOCKER_HOST": engine}
    env.pop("SKIFF_USER", None)
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args], env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def bad_input_leaves_the_release_running(
    c: cluster.Cluster, sshd, private_nginx, root: Path, app: str, host: str, repo: Path, server: str, ca: bytes
) -> None:
    """Issue 17's bad input, each while the app runs on three nodes: one clear line, a non-zero
    exit, and the running release untouched (same version, same services, still answering)."""
    engine = c.manager.base_url
    before, running = current_release(sshd, app), services(c, app)

    def untouched() -> None:
        assert current_release(sshd, app) == before
        assert wait_for_services(c, app, running) == running
        seen = {private_nginx.request("/", host=host).body.strip() for _ in range(30)}
        assert seen == {"v2 web.1", "v2 web.2", "v2 web.3"}, seen

    # joining an unreachable node: an address of the cluster's own network that no node has
    absent = f"{cluster.NET}.{c.octet}.99"
    nowhere = f"tcp://{absent}:2376"
    joined = local(root, engine, "cluster:add", nowhere, "--advertise", absent, "--manager", engine)
    assert joined.returncode != 0, joined.stdout + joined.stderr
    said = joined.stderr.strip()
    assert said.count("\n") == 0 and said.startswith(f"!     cannot reach the node engine at {nowhere}: "), said
    assert len(said) < 120, said  # the system's reason ("No route to host"), not the client library's chain
    assert len(c.manager.client().nodes.list()) == 3
    untouched()

    # a registry that refuses the push: Skiff logged out of it, so the push has no credentials
    account = credentials.lookup(root, server)
    assert account is not None
    assert local(root, engine, "registry:logout", server).returncode == 0
    try:
        commit_files(repo, {"VERSION": "v4\n"}, "v4: the registry refuses it")
        pushed = git_push(repo, app, sshd)
    finally:
        login = local(root, engine, "registry:login", server, account["username"], stdin=account["password"] + "\n")
        assert login.returncode == 0, login.stderr
    assert pushed.exit_code != 0, pushed.output
    refused = error_lines(pushed.output, f"registry {server} refused the push")
    assert len(refused) == 1, pushed.output
    untouched()

    # a node without the image: node3 no longer trusts the registry's CA, so it cannot pull the release
    stranger = c.nodes[2]
    trusted = stranger.etc_docker / "certs.d" / server / "ca.crt"
    trusted.unlink()
    try:
        commit_files(repo, {"VERSION": "v5\n"}, "v5: node3 cannot pull it")
        pushed = git_push(repo, app, sshd)
    finally:
        stranger.trust(server, ca)
    assert pushed.exit_code != 0, pushed.output
    missing = error_lines(pushed.output, "No such image")
    assert len(missing) == 1 and "task of v" in missing[0], pushed.output
    untouched()
    commit_files(repo, {"VERSION": "v2\n"}, "back to v2's code")
    print("bad input on three nodes, the release untouched each time:")
    for line in (joined.stderr.strip(), refused[0], missing[0]):
        print(f"  {line.strip()[:200]}")
