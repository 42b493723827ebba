"""End to end on a real swarm: a fresh engine in its own network namespace, initialised as a
single-node swarm (conftest.py), driven by the real Skiff over a real sshd with git push, and
served by a private nginx whose upstreams are the tasks' host-mode published ports on the
node's address (10.216.X.11: the node of a one-node `skiff.testing.cluster`).

One app goes through: push -> served; ps:scale web=3 -> three tasks, three upstreams; a
killed task comes back on another port and swarm:sync follows it; a redeploy under steady
load through nginx with no failed request; a release whose health check fails rolls back by
itself while the old answer keeps being served; releases:rollback; apps:rename; apps:destroy
removes the services and the network.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.nginx import HostLoad
from skiff.testing.sshd import commit_files, git_push, init_repo

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "app"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx, swarm_engine):
    """The server-side skiff drives the private nginx, and the namespace's engine as the swarm manager."""
    return {**private_nginx.env, "SKIFF_SWARM_MANAGER": swarm_engine.host}


def services(engine, app: str) -> list[str]:
    found = engine.docker("service", "ls", "--filter", f"label=skiff.app={app}", "--format", "{{.Name}}")
    assert found.returncode == 0, found.stderr
    return sorted(found.stdout.split())


def networks(engine, app: str) -> list[str]:
    found = engine.docker("network", "ls", "--filter", f"label=skiff.swarm.network={app}", "--format", "{{.Name}}")
    return found.stdout.split()


def upstreams(sshd, app: str) -> list[str]:
    result = sshd.ssh(["apps:report", app, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report.get("proxy", {}).get("upstreams", [])


def test_swarm_app_serves_scales_redeploys_rolls_back_and_goes(
    stack_base_image, docker_cleanup, private_nginx, sshd, swarm_engine, tmp_path
):
    sshd.ok("domains:set-global", GLOBAL)
    app = docker_cleanup.app(new_app_name("sw"))
    host = f"{app}.{GLOBAL}"
    sshd.ok("apps:create", app)
    sshd.ok("scheduler:set", app, "selected", "swarm")
    sshd.ok("swarm:set", app, "wait-to-retire", "2")
    assert "swarm" in sshd.ok("scheduler:report", app)

    files = {p.name: p.read_text() for p in APP.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / app, files)
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "on the swarm" in pushed.output

    def answer() -> str:
        got = private_nginx.request("/", host=host)
        assert got.status == 200, got.body
        return got.body.strip()

    assert answer() == "v1 web.1"
    assert services(swarm_engine, app) == [f"skiff-{app}-web-v1"]
    node = re.escape(swarm_engine.address)
    assert [u for u in upstreams(sshd, app) if re.fullmatch(rf"{node}:[0-9]+", u)] == upstreams(sshd, app) != []

    # scale: three tasks, nginx lists the three ports, every task answers
    sshd.ok("ps:scale", app, "web=3")
    listed = upstreams(sshd, app)
    assert len(listed) == 3 and len(set(listed)) == 3, listed
    tasks = swarm_engine.docker("service", "ps", f"skiff-{app}-web-v2", "--filter", "desired-state=running", "-q")
    assert len(tasks.stdout.split()) == 3
    seen = {answer() for _ in range(30)}
    assert seen == {"v1 web.1", "v1 web.2", "v1 web.3"}, seen  # release v2, the code's VERSION is still v1
    deadline = time.monotonic() + 30
    while services(swarm_engine, app) != [f"skiff-{app}-web-v2"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert services(swarm_engine, app) == [f"skiff-{app}-web-v2"]  # v1 retired after wait-to-retire

    # a task that swarm replaces (its container killed) comes back on another port: nginx follows
    before = upstreams(sshd, app)
    killed = swarm_engine.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name=skiff-{app}-web-v2")
    swarm_engine.docker("rm", "-f", killed.stdout.split()[0])
    deadline = time.monotonic() + 60
    after = before
    while time.monotonic() < deadline and (len(after) != 3 or after == before):
        time.sleep(1)
        sshd.ok("swarm:sync", app)  # first without the dead task, then with its replacement
        after = upstreams(sshd, app)
    assert len(after) == 3 and after != before and len(set(after) & set(before)) == 2, (before, after)
    assert {answer() for _ in range(30)} == seen
    report = sshd.ok("swarm:report", app)
    assert report.count(" running on ") == 3, report

    # a code-only redeploy under steady load through nginx: no failed request
    commit_files(repo, {"VERSION": "v2\n"}, "v2")
    with HostLoad(private_nginx.http_port, host, threads=4, limit=240) as load:
        pushed = git_push(repo, app, sshd)
        time.sleep(4)  # the old tasks retire after wait-to-retire, under load
    assert pushed.exit_code == 0, pushed.output
    assert load.failures == [], load.failures[:5]
    assert load.ok > 50 and any(body.startswith("v2 ") for body in load.bodies), load.bodies
    print(f"redeploy under load: {load.ok} answers, 0 failed, {load.stale_retries} stale keep-alive retries")

    # a release whose health check fails: the push fails, the new service goes, v2 keeps answering
    commit_files(repo, {"VERSION": "v3\n", "FAIL": "1"}, "v3 fails")
    with HostLoad(private_nginx.http_port, host, threads=2, limit=240) as load:
        pushed = git_push(repo, app, sshd)
    assert pushed.exit_code != 0, pushed.output
    assert "health check failed" in pushed.output, pushed.output
    assert load.failures == [] and set(b.split()[0] for b in load.bodies) == {"v2"}, (load.failures[:5], load.bodies)
    assert answer().startswith("v2 ")
    current = [s for s in services(swarm_engine, app) if not s.endswith("-v4")]
    assert services(swarm_engine, app) == current and len(current) == 1

    # rollback: v3 (code v2) -> a new release v5 of v2's image and config (code v1)
    sshd.ok("releases:rollback", app)
    assert answer().startswith("v1 ")
    assert f"skiff-{app}-web-v5" in services(swarm_engine, app)

    # rename: the release runs as the new name's services, the old name's go with their network
    renamed = docker_cleanup.app(new_app_name("sw"))
    sshd.ok("apps:rename", app, renamed)
    got = private_nginx.request("/", host=f"{renamed}.{GLOBAL}")
    assert got.status == 200 and got.body.startswith("v1 "), got.body
    deadline = time.monotonic() + 60
    while (services(swarm_engine, app) or networks(swarm_engine, app)) and time.monotonic() < deadline:
        time.sleep(1)
    assert services(swarm_engine, app) == [] and networks(swarm_engine, app) == []
    assert services(swarm_engine, renamed) == [f"skiff-{renamed}-web-v5"]

    # run: a one-off task of the current release with its config; logs: every task's, prefixed
    ran = sshd.ssh(["run", renamed, "echo hello from $DYNO; exit 7"])
    assert ran.exit_code == 7 and re.search(r"hello from run\.[0-9]{4}", ran.output), ran.output
    logged = sshd.ok("logs", renamed)
    assert re.search(rf"{renamed}\[web\.[123]\]: web v1 listening on 5000", logged), logged

    # destroy removes the services and the app's network
    sshd.ok("apps:destroy", renamed, "--force")
    assert services(swarm_engine, renamed) == []
    assert networks(swarm_engine, renamed) == []
