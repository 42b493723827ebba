"""A shared real stack for the reliability suite: SKIFF_ROOT, private nginx, private sshd.

``rstack`` (session scope) is one server that the real-stack tests push to with real
``git push`` over SSH: every installed plugin is loaded (python buildpack, docker
scheduler, nginx). ``flask_app`` (session scope) is the Flask sample app
(tests/apps/flask) pushed once to it; tests push further commits to the same app, so
the dependency layer is built once and every other build is a code-only one. Each
test leaves the app serving (``flask_app.answer`` is what nginx answers).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.state import State
from skiff.testing.docker import DockerCleanup, new_app_name
from skiff.testing.nginx import PrivateNginx, get
from skiff.testing.sshd import CommandResult, SshServer, add_key, commit_files, git_push, init_repo, skiff_executable

REPO_ROOT = Path(__file__).resolve().parents[2]
FLASK = REPO_ROOT / "tests" / "apps" / "flask"
DOMAIN = "skiff.rel"
#: A quick, bounded health check: a failing check fails in about a second.
APP_JSON = {
    "healthchecks": {
        "web": [{"type": "startup", "name": "answers", "path": "/", "attempts": 4, "wait": 0.25, "timeout": 3}]
    }
}


def flask_files(answer: str) -> dict[str, str]:
    """The Flask sample app answering ``answer`` (and a fast health check in app.json)."""
    files = {p.name: p.read_text() for p in FLASK.iterdir() if p.is_file()}
    files["app.py"] = files["app.py"].replace('"hello from flask"', repr(answer))
    assert repr(answer) in files["app.py"]
    files["app.json"] = json.dumps(APP_JSON)
    return files


@dataclass
class Stack:
    root: Path
    nginx: PrivateNginx
    sshd: SshServer
    env: dict[str, str]
    docker: Any

    def skiff(self, *args: str, input: str | None = None, timeout: float = 300) -> CommandResult:
        """``skiff ARGS`` run locally on the server (a real process)."""
        proc = subprocess.run(
            [skiff_executable(), *args],
            input=input or "",
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=timeout,
        )
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def ssh(self, *args: str, input: str | None = None, timeout: float = 300) -> CommandResult:
        return self.sshd.ssh(list(args), input=input, timeout=timeout)

    def push(self, repo: Path, app: str, timeout: float = 300) -> CommandResult:
        return git_push(repo, app, self.sshd, timeout=timeout)

    def host(self, app: str) -> str:
        return f"{app}.{DOMAIN}"

    def answer(self, app: str) -> tuple[int, str]:
        """One GET through nginx on a new connection."""
        response = get(self.nginx.http_port, "/", self.host(app), timeout=10)
        return response.status, response.body.strip()

    def wait_answer(self, app: str, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.answer(app)
                if last == (200, text):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"{app} did not answer {text!r} through nginx in {timeout}s: {last}")

    @contextlib.contextmanager
    def state(self) -> Iterator[State]:
        state = State(self.root)
        try:
            yield state
        finally:
            state.close()

    def containers(self, app: str) -> list[str]:
        """Names of every container of ``app``: processes, one-offs and build containers."""
        names = set()
        for key in ("skiff.app", "skiff.build-for"):
            for c in self.docker.containers.list(all=True, filters={"label": f"{key}={app}"}, sparse=True):
                names.add(c.attrs.get("Names", [c.id])[0].lstrip("/"))
        return sorted(names)

    def settled_containers(self, app: str, timeout: float = 60) -> list[str]:
        """The app's containers once the retiring ones (``.old-``) are gone."""
        deadline = time.monotonic() + timeout
        while True:
            names = self.containers(app)
            if not any(".old-" in n for n in names) or time.monotonic() > deadline:
                return names
            time.sleep(0.5)

    def remote_head(self, app: str) -> str | None:
        result = self.sshd.git("ls-remote", self.sshd.remote(app), "refs/heads/main")
        assert result.exit_code == 0, result.output
        return result.stdout.split()[0] if result.stdout.strip() else None


@pytest.fixture(scope="session")
def rstack(tmp_path_factory, nginx_factory, sshd_factory, sshd_client_key, docker_client, stack_image) -> Stack:
    base = tmp_path_factory.mktemp("reliability")
    root = base / "skiff-root"
    root.mkdir()
    nginx = nginx_factory(root)
    authorized = base / "authorized_keys"
    env = {"SKIFF_ROOT": str(root), "SKIFF_AUTHORIZED_KEYS": str(authorized), **nginx.env}
    added = add_key("test", sshd_client_key.with_suffix(".pub"), env)
    assert added.exit_code == 0, added.output
    sshd = sshd_factory(authorized, env, base / "sshd")
    stack = Stack(root, nginx, sshd, env, docker_client)
    assert stack.skiff("domains:set-global", DOMAIN).exit_code == 0
    return stack


@dataclass
class PushedApp:
    name: str
    repo: Path
    answer: str


@pytest.fixture(scope="session")
def flask_app(rstack: Stack, docker_client, tmp_path_factory) -> Iterator[PushedApp]:
    """The Flask sample app, pushed once and answering ``v1`` through nginx."""
    cleanup = DockerCleanup(docker_client)
    name = cleanup.app(new_app_name("rel"))
    repo = init_repo(tmp_path_factory.mktemp("repo") / name, flask_files("v1"))
    try:
        # old containers retire 1 s after a switch (default 10 s), so tests see a settled app sooner
        assert rstack.ssh("apps:create", name).exit_code == 0
        assert rstack.ssh("checks:set", name, "wait-to-retire", "1").exit_code == 0
        pushed = rstack.push(repo, name)
        assert pushed.exit_code == 0, pushed.output
        rstack.wait_answer(name, "v1")
        yield PushedApp(name, repo, "v1")
    finally:
        rstack.skiff("apps:destroy", name, "--force")  # also its build cache volume
        cleanup.cleanup()


def push_good(stack: Stack, app: PushedApp, answer: str) -> CommandResult:
    """Commit a code change that answers ``answer``, push it, wait until nginx serves it."""
    commit_files(app.repo, flask_files(answer), f"answer {answer}")
    result = stack.push(app.repo, app.name)
    assert result.exit_code == 0, result.output
    stack.wait_answer(app.name, answer)
    app.answer = answer
    return result
