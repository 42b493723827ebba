"""End to end: storage, run:detached, apps:lock and apps:clone, with real parts.

A null app (the stack's python3 serving a stdlib HTTP server) is ``git push``ed over a
real sshd, run by the docker scheduler on the machine's dockerd and reached through a
private nginx. A deployer key makes and mounts a storage directory; the app writes a
file into it; the file survives a redeploy, a rollback, a restart, ``ps:rebuild`` and a
rename, is seen by release tasks and ``run:detached`` containers, and is still on the
host after ``apps:destroy``. Host paths cannot be mounted over SSH by any key.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import add_key, commit_files, git_push, head, init_repo, make_key
from skiff_storage import directories

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"

SERVER = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

DATA = "/storage/token.txt"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = 200, ""
        if self.path == "/":
            body = open("version.txt").read().strip()
        elif self.path.startswith("/write?"):
            with open(DATA, "w") as f:
                f.write(self.path.split("?", 1)[1])
            body = "wrote"
        elif self.path == "/read":
            try:
                body = open(DATA).read()
            except OSError as exc:
                status, body = 404, str(exc)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

PROCFILE = """\
web: python3 server.py
release: if [ -d /storage ]; then echo "$GIT_REV" > /storage/release.txt; fi
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def _files(version: str) -> dict[str, str]:
    return {".null": "", "Procfile": PROCFILE, "server.py": SERVER, "version.txt": f"page {version}\n"}


def _one_line_refusal(result, text: str) -> None:
    assert result.exit_code != 0, result.output
    bangs = [line for line in result.stderr.splitlines() if line.startswith("!")]
    assert bangs == [f"!     {text}"], result.output


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_mounted_data_survives_and_keys_cannot_reach_host_paths(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    nginx = private_nginx
    root = Path(sshd.skiff_env["SKIFF_ROOT"])
    app = docker_cleanup.app(new_app_name("store"))
    renamed = docker_cleanup.app(new_app_name("moved"))
    cloned = docker_cleanup.app(new_app_name("clone"))
    docker_cleanup.image(f"skiff/{cloned}")

    def get(path: str, name: str = app):
        answer = nginx.request(path, host=f"{name}.{GLOBAL}")
        return answer.status, answer.body

    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    repo = init_repo(tmp_path / "src", _files("v1"))
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert get("/") == (200, "page v1")

    # a deployer key of this app makes its storage directory and mounts it
    bob_key = make_key(tmp_path / "bob", "bob")
    assert add_key("bob", bob_key.with_suffix(".pub"), sshd.skiff_env, role="deployer").exit_code == 0
    bob = sshd.for_key(bob_key)
    assert sshd.ssh(["acl:add", app, "bob"]).exit_code == 0
    made = bob.ssh(["storage:ensure-directory", app])
    assert made.exit_code == 0, made.output
    data = root / "storage" / app
    assert data.is_dir() and data.stat().st_uid == 1000
    mounted = bob.ssh(["storage:mount", app, f"{data}:/storage"])
    assert mounted.exit_code == 0, mounted.output

    # host paths: refused over SSH whatever the key; nothing stored
    sentinel = tmp_path / "host-secret"
    sentinel.mkdir()
    (sentinel / "secret").write_text("host secret")
    for server in (bob, sshd):  # a deployer key, then the admin key
        _one_line_refusal(
            server.ssh(["storage:mount", app, f"{sentinel}:/host"]),
            f"{sentinel} is not under {root / 'storage'}: only root on the server may mount other host paths "
            "(storage:mount from a root shell)",
        )
        _one_line_refusal(
            server.ssh(["storage:mount", app, f"{data}/../..:/host"]),
            f"invalid host path '{data}/../..': '..' is not allowed",
        )
    (data / "escape").symlink_to(sentinel)  # what is inside is the app's: never a mount source
    _one_line_refusal(
        bob.ssh(["storage:mount", app, f"{data}/escape:/host"]),
        f"{data}/escape is inside the storage directory {app}: mount the directory itself ({data}); "
        "what is inside belongs to the app",
    )
    (data / "escape").unlink()
    assert bob.ssh(["storage:list", app]).stdout.split()[-1] == f"{data}:/storage"

    # the app writes into the mount; the file is on the host, owned by the app's user
    assert sshd.ssh(["ps:restart", app], timeout=180).exit_code == 0
    token = secrets.token_hex(8)
    assert get(f"/write?{token}") == (200, "wrote")
    assert (data / "token.txt").read_text() == token
    assert (data / "token.txt").stat().st_uid == 1000
    assert get("/read") == (200, token)

    # a redeploy: the new release's task sees the mount, the data is still there
    v2 = commit_files(repo, _files("v2"), "v2")
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert get("/") == (200, "page v2") and get("/read") == (200, token)
    assert (data / "release.txt").read_text().strip() == v2
    # a rollback, a restart, a rebuild
    assert sshd.ssh(["releases:rollback", app], timeout=180).exit_code == 0
    assert get("/") == (200, "page v1") and get("/read") == (200, token)
    assert sshd.ssh(["ps:restart", app], timeout=180).exit_code == 0
    assert get("/read") == (200, token)
    assert bob.ssh(["ps:rebuild", app], timeout=300).exit_code == 0
    assert get("/") == (200, "page v2") and get("/read") == (200, token)

    # run:detached: a one-off container with the mount, listed while it runs, stopped by name
    started = bob.ssh(["run:detached", app, "cp /storage/token.txt /storage/from-run.txt && sleep 120"])
    assert started.exit_code == 0, started.output
    name = started.stdout.strip()
    assert name.startswith(f"{app}.run.")
    listed = bob.ssh(["run:list", app])
    assert listed.exit_code == 0 and name in listed.stdout, listed.output
    rows = json.loads(bob.ssh(["run:list", app, "--format", "json"]).stdout)
    assert [row["name"] for row in rows] == [name] and rows[0]["state"] == "running"
    assert _wait_for(lambda: (data / "from-run.txt").exists() and (data / "from-run.txt").read_text() == token)
    stopped = bob.ssh(["run:stop", app, name], timeout=60)
    assert stopped.exit_code == 0, stopped.output
    assert _wait_for(lambda: name not in bob.ssh(["run:list", app]).stdout)

    # apps:lock: a push is refused in one line and the branch does not move
    assert bob.ssh(["apps:lock", app]).exit_code == 0
    before = sshd.git("ls-remote", sshd.remote(app), "refs/heads/main").stdout.split()[0]
    assert before == v2 == head(repo)
    commit_files(repo, _files("v3"), "v3")
    refused = git_push(repo, app, sshd)
    assert refused.exit_code != 0, refused.output
    bangs = [line.rstrip() for line in refused.output.splitlines() if line.startswith("remote: !")]
    assert bangs == [f"remote: !     app {app} is locked: deploys are refused until apps:unlock {app}"], refused.output
    assert sshd.git("ls-remote", sshd.remote(app), "refs/heads/main").stdout.split()[0] == v2
    assert get("/") == (200, "page v2")
    _one_line_refusal(
        sshd.ssh(["config:set", app, "X=1"]), f"app {app} is locked: deploys are refused until apps:unlock {app}"
    )
    assert bob.ssh(["ps:restart", app], timeout=180).exit_code == 0  # the same release again: allowed
    assert get("/") == (200, "page v2") and get("/read") == (200, token)
    assert bob.ssh(["apps:unlock", app]).exit_code == 0

    # apps:clone: the same page at the clone's own name
    clone = sshd.ssh(["apps:clone", app, cloned], timeout=300)
    assert clone.exit_code == 0, clone.output
    assert get("/", cloned) == get("/") == (200, "page v2")

    # a rename keeps the mount and the data
    assert sshd.ssh(["apps:rename", app, renamed], timeout=300).exit_code == 0
    assert get("/read", renamed) == (200, token)
    assert sshd.ssh(["storage:list", renamed]).stdout.split()[-1] == f"{data}:/storage"

    # destroy keeps the data and says where it is
    destroyed = sshd.ssh(["apps:destroy", renamed, "--force"], timeout=180)
    assert destroyed.exit_code == 0, destroyed.output
    assert f"storage: kept {data} (the data of {renamed})" in destroyed.stdout
    assert (data / "token.txt").read_text() == token


def test_the_service_account_chowns_in_a_container_without_following_symlinks(stack_image, tmp_path):
    """What ``storage:ensure-directory`` does when it does not run as root (the service account)."""
    target = tmp_path / "dir"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "file").write_text("x")
    outside = tmp_path / "outside"
    outside.write_text("host")
    (target / "link").symlink_to(outside)
    directories.chown_in_container(target, 2000, image=stack_image)
    assert [p.lstat().st_uid for p in (target, target / "sub", target / "sub" / "file", target / "link")] == [2000] * 4
    assert outside.stat().st_uid == os.geteuid()
