"""builds:list / builds:output over SSH after real pushes: one good, one whose build fails.

Real stack (git push over a private sshd, python buildpack, docker scheduler, private nginx):
every deploy is kept with its status, release, revision and output (the ``remote:`` lines the
push showed, without escapes, ending with the failed build's error line); a running build's
output can be followed while it runs; a deployer key reads builds of its apps only.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from skiff import builds
from skiff.testing.sshd import add_key, commit_files, head, make_key

from .conftest import flask_files, push_good

pytestmark = pytest.mark.e2e

ROW = re.compile(r"(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")


def _rows(text: str) -> list[tuple[str, ...]]:
    """The builds:list table rows: (id, kind, status, started, duration, release, revision)."""
    return [m.groups() for line in text.splitlines() if (m := ROW.fullmatch(line.strip()))]


def _remote_lines(output: str) -> list[str]:
    return [line.removeprefix("remote: ").rstrip() for line in output.splitlines() if line.startswith("remote: ")]


def listed_before_message(app: str) -> str:
    return f"{app} has no builds: the fixture's first push was not recorded"


def test_pushes_are_kept_as_builds_with_their_output(rstack, flask_app, tmp_path):
    app = flask_app.name
    before = _rows(rstack.ssh("builds:list", app).stdout)
    assert before, listed_before_message(app)
    first_id = int(before[0][0])

    good = push_good(rstack, flask_app, "builds v2")
    good_sha = head(flask_app.repo)
    commit_files(
        flask_app.repo,
        {**flask_files("never served"), "requirements.txt": "flask==3.1.1\nnot a requirement ===\n"},
        "a broken requirement",
    )
    bad = rstack.push(flask_app.repo, app)
    assert bad.exit_code != 0, bad.output
    bad_sha = head(flask_app.repo)
    bang = [line for line in _remote_lines(bad.output) if line.startswith("!     ")]
    assert bang and "build failed" in bang[-1], bad.output

    listed = rstack.ssh("builds:list", app)
    assert listed.exit_code == 0, listed.output
    rows = _rows(listed.stdout)
    assert [int(r[0]) for r in rows[:3]] == [first_id + 2, first_id + 1, first_id]  # newest first
    failed, succeeded = rows[0], rows[1]
    assert failed[1:3] == ("push", "failed") and failed[5] == "-" and failed[6] == bad_sha[:7]
    with rstack.state() as state:
        current = state.current_release(app)
    assert succeeded[1:3] == ("push", "succeeded") and succeeded[5] == f"v{current.version}"
    assert succeeded[6] == good_sha[:7]

    # the good build's output is what the push showed
    shown = rstack.ssh("builds:output", app, str(first_id + 1))
    assert shown.exit_code == 0, shown.output
    stored = shown.stdout.splitlines()
    assert "\x1b" not in shown.stdout
    pushed = _remote_lines(good.output)
    for wanted in (f"-----> Building {app} from {good_sha[:7]}", f"-----> Releasing {app} v{current.version} ("):
        assert [line for line in stored if line.startswith(wanted)], shown.stdout
        assert [line for line in pushed if line.startswith(wanted)], good.output
    assert [line for line in stored if line.startswith("-----> Done in")]
    assert set(line.rstrip() for line in stored if line.startswith("----->")) <= set(pushed)

    # the failed build's output ends with its error line, as the push showed it; `latest` is it
    latest = rstack.ssh("builds:output", app, "latest")
    assert latest.exit_code == 0, latest.output
    assert latest.stdout.splitlines()[-1] == bang[-1]
    assert latest.stdout == rstack.ssh("builds:output", app, str(first_id + 2)).stdout
    assert "Releasing" not in latest.stdout

    # bad input: one line, non-zero
    for args, message in (
        (("builds:output", app, "9999"), f"app {app} has no build 9999"),
        (("builds:output", app, "x1"), f"invalid build id 'x1': a number from builds:list {app}, or latest"),
        (("builds:list", "no-such-app"), "app no-such-app does not exist"),
    ):
        result = rstack.ssh(*args)
        assert result.exit_code != 0 and result.stderr.strip() == f"!     {message}", result.output


def test_a_running_build_can_be_followed_and_a_deployer_sees_only_its_apps(rstack, flask_app, tmp_path):
    app = flask_app.name
    with rstack.state() as state:
        newest = builds.latest(state, app).id
    commit_files(flask_app.repo, flask_files("followed"), "answer followed")
    pushed: dict = {}
    pusher = threading.Thread(target=lambda: pushed.update(result=rstack.push(flask_app.repo, app)))
    pusher.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with rstack.state() as state:
                running = builds.latest(state, app)
            if running.id > newest:
                break
            time.sleep(0.05)
        assert running.id == newest + 1 and running.status == "running"  # a push runs for seconds
        followed = rstack.ssh("builds:output", app, str(running.id), "--follow", timeout=300)
    finally:
        pusher.join(timeout=300)
    assert pushed["result"].exit_code == 0, pushed["result"].output
    assert followed.exit_code == 0, followed.output
    final = rstack.ssh("builds:output", app, str(running.id))
    assert followed.stdout == final.stdout and "-----> Done in" in final.stdout
    rstack.wait_answer(app, "followed")
    flask_app.answer = "followed"

    # a deployer key: its own app's builds, not another's
    bob_key = make_key(tmp_path / "bob", "bob")
    assert add_key("bob-builds", bob_key.with_suffix(".pub"), rstack.env, role="deployer").exit_code == 0
    try:
        mine = "bob-builds-app"
        assert rstack.ssh("apps:create", mine).exit_code == 0
        assert rstack.ssh("acl:add", mine, "bob-builds").exit_code == 0
        bob = rstack.sshd.for_key(bob_key)
        own = bob.ssh(["builds:list", mine])
        assert own.exit_code == 0 and f"{mine} builds" in own.stdout, own.output
        for command in (["builds:list", app], ["builds:output", app, "latest"]):
            refused = bob.ssh(command)
            assert refused.exit_code != 0 and refused.stdout == ""
            assert refused.stderr.strip() == (
                f"!     key 'bob-builds' (deployer) may not run {command[0]} on app '{app}'"
            ), refused.output
    finally:
        rstack.skiff("apps:destroy", "bob-builds-app", "--force")
        rstack.skiff("ssh-keys:remove", "bob-builds")
