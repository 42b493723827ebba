"""End to end: a null app (tests/apps/null: a ``.null`` file, a Procfile running the stack's
``python3 -m http.server`` and an index.html), ``git push``ed over a real sshd, built by the
null pack with nothing installed, run by the docker scheduler and answering through a
private nginx (127.0.0.1). A second app chooses the null pack by its URL in ``.buildpacks``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

NULL = Path(__file__).resolve().parents[4] / "tests" / "apps" / "null"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def null_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in NULL.iterdir() if p.is_file()}


def test_null_app_runs_as_pushed_through_nginx(stack_image, docker_cleanup, private_nginx, sshd, tmp_path):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("null"))
    pushed = git_push(init_repo(tmp_path / app, null_files()), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Null app (no build step) detected" in pushed.output
    assert "Installing dependencies" not in pushed.output and "Dependency layer" not in pushed.output

    home = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert home.status == 200 and "hello from a null app" in home.body
    marker = private_nginx.request("/.null", host=f"{app}.{GLOBAL}")
    assert marker.status == 200 and marker.body == ""  # the files are there as they were pushed

    # the same files without the marker, choosing the pack by Dokku's null buildpack URL
    other = docker_cleanup.app(new_app_name("nullurl"))
    files = {**{k: v for k, v in null_files().items() if k != ".null"}}
    files[".buildpacks"] = "https://github.com/ryandotsmith/null-buildpack.git\n"
    files["index.html"] = "<p>chosen by .buildpacks</p>\n"
    pushed = git_push(init_repo(tmp_path / other, files), other, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Null app (no build step) detected" in pushed.output and "Static site" not in pushed.output
    answer = private_nginx.request(host=f"{other}.{GLOBAL}")
    assert answer.status == 200 and "chosen by .buildpacks" in answer.body
