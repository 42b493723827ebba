"""Fixtures of the dashboard's tests: a store with two keys and two apps, a test client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skiff.context import Context

# plugins that need docker/nginx to do anything; the dashboard's rules do not depend on them
OFFLINE = ("docker", "nginx", "buildpacks", "dockerfile", "postgres", "stack", "swarm", "redis", "registry")


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_suffix(".pub")


def release(h: Any, app: str, formation: dict[str, int], revision: str = "a1b2c3d4e5") -> Any:
    """Record a succeeded release of ``app`` running ``formation`` (it becomes current)."""
    r = h.state.create_release(
        app,
        description=f"Deploy {revision[:7]}",
        image="img",
        revision=revision,
        config=h.state.get_config(app),
        processes={p: "run" for p in formation},
        meta={"formation": formation},
    )
    h.state.finish_release(r, "succeeded", {})
    return r


@pytest.fixture
def h(skiff, tmp_path, monkeypatch):
    """bob: a deployer on app ``web``; alice: an admin; apps ``web`` and ``other``; enabled."""
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(tmp_path / "authorized_keys"))
    harness = skiff(entry_points=True, disabled=OFFLINE)
    assert harness.invoke("ssh-keys:add", "bob", str(keygen(tmp_path / "bob"))).exit_code == 0
    added = harness.invoke("ssh-keys:add", "alice", str(keygen(tmp_path / "alice")), "--role", "admin")
    assert added.exit_code == 0
    for app in ("web", "other"):
        harness.create_app(app)
    assert harness.invoke("acl:add", "web", "bob").exit_code == 0
    assert harness.invoke("dashboard:set", "--global", "domain", "dash.example.com").exit_code == 0
    enabled = harness.invoke("dashboard:enable")
    assert enabled.exit_code == 0, enabled.output
    harness.state.set_config("web", {"SECRET": "s3cret-value"})
    harness.state.set_config("other", {"OTHER_SECRET": "other-secret-value"})
    release(harness, "web", {"web": 1, "worker": 1}, "1111111aaaa")
    release(harness, "web", {"web": 1, "worker": 1}, "2222222bbbb")
    release(harness, "other", {"web": 1})
    return harness


class Recorder:
    """The command runner of the unit tests: records what would run, as which key."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.status = 0

    def __call__(self, root: Path, key: str, args: list[str]) -> Any:
        from skiff_dashboard.actions import Outcome

        self.calls.append((key, list(args)))
        return Outcome(self.status, "", "" if self.status == 0 else "!     it failed\n")


@pytest.fixture
def runner() -> Recorder:
    return Recorder()


@pytest.fixture
def engine() -> dict[str, bool]:
    return {"up": True}


@pytest.fixture
def dash(h, runner, engine) -> Any:
    from skiff_dashboard import views, web

    def check() -> None:
        if not engine["up"]:
            raise views.EngineDown("the container engine does not answer (test); nothing was changed")

    return web.Dashboard(root=h.root, new_context=lambda: Context(h.pm, root=h.root), run=runner, check_engine=check)


@pytest.fixture
def client(dash) -> Any:
    from starlette.testclient import TestClient

    from skiff_dashboard import web

    with TestClient(web.build(dash), base_url="http://dash.example.com") as c:
        yield c


@pytest.fixture
def login(h, client) -> Callable[[str], Any]:
    from skiff_dashboard import store

    def as_key(key: str) -> Any:
        token = store.create_link(h.root, key, 300)
        response = client.get(f"/login/{token}", follow_redirects=False)
        assert response.status_code == 303, response.text
        return response

    return as_key
