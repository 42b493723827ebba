"""End to end: Go apps ``git push``ed over a real sshd, built by the go pack in the Go
toolchain layer (made on first use from Debian's golang-go) and asked through a private nginx.

- tests/apps/go-module: go.mod with a vendored module (vendor/modules.txt), no Procfile:
  built offline with -mod=vendor; the default web process is the binary;
- tests/apps/go-gopath: no go.mod, a root main package with an import comment, a
  subpackage imported by its GOPATH path and a GOPATH-style vendor/ dir; a Procfile.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def files_of(name: str) -> dict[str, str]:
    root = APPS / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def push(app: str, name: str, sshd, tmp_path: Path):
    t0 = time.monotonic()
    pushed = git_push(init_repo(tmp_path / app, files_of(name)), app, sshd)
    print(f"{name}: pushed in {time.monotonic() - t0:.1f}s\n{pushed.output}")
    assert pushed.exit_code == 0, pushed.output
    return pushed.output


def test_go_module_and_gopath_apps_answer_through_nginx(stack_image, docker_cleanup, private_nginx, sshd, tmp_path):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    module_app = docker_cleanup.app(new_app_name("gomod"))
    output = push(module_app, "go-module", sshd, tmp_path)
    assert "Go app detected" in output
    assert "vendor/ found: building offline with -mod=vendor" in output
    assert "toolchain go1.99.0 is ignored" in output  # GOTOOLCHAIN=local: nothing downloaded
    assert "default process type web: gohello" in output
    home = private_nginx.request(host=f"{module_app}.{GLOBAL}")
    assert home.status == 200 and "hello from the vendored greet module from a go module app (go1." in home.body

    gopath_app = docker_cleanup.app(new_app_name("gopath"))
    output = push(gopath_app, "go-gopath", sshd, tmp_path)
    assert "GOPATH mode (GO111MODULE=off), import path example.com/oldgo" in output
    assert "Building the go toolchain layer" not in output  # made once, reused
    home = private_nginx.request(host=f"{gopath_app}.{GLOBAL}")
    assert home.status == 200 and home.body.strip() == "HELLO FROM A GOPATH APP"


def test_broken_go_mod_fails_with_one_line_and_changes_nothing(
    stack_image, docker_client, docker_cleanup, sshd, tmp_path
):
    app = docker_cleanup.app(new_app_name("gobad"))
    files = {**files_of("go-module"), "go.mod": "module example.com/x y\n\ngo 1.22\n"}
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    assert pushed.exit_code != 0
    assert "go.mod line 1: module takes exactly one argument, got 2" in pushed.output
    assert "Building the go toolchain layer" not in pushed.output and "go build" not in pushed.output
    assert docker_client.images.list(name=f"skiff/{app}") == []
