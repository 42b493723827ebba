"""Concurrent pushes on the real stack: two of one app, and one of another app, at once.

The ordering guarantees (the second push of an app waits for the first, pushes of two
apps overlap) are proven deterministically, with gates, on the stub pipeline in
plugins/builtin/git/tests/test_push_e2e.py (test_two_pushes_of_one_app_run_one_after_the_other,
test_pushes_of_two_apps_overlap). This test adds what only the real parts can break:
two real builds and deploys at the same time (docker, host port allocation, nginx files
and reloads) end with each app served its own latest code through nginx.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest

from skiff import builds
from skiff.testing.docker import DockerCleanup, new_app_name
from skiff.testing.sshd import commit_files, head, init_repo

from .conftest import flask_files

pytestmark = pytest.mark.e2e


def test_two_pushes_of_one_app_and_a_push_of_another_app_at_once(rstack, flask_app, tmp_path, docker_client):
    app, other = flask_app.name, new_app_name("relb")
    files = flask_files("first of two")
    files["requirements.txt"] += f"# {other}\n"  # the first build installs the dependencies again: seconds
    commit_files(flask_app.repo, files, "first")
    first_repo = tmp_path / "first"
    shutil.copytree(flask_app.repo, first_repo)
    commit_files(
        flask_app.repo, flask_files("second of two") | {"requirements.txt": files["requirements.txt"]}, "second"
    )  # a fast-forward of the first
    other_repo = init_repo(tmp_path / other, flask_files("the other app"))

    results: dict = {}

    def push(key, repo, name):
        results[key] = rstack.push(repo, name)

    first = subprocess.Popen(
        ["git", "push", rstack.sshd.remote(app), "HEAD:main"],
        cwd=first_repo,
        env=rstack.sshd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in first.stdout:  # the first push holds the app's push lock once it is building
        seen.append(line)
        if "-----> Building" in line:
            break
    threads = [
        threading.Thread(target=push, args=("second", flask_app.repo, app)),
        threading.Thread(target=push, args=("other", other_repo, other)),
    ]
    try:
        for thread in threads:
            thread.start()
        seen += first.stdout.readlines()
        assert first.wait(300) == 0, "".join(seen)
        for thread in threads:
            thread.join(300)
        for key in ("second", "other"):
            assert results[key].exit_code == 0, (key, results[key].output)
        assert "Waiting for another push of" in results["second"].output
        rstack.wait_answer(app, "second of two")
        rstack.wait_answer(other, "the other app")
        flask_app.answer = "second of two"
        with rstack.state() as state:
            assert [r.status for r in state.releases(app)][-2:] == ["succeeded", "succeeded"]
            ports = {a: state.current_release(a).meta["upstreams"] for a in (app, other)}
            kept = {a: builds.builds(state, a) for a in (app, other)}
        assert not set(ports[app]) & set(ports[other]), ports
        # each push is one build of its app, its output its own (no lines of the other pushes)
        second, first_build = kept[app][:2]
        assert second.id == first_build.id + 1
        assert [(b.kind, b.status) for b in (first_build, second)] == [("push", "succeeded")] * 2
        assert second.revision == head(flask_app.repo) and first_build.revision == head(first_repo)
        assert [(b.id, b.kind, b.status) for b in kept[other]] == [(1, "push", "succeeded")]
        for build, mine, theirs in (
            (first_build, first_build.revision, second.revision),
            (second, second.revision, first_build.revision),
        ):
            text = builds.read_output(rstack.root, app, build.id)
            assert f"Building {app} from {mine[:7]}" in text and theirs[:7] not in text
            assert other not in text
        assert app not in builds.read_output(rstack.root, other, 1)
    finally:
        rstack.skiff("apps:destroy", other, "--force")  # containers, images, build cache
        cleanup = DockerCleanup(docker_client)
        cleanup.app(other)
        cleanup.cleanup()
