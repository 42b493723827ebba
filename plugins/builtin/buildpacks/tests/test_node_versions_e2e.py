"""End to end: Node apps with ``engines.node`` ``git push``ed over a real sshd, served through a private nginx.

The first app asks for ``18.x``: Skiff downloads the newest 18 release from the npm
registry, verifies it and caches it on the server; the page reports ``process.version``.
A range no release satisfies fails in one line and the app keeps serving. Then the
registry is made unreachable (``node-registry`` pointed at a closed 127.0.0.1 port): a
second app on ``18.x`` builds from the cache alone, and an uncached range fails in one line.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, git_push, init_repo
from skiff_buildpacks.node_dist import host_arch

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
SERVER = """const http = require("http");
http.createServer((req, res) => res.end("node " + process.version + "\\n")).listen(process.env.PORT || 5000);
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def node_app(engines: str) -> dict[str, str]:
    package = {"name": "versions", "version": "1.0.0", "private": True, "scripts": {"start": "node server.js"}}
    return {"package.json": json.dumps({**package, "engines": {"node": engines}}), "server.js": SERVER}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def served_version(private_nginx, app: str) -> str:
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert answer.status == 200, answer.body
    match = re.fullmatch(r"node v([0-9]+\.[0-9]+\.[0-9]+)\n", answer.body)
    assert match, answer.body
    return match.group(1)


def test_engines_node_from_the_registry_then_from_the_cache(
    stack_image, docker_cleanup, private_nginx, sshd, skiff_root: Path, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    first = docker_cleanup.app(new_app_name("node18"))
    repo = init_repo(tmp_path / first, node_app("18.x"))
    pushed = git_push(repo, first, sshd)
    assert pushed.exit_code == 0, pushed.output
    chosen = re.search(r"Installing Node\.js (18\.[0-9]+\.[0-9]+) \(engines\.node 18\.x\)\s", pushed.output)
    assert chosen and "checksum verified" in pushed.output, pushed.output
    version = chosen.group(1)
    assert served_version(private_nginx, first) == version
    cached = skiff_root / "cache" / "buildpacks" / "node" / f"linux-{host_arch()}" / f"{version}.tar"
    assert cached.is_file()

    # bad input: one clear line, the running release is untouched
    commit_files(repo, node_app("99.x"))
    refused = git_push(repo, first, sshd)
    assert refused.exit_code != 0
    assert re.search(
        r'engines\.node "99\.x" matches no Node\.js release; newest is [0-9]+\.[0-9]+\.[0-9]+', refused.output
    )
    assert served_version(private_nginx, first) == version

    # the registry unreachable: the cache serves the second app
    assert sshd.ssh(["buildpacks:set", "--global", "node-registry", closed_port_url()]).exit_code == 0
    second = docker_cleanup.app(new_app_name("node18b"))
    pushed = git_push(init_repo(tmp_path / second, node_app("18.x")), second, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert f"Installing Node.js {version} (engines.node 18.x)" in pushed.output
    assert "unreachable (ConnectionError): using the cached release" in pushed.output
    assert "downloaded" not in pushed.output
    assert served_version(private_nginx, second) == version

    # unreachable and not cached: one clear line
    third = docker_cleanup.app(new_app_name("node20"))
    refused = git_push(init_repo(tmp_path / third, node_app("20.17.x")), third, sshd)
    assert refused.exit_code != 0
    assert f'no Node.js cached on this server matches engines.node "20.17.x" (cached: {version})' in refused.output
