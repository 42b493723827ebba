"""A push that fails anywhere is rejected and leaves the running release alone.

Real stack (git push over a private sshd, python buildpack, docker scheduler, private
nginx). For each failure the push exits non-zero with a clear ``!`` line, git keeps the
old branch tip, nginx keeps serving the old answer, and nothing is half-written: no
pending release, the current release unchanged, the app's nginx file unchanged, no
leftover containers. Then a good push still works.
"""

from __future__ import annotations

import json

import pytest

from skiff.testing.sshd import commit_files

from .conftest import APP_JSON, flask_files, push_good

pytestmark = pytest.mark.e2e


def _app_json(**web_check) -> str:
    check = dict(APP_JSON["healthchecks"]["web"][0], **web_check)
    return json.dumps({"healthchecks": {"web": [check]}})


FAILURES = {
    # a real docker build whose pip step fails (an invalid requirement line)
    "build": ({"requirements.txt": "flask==3.1.1\ngunicorn==23.0.0\nnot a requirement ===\n"}, "build failed"),
    # the new container answers, but not what its app.json check wants
    "check": ({"app.json": _app_json(content="this text is never served")}, "failed its checks"),
    # the Procfile release task exits 3 before any new process starts
    "release-task": (
        {
            "Procfile": "web: gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app\n"
            "release: python -c 'import sys; sys.exit(3)'\n"
        },
        "release",
    ),
    # two web lines
    "procfile": ({"Procfile": "web: gunicorn app:app\nweb: python app.py\n"}, "duplicate process type web"),
}


def snapshot(rstack, app: str) -> dict:
    with rstack.state() as state:
        current = state.current_release(app)
        releases = [(r.version, r.status) for r in state.releases(app)]
    conf = rstack.root / "nginx" / "conf.d" / f"app-{app}.conf"
    return {
        "current": current.version if current else None,
        "image": current.image if current else None,
        "releases": releases,
        "nginx": conf.read_text() if conf.exists() else None,
        "head": rstack.remote_head(app),
        "containers": rstack.settled_containers(app),
    }


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failed_push_is_rejected_and_old_release_keeps_serving(rstack, flask_app, kind):
    app = flask_app.name
    before = snapshot(rstack, app)
    assert rstack.answer(app) == (200, flask_app.answer)
    files, message = FAILURES[kind]
    commit_files(flask_app.repo, {**flask_files(f"{kind} never serves"), **files}, f"bad {kind}")

    result = rstack.push(flask_app.repo, app)

    assert result.exit_code != 0, result.output
    assert "pre-receive hook declined" in result.output
    bang = [line for line in result.output.splitlines() if line.startswith("remote: !     ")]
    assert bang and message in bang[-1], result.output
    assert f"v{before['current']} keeps serving" in bang[-1]
    assert rstack.answer(app) == (200, flask_app.answer)
    after = snapshot(rstack, app)
    for key in ("current", "image", "nginx", "head"):
        assert after[key] == before[key], key
    new = after["releases"][len(before["releases"]) :]
    assert after["releases"][: len(before["releases"])] == before["releases"]
    assert all(status == "failed" for _, status in new), new  # nothing pending, nothing succeeded
    if kind in ("build", "procfile"):
        assert new == []  # it failed before a release was recorded
    assert after["containers"] == before["containers"]  # no leftover build or new containers

    push_good(rstack, flask_app, f"after {kind}")
