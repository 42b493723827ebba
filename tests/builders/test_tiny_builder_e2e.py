"""End to end: a third-party builder distribution (examples/tiny-builder), pip-installed into a
directory the server-side skiff loads, chosen with ``builder:set APP selected tiny``, deploys a
real ``git push`` over the test sshd; its answer comes through a private nginx (127.0.0.1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny-builder"
GLOBAL = "skiff.test"


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """``pip install --target``: the distribution lives only in this temp dir (removed with it)."""
    site = tmp_path_factory.mktemp("tiny-site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(site),
            str(TINY),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path_factory.getbasetemp(),
    )
    assert proc.returncode == 0, proc.stderr
    assert (site / "skiff_tiny_builder.py").is_file()
    assert list(site.glob("skiff_tiny_builder-1.0.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def sshd_skiff_env(private_nginx, tiny_site):
    """The server side loads every installed plugin plus the tiny builder, and drives the private nginx."""
    path = os.pathsep.join(p for p in (str(tiny_site), os.environ.get("PYTHONPATH", "")) if p)
    return {**private_nginx.env, "PYTHONPATH": path}


def test_the_tiny_builder_is_not_installed_in_the_test_venv():
    proc = subprocess.run([sys.executable, "-m", "pip", "show", "skiff-tiny-builder"], capture_output=True)
    assert proc.returncode != 0  # hermetic: only the server side (PYTHONPATH) sees it


def test_a_third_party_builder_deploys_a_git_push(
    stack_image, docker_cleanup, docker_client, private_nginx, sshd, tmp_path
):
    app = docker_cleanup.app(new_app_name("tiny"))
    host = f"{app}.{GLOBAL}"
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    assert sshd.ssh(["apps:create", app]).exit_code == 0

    refused = sshd.ssh(["builder:set", app, "selected", "tinyy"])
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "!     unknown builder 'tinyy'; installed: tiny, dockerfile, buildpacks"
    chosen = sshd.ssh(["builder:set", app, "selected", "tiny"])
    assert chosen.exit_code == 0, chosen.output
    assert "Selected: tiny Installed: tiny, dockerfile, buildpacks" in _report(sshd, app)

    # requirements.txt would make buildpacks take it, a Dockerfile the dockerfile builder: the forced one wins
    files = {
        "tiny.txt": "meow from a third-party builder\n",
        "requirements.txt": "flask\n",
        "Dockerfile": "FROM scratch-does-not-exist\n",
    }
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Tiny app detected: it will answer 'meow from a third-party builder'" in pushed.output
    assert "Python app detected" not in pushed.output and "Dockerfile app detected" not in pushed.output

    answer = private_nginx.request(host=host)
    assert (answer.status, answer.body) == (200, "meow from a third-party builder\n")
    image = docker_client.images.get(_current_image(docker_client, app))
    assert image.labels["skiff.builder"] == "tiny" and image.labels["skiff.app"] == app
    assert "Last build: tiny" in _report(sshd, app)


def _report(sshd, app: str) -> str:
    result = sshd.ssh(["builder:report", app])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def _current_image(client, app: str) -> str:
    containers = client.containers.list(filters={"label": [f"skiff.app={app}", "skiff.process=web"]})
    assert containers, f"no web container of {app} runs"
    return containers[0].image.id
