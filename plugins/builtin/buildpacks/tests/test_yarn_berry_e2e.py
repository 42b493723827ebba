"""End to end: yarn 4 (berry) apps ``git push``ed over a real sshd, served through a private nginx.

The apps are real yarn 4 projects: ``"packageManager": "yarn@4.18.1"``, a ``yarn.lock`` that
yarn 4.18.1 wrote (``data/berry``) and one dependency, ``ms``, that the page uses. The page
says whether Plug'n'Play is active and where ``require.resolve("ms")`` found the package.

- ``nodeLinker: pnp``: the package archive is in the image (``/app/.yarn/cache``), every
  ``node`` loads ``/app/.pnp.cjs``. A second build of the app (package.json changed, the
  dependency layer rebuilt) with the registry unreachable installs from yarn's mirror in
  the app's build cache.
- ``nodeLinker: node-modules``: ``/app/node_modules``.
- zero-installs: the archive committed in ``.yarn/cache`` installs with the registry
  unreachable from the first build on.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, git_push, init_repo

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
DATA = Path(__file__).parent / "data" / "berry"
YARN = "4.18.1"
MS_ZIP = "ms-npm-2.1.3-81ff3cfac1-d924b57e73.zip"
SERVER = """const http = require("http");
const pnp = process.versions.pnp ? "pnp" : "no-pnp";
let answer = "-", where = "-";
try { where = require.resolve("ms"); answer = require("ms")(60000); } catch (e) { where = "missing"; }
http.createServer((req, res) => res.end("node " + process.version + " " + pnp + " " + answer + " " + where + "\\n"))
  .listen(process.env.PORT || 5000);
"""
PAGE = re.compile(r"node v[0-9.]+ (?P<pnp>pnp|no-pnp) (?P<answer>\S+) (?P<where>\S+)\n")
DONE = re.compile(r"-----> Installing dependencies with yarn install[^\n]*\n(?:.*\n)*?.*done in ([0-9.]+)s")


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def berry_app(yarnrc: str, description: str = "a yarn 4 app", **extra: str | bytes) -> dict[str, str | bytes]:
    package = {
        "name": "berry-pnp",
        "version": "1.0.0",
        "description": description,
        "private": True,
        "packageManager": f"yarn@{YARN}",
        "scripts": {"start": "node server.js"},
        "dependencies": {"ms": "2.1.3"},
    }
    return {
        "package.json": json.dumps(package, indent=2) + "\n",
        "yarn.lock": (DATA / "yarn.lock").read_text(),
        ".yarnrc.yml": yarnrc,
        "server.js": SERVER,
        **extra,
    }


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def page(private_nginx, app: str) -> re.Match[str]:
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert answer.status == 200, answer.body
    match = PAGE.fullmatch(answer.body)
    assert match, answer.body
    return match


def pushed(sshd, repo: Path, app: str) -> str:
    result = git_push(repo, app, sshd)
    assert result.exit_code == 0, result.output
    return result.output


def install_seconds(output: str) -> float:
    match = DONE.search(output)
    assert match, output
    return float(match.group(1))


def test_plug_n_play_app_runs_from_its_image_and_rebuilds_from_the_mirror(
    stack_image, docker_cleanup, private_nginx, sshd, skiff_root: Path, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("berrypnp"))
    repo = init_repo(tmp_path / app, berry_app("nodeLinker: pnp\n"))
    output = pushed(sshd, repo, app)
    assert f"Installing yarn {YARN} (packageManager yarn@{YARN})" in output, output
    assert f"yarn {YARN} (berry), nodeLinker pnp (.yarnrc.yml); archives in /app/.yarn/cache" in output, output
    assert (skiff_root / "cache" / "buildpacks" / "node" / "tools" / "yarnpkg-cli-dist" / f"{YARN}.tar").is_file()
    first = install_seconds(output)
    served = page(private_nginx, app)
    assert served["pnp"] == "pnp" and served["answer"] == "1m", served.group(0)
    assert served["where"] == f"/app/.yarn/cache/{MS_ZIP}/node_modules/ms/index.js", served.group(0)

    # the next dependency install of the app: the registry unreachable, yarn's mirror in the build cache serves it
    assert sshd.ssh(["config:set", app, f"YARN_NPM_REGISTRY_SERVER={closed_port_url()}"]).exit_code == 0
    commit_files(repo, {"package.json": berry_app("", description="changed")["package.json"]})
    output = pushed(sshd, repo, app)
    assert "Reusing the dependency layer" not in output, output
    again = install_seconds(output)
    served = page(private_nginx, app)
    assert served["pnp"] == "pnp" and served["answer"] == "1m", served.group(0)
    print(f"\nyarn 4 PnP install: first build {first:.1f}s, second (mirror, registry unreachable) {again:.1f}s")


def test_node_modules_linker_and_zero_installs(
    stack_image, docker_cleanup, private_nginx, sshd, skiff_root: Path, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0

    modules = docker_cleanup.app(new_app_name("berrynm"))
    output = pushed(sshd, init_repo(tmp_path / modules, berry_app("nodeLinker: node-modules\n")), modules)
    assert f"yarn {YARN} (berry), nodeLinker node-modules (.yarnrc.yml)" in output, output
    served = page(private_nginx, modules)
    assert served["pnp"] == "no-pnp" and served["answer"] == "1m", served.group(0)
    assert served["where"] == "/app/node_modules/ms/index.js", served.group(0)

    # zero-installs: the committed archive, nothing from the registry (it is unreachable from the start)
    zero = docker_cleanup.app(new_app_name("berryzero"))
    assert sshd.ssh(["apps:create", zero]).exit_code == 0
    assert sshd.ssh(["config:set", zero, f"YARN_NPM_REGISTRY_SERVER={closed_port_url()}"]).exit_code == 0
    files = berry_app("enableGlobalCache: false\n", **{f".yarn/cache/{MS_ZIP}": (DATA / MS_ZIP).read_bytes()})
    output = pushed(sshd, init_repo(tmp_path / zero, files), zero)
    assert (
        f"yarn {YARN} (berry), nodeLinker pnp (yarn's default); zero-installs: 1 package archive committed "
        "in .yarn/cache" in output
    ), output
    served = page(private_nginx, zero)
    assert served["pnp"] == "pnp" and served["answer"] == "1m", served.group(0)
    assert served["where"] == f"/app/.yarn/cache/{MS_ZIP}/node_modules/ms/index.js", served.group(0)

    # a linker yarn does not know: one clear line, the app keeps serving
    repo = tmp_path / modules
    commit_files(repo, {".yarnrc.yml": "nodeLinker: pnpm-ish\n"})
    refused = git_push(repo, modules, sshd)
    assert refused.exit_code != 0
    bang = [line for line in refused.output.splitlines() if "!     " in line]
    assert len(bang) == 1 and '.yarnrc.yml nodeLinker "pnpm-ish" is not one yarn knows' in bang[0], refused.output
    assert page(private_nginx, modules)["answer"] == "1m"
