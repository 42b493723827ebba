"""skiff.dockerclient: the one docker client helper (docker imported lazily, one-line errors)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from skiff import dockerclient
from skiff.errors import SkiffError


class FakeClient:
    def __init__(self, timeout: int, fail_ping: bool = False, version: str | None = None) -> None:
        self.timeout = timeout
        self.fail_ping = fail_ping
        self.pings = 0
        self.version = version  # None: asked the engine (GET /version)
        self.api = types.SimpleNamespace(api_version="1.41")

    def ping(self) -> bool:
        self.pings += 1
        if self.fail_ping:
            raise ConnectionError("Connection aborted.\n  (no such file)")
        return True


@pytest.fixture
def fake_docker(monkeypatch):
    made: list[FakeClient] = []
    behaviour = {"fail_ping": False, "fail_connect": False}

    def from_env(timeout: int, version: str | None = None) -> FakeClient:
        if behaviour["fail_connect"]:
            raise RuntimeError("Error while fetching server API version")
        made.append(FakeClient(timeout, behaviour["fail_ping"], version))
        return made[-1]

    monkeypatch.setitem(sys.modules, "docker", types.SimpleNamespace(from_env=from_env))
    dockerclient.reset()
    yield made, behaviour
    dockerclient.reset()


def test_client_passes_the_timeout_and_pings(fake_docker):
    made, _ = fake_docker
    c = dockerclient.client(900)
    assert c is made[0] and c.timeout == 900 and c.pings == 1 and c.version is None
    assert dockerclient.client(300, ping=False).pings == 0
    assert dockerclient.client() is not c  # a new client each time


def test_later_local_clients_reuse_the_version_and_the_ping(fake_docker, monkeypatch):
    made, _ = fake_docker
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    first = dockerclient.client(600, ping=False)
    second = dockerclient.client(120)
    assert (first.pings, first.version) == (0, None)  # asked the engine its version: it answered
    assert (second.pings, second.version) == (0, "1.41")  # no GET /version, no ping
    monkeypatch.setenv("DOCKER_HOST", "unix:///other.sock")  # another engine: asked again
    assert (dockerclient.client(120).pings, made[-1].version) == (1, None)
    dockerclient.reset()
    assert dockerclient.client(120).pings == 1  # after a reset (the engine restarted): asked again


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


class NetworkApi:
    """Networks with subnets; ``taken`` subnets are refused as overlapping (made meanwhile elsewhere)."""

    def __init__(self, existing: dict[str, str], taken: tuple[str, ...] = ()) -> None:
        self.nets = {name: subnet for name, subnet in existing.items()}
        self.taken = set(taken)

    def networks(self, names=None):
        return [
            {"Name": n, "Id": f"id-{n}", "IPAM": {"Config": [{"Subnet": s}] if s else []}}
            for n, s in self.nets.items()
            if not names or any(x in n for x in names)
        ]

    def create_network(self, name, driver, check_duplicate, labels, ipam):
        import docker.errors

        subnet = ipam["Config"][0]["Subnet"]
        if subnet in self.taken:
            raise docker.errors.APIError("Pool overlaps with other one on this address space")
        self.nets[name] = subnet
        return {"Id": f"id-{name}"}


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth1\t0005D00A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_host_routes_are_read_from_the_kernels_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert dockerclient.host_routes(str(table)) == ["10.208.5.0/24"]  # the default route is not one
    assert dockerclient.host_routes(str(tmp_path / "missing")) == []


def test_networks_get_a_free_slash_24_of_skiffs_pool(monkeypatch, tmp_path):
    monkeypatch.delenv(dockerclient.NETWORK_POOL_ENV, raising=False)
    table = tmp_path / "route"
    table.write_text(ROUTES)  # the host reaches 10.208.5.0/24 (a LAN): never a container network
    monkeypatch.setattr(dockerclient, "ROUTES", str(table))
    api = NetworkApi({"bridge": "172.17.0.0/16", "old": "10.208.0.0/24", "wide": "10.208.2.0/23", "host": ""})
    client = types.SimpleNamespace(api=api)
    assert dockerclient.ensure_network(client, "skiff-app-a") == "id-skiff-app-a"
    assert api.nets["skiff-app-a"] == "10.208.1.0/24"  # the first /24 nothing overlaps
    assert dockerclient.ensure_network(client, "skiff-app-a") == "id-skiff-app-a"  # there: nothing made
    assert len(api.nets) == 5
    api.taken = {"10.208.4.0/24"}  # another process took it between the listing and the create
    dockerclient.ensure_network(client, "skiff-app-b")
    assert api.nets["skiff-app-b"] == "10.208.6.0/24"  # 10.208.5.0/24 is the host's route
    monkeypatch.setenv(dockerclient.NETWORK_POOL_ENV, "10.99.0.0/23")
    dockerclient.ensure_network(client, "c")
    dockerclient.ensure_network(client, "d")
    assert (api.nets["c"], api.nets["d"]) == ("10.99.0.0/24", "10.99.1.0/24")
    with pytest.raises(SkiffError, match="no free /24 left in 10.99.0.0/23"):
        dockerclient.ensure_network(client, "e")
