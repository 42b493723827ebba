"""End to end: container logs are bounded (``logs:set``), and ``cleanup`` frees what it says.

A chatty app (tests/apps/null whose web process first writes about 3 MB of log lines, then
keeps writing) is pushed over sshd through a private nginx with ``logs:set APP max-size 100k``:
its container's json-file log never passes 100 kB, while the app keeps serving. Then an exited
one-off container holding 3 MB and a dangling image of the app (both made here, labelled as
Skiff labels its own) are what ``cleanup --dry-run`` lists and ``cleanup`` removes, with the
sizes the engine gives; the app's running container stays.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

NULL = Path(__file__).resolve().parents[4] / "tests" / "apps" / "null"
GLOBAL = "skiff.test"
# ~3 MB of lines at once, then a line every 10 ms, while the web server answers
CHATTY = (
    "web: (i=0; while [ $i -lt 30000 ]; do echo chatty-line-$i-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef; "
    "i=$((i+1)); done; while :; do echo still-chatty-$(date +%s%N); sleep 0.01; done) & "
    "exec python3 -m http.server $PORT\n"
)
MAX = 100 * 1024


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


def test_a_chatty_apps_log_stays_bounded_and_cleanup_frees_what_it_says(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, tmp_path
):
    if os.geteuid() != 0:
        pytest.skip("reading the engine's log files needs root")
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("chatty"))
    assert sshd.ssh(["apps:create", app]).exit_code == 0
    assert sshd.ssh(["logs:set", app, "max-size", "100k"]).exit_code == 0
    assert sshd.ssh(["logs:set", app, "max-file", "2"]).exit_code == 0
    bad = sshd.ssh(["logs:set", app, "max-size", "lots"])
    assert bad.exit_code != 0 and "max-size must be a size" in bad.stderr
    report = json.loads(sshd.ssh(["logs:report", app, "--format", "json"]).stdout)
    assert report["max_size"] == "100k" and report["max_file"] == 2
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in NULL.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / app, {**files, "Procfile": CHATTY})
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output

    web = docker_client.containers.get(f"{app}.web.1")
    assert web.attrs["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "2", "max-size": "100k"},
    }
    log_path = Path(web.attrs["LogPath"])
    seen = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        seen.append(log_path.stat().st_size if log_path.exists() else 0)
        time.sleep(0.2)
    rotated = Path(f"{log_path}.1")
    assert rotated.exists(), "3 MB of lines never rotated the log"
    assert max(seen) <= MAX * 1.05, f"the log grew to {max(seen)} bytes (max-size 100k)"
    assert rotated.stat().st_size <= MAX * 1.05 and not Path(f"{log_path}.2").exists()  # max-file 2
    tail = sshd.ssh(["logs", app, "-n", "5"]).stdout
    assert "still-chatty-" in tail  # still writing, still readable
    assert private_nginx.request(host=f"{app}.{GLOBAL}").status == 200

    # something for cleanup: an exited one-off holding 3 MB, and a dangling image of the app
    labels = {"skiff.app": app, "skiff.role": "oneoff", "skiff.process": "run"}
    exited = docker_client.containers.run(
        web.image.id, ["/bin/sh", "-c", "head -c 3000000 /dev/urandom > /tmp/blob"], labels=labels, detach=True
    )
    docker_cleanup.container(exited.id)
    assert exited.wait()["StatusCode"] == 0
    holder = docker_client.containers.run(
        web.image.id, ["/bin/sh", "-c", "head -c 2000000 /dev/urandom > /tmp/other"], labels=labels, detach=True
    )
    docker_cleanup.container(holder.id)
    holder.wait()
    dangling = holder.commit(conf={"Labels": {"skiff.app": app}})  # no tag: dangling
    docker_cleanup.image(dangling.id)
    holder.remove()

    dry = sshd.ssh(["cleanup", app, "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert [c["id"] for c in planned["containers"]] == [exited.id]
    assert [i["id"] for i in planned["images"]] == [dangling.id]
    assert 2_900_000 <= planned["containers"][0]["size"] <= 3_300_000
    assert 1_900_000 <= planned["images"][0]["size"] <= 2_300_000
    docker_client.containers.get(exited.id)  # a dry run removes nothing

    cleaned = sshd.ssh(["cleanup", app])
    assert cleaned.exit_code == 0, cleaned.output
    out = cleaned.stdout
    container_line = re.search(r"Removed exited container (\S+) \(([0-9.]+) MB\)", out)
    image_line = re.search(rf"Removed dangling image {dangling.id[7:19]} \(([0-9.]+) MB\)", out)
    assert container_line and container_line.group(1) == exited.name and image_line, out
    freed = re.search(r"cleanup: 2 items, freed ([0-9.]+) MB", out)
    assert freed, out
    said = float(container_line.group(2)) + float(image_line.group(1))
    assert abs(float(freed.group(1)) - said) <= 0.11 and 4.8 <= said <= 5.6
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(exited.id)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(dangling.id)
    assert docker_client.containers.get(f"{app}.web.1").status == "running"  # the app itself stays
    again = sshd.ssh(["cleanup", app])
    assert "cleanup: 0 items, freed 0 B" in again.stdout
