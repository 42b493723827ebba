"""End to end: an app.json written the Dokku way (a BOM, CRLF line ends, ``//`` and ``/* */``
comments, trailing commas) is honoured on a real ``git push`` over sshd, with the docker
scheduler and a private nginx: its predeploy and postdeploy scripts run, its ``env`` default
is stored, and its health check decides the deploy (a commented check the new release
cannot pass rejects the push; the old release keeps serving).

The app is tests/apps/null (the null pack: nothing to install, so the build takes a second).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, git_push, init_repo

pytestmark = pytest.mark.e2e

NULL = Path(__file__).resolve().parents[4] / "tests" / "apps" / "null"
GLOBAL = "skiff.test"

APP_JSON = """\ufeff// app.json the Dokku way: comments and trailing commas
{
  "name": "commented", // dropped: Skiff does not use it
  "scripts": {
    "dokku": {
      /* one-off containers: before any new process
         starts, and after the switch */
      "predeploy": "echo predeploy saw http://example.com//path && test -f /app/.null",
      "postdeploy": "echo postdeploy ran /* not a comment */", // after the switch
    },
  },
  "healthchecks": {
    "web": [
      {
        "type": "startup",
        "name": "home",
        "path": "/",
        "content": "CONTENT", // what the page must hold
        "attempts": 3,
        "wait": 0.25,
        "timeout": 3,
      },
    ],
  },
  "env": {"GREETING": {"value": "hi, // there",},},
}
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def app_json(content: str) -> bytes:
    return APP_JSON.replace("CONTENT", content).replace("\n", "\r\n").encode()


def test_commented_app_json_scripts_env_and_checks(stack_image, docker_cleanup, private_nginx, sshd, tmp_path):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("appjson"))
    host = f"{app}.{GLOBAL}"
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in NULL.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / app, {**files, "app.json": app_json("hello from a null app")})

    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    out = pushed.output
    assert "Running predeploy: echo predeploy saw http://example.com//path" in out
    assert out.index("predeploy saw http://example.com//path") < out.index("Starting")
    assert "postdeploy ran /* not a comment */" in out
    assert "app.json: set the app.json default for GREETING" in out
    got = sshd.ssh(["config:get", app, "GREETING"])
    assert (got.exit_code, got.stdout.strip()) == (0, "hi, // there")
    home = private_nginx.request(host=host)
    assert home.status == 200 and "hello from a null app" in home.body

    # the commented health check is the one applied: content the page lacks rejects the push
    commit_files(repo, {"app.json": app_json("text this page never holds")}, "check for other content")
    rejected = git_push(repo, app, sshd)
    assert rejected.exit_code != 0, rejected.output
    assert "failed its checks" in rejected.output
    assert "the answer lacks 'text this page never holds'" in rejected.output
    assert "v1 keeps serving" in rejected.output
    home = private_nginx.request(host=host)
    assert home.status == 200 and "hello from a null app" in home.body
