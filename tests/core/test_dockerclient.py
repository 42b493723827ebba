"""skiff.dockerclient: the one docker client helper (docker imported lazily, one-line errors)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from skiff import dockerclient
from skiff.errors import SkiffError


class FakeClient:
    def __init__(self, timeout: int, fail_ping: bool = False) -> None:
        self.timeout = timeout
        self.fail_ping = fail_ping
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.fail_ping:
            raise ConnectionError("Connection aborted.\n  (no such file)")
        return True


@pytest.fixture
def fake_docker(monkeypatch):
    made: list[FakeClient] = []
    behaviour = {"fail_ping": False, "fail_connect": False}

    def from_env(timeout: int) -> FakeClient:
        if behaviour["fail_connect"]:
            raise RuntimeError("Error while fetching server API version")
        made.append(FakeClient(timeout, behaviour["fail_ping"]))
        return made[-1]

    monkeypatch.setitem(sys.modules, "docker", types.SimpleNamespace(from_env=from_env))
    dockerclient.reset()
    yield made, behaviour
    dockerclient.reset()


def test_client_passes_the_timeout_and_pings(fake_docker):
    made, _ = fake_docker
    c = dockerclient.client(900)
    assert c is made[0] and c.timeout == 900 and c.pings == 1
    assert dockerclient.client(300, ping=False).pings == 0
    assert dockerclient.client() is not c  # a new client each time


def test_shared_keeps_one_client_per_timeout_until_reset(fake_docker):
    made, _ = fake_docker
    first = dockerclient.shared(120)
    assert dockerclient.shared(120) is first and first.pings == 1
    assert dockerclient.shared(60) is not first
    dockerclient.reset()
    assert dockerclient.shared(120) is not first and len(made) == 3


@pytest.mark.parametrize("failure", ["fail_ping", "fail_connect"])
def test_no_engine_is_one_line(fake_docker, failure):
    made, behaviour = fake_docker
    behaviour[failure] = True
    with pytest.raises(SkiffError) as info:
        dockerclient.shared(120)
    message = str(info.value)
    assert message.startswith("cannot reach the Docker engine (") and message.endswith("is dockerd running?")
    assert "\n" not in message
    behaviour[failure] = False
    assert dockerclient.shared(120).pings == 1  # a failure is not cached


def test_missing_docker_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker -> ImportError
    with pytest.raises(SkiffError, match="the docker Python package is not installed"):
        dockerclient.client()


def test_importing_the_helper_does_not_import_docker():
    code = "import sys, skiff.dockerclient; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_plugin_gets_its_client_from_the_helper():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "plugins"
    sources = [p for p in root.glob("*/*/skiff_*/**/*.py")]
    assert len(sources) > 20  # the plugins are there to scan
    offenders = [
        str(p.relative_to(root))
        for p in sources
        if "docker.from_env" in p.read_text() or "DockerClient(" in p.read_text()
    ]
    assert offenders == []
