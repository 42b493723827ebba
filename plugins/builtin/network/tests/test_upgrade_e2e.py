"""End to end, the upgrade: containers the previous version started on the one shared network
keep running through ``state:migrate`` and come out isolated, live, with their names.

The previous version's containers are made here as it made them: an app's web container and a
linked postgres service's container (a TCP listener standing in for the server) on the shared
network with the aliases ``APP.web`` and ``skiff-postgres-NAME``, and a second app beside them.
The shared network gets a name of this test's own (the real ``skiff`` may be in use by other
runs on this engine): the migration reads it from ``skiff_network.migrate.LEGACY``.
"""

from __future__ import annotations

import secrets
import time

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
import skiff_network.plugin as network_plugin
import skiff_postgres.plugin as postgres_plugin
from skiff.testing.docker import new_app_name
from skiff_network import migrate
from skiff_postgres.kind import PgService as Service

pytestmark = pytest.mark.e2e

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except socket.gaierror:
    print("unresolved")
except OSError as exc:
    print("closed", type(exc).__name__)
"""


def connects(container, host: str, port: int) -> str:
    code, out = container.exec_run(["python3", "-c", CONNECT, host, str(port)])
    return out.decode().strip()


def listening(container, host: str, port: int, timeout: float = 20) -> str:
    """``connects``, waiting for the server in the container to start listening."""
    deadline = time.monotonic() + timeout
    while True:
        result = connects(container, host, port)
        if result == "open" or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture
def engine_objects(docker_client):
    made: dict[str, list] = {"containers": [], "networks": []}
    yield made
    for container in made["containers"]:
        try:
            container.remove(force=True)
        except Exception:
            pass
    for name in made["networks"]:
        for net in docker_client.networks.list(names=[name]):
            if net.name == name:
                try:
                    net.remove()
                except Exception:
                    pass


def test_previous_versions_containers_keep_running_and_come_out_isolated(
    skiff, docker_client, stack_image, engine_objects, monkeypatch
):
    legacy = f"skifftest-legacy-{secrets.token_hex(4)}"
    monkeypatch.setattr(migrate, "LEGACY", legacy)
    app, peer, db = new_app_name("up"), new_app_name("peer"), "db" + secrets.token_hex(4)
    engine_objects["networks"] += [legacy, f"skiff-app-{app}", f"skiff-app-{peer}"]
    docker_client.networks.create(legacy, driver="bridge", labels={"skiff.network": "1"})

    h = skiff(apps_plugin, docker_plugin, network_plugin, postgres_plugin)
    for name in (app, peer):
        h.create_app(name)  # with the release whose image the old container runs
        h.state.create_release(
            name, description="v1", image=stack_image, revision=None, config={}, processes={"web": ""}, meta={}
        )
    service = Service(name=db, image=stack_image, password="s3cret-pass", links={app: "DATABASE_URL"})
    h.state.set_property("postgres", f"service:{db}", service.as_dict())

    def old_container(name: str, labels: dict[str, str], alias: str, port: int):
        container = docker_client.containers.create(
            stack_image,
            ["python3", "-m", "http.server", str(port)],
            name=name,
            labels=labels,
            network=legacy,
            networking_config={legacy: docker_client.api.create_endpoint_config(aliases=[alias])},
            restart_policy={"Name": "unless-stopped"},
            detach=True,
        )
        engine_objects["containers"].append(container)
        container.start()
        return container

    def process(of: str) -> dict[str, str]:
        return {"skiff.app": of, "skiff.process": "web", "skiff.role": "process", "skiff.release": "1"}

    web = old_container(f"{app}.web.1", process(app), f"{app}.web", 5000)
    other = old_container(f"{peer}.web.1", process(peer), f"{peer}.web", 5000)
    pg = old_container(
        f"skiff.postgres.{db}",
        {"skiff.service": "postgres", "skiff.postgres.name": db, "skiff.root": str(h.context.root)},
        f"skiff-postgres-{db}",
        5432,
    )
    started = {c.id: docker_client.api.inspect_container(c.id)["State"]["StartedAt"] for c in (web, other, pg)}
    # the previous version: one network, everyone reaches everyone
    assert listening(web, f"skiff-postgres-{db}", 5432) == "open"
    assert listening(web, f"{peer}.web", 5000) == "open"

    migrated = h.invoke("state:migrate")
    assert migrated.exit_code == 0, migrated.output
    assert "moved 2 app container(s)" in migrated.output and "moved 1 service container(s)" in migrated.output

    for container in (web, other, pg):
        state = docker_client.api.inspect_container(container.id)["State"]
        assert state["Running"] and state["StartedAt"] == started[container.id]  # never restarted
    nets = {c.name: docker_client.api.inspect_container(c.id)["NetworkSettings"]["Networks"] for c in (web, other, pg)}
    assert set(nets[f"{app}.web.1"]) == {f"skiff-app-{app}"}
    assert f"{app}.web" in nets[f"{app}.web.1"][f"skiff-app-{app}"]["Aliases"]
    assert set(nets[f"{peer}.web.1"]) == {f"skiff-app-{peer}"}
    assert set(nets[f"skiff.postgres.{db}"]) == {f"skiff-app-{app}"}
    # the linked service still answers to its old name; the other app is out of reach
    assert connects(web, f"skiff-postgres-{db}", 5432) == "open"
    assert connects(web, f"{peer}.web", 5000) == "unresolved"
    assert connects(other, f"skiff-postgres-{db}", 5432) == "unresolved"
    peer_ip = nets[f"{peer}.web.1"][f"skiff-app-{peer}"]["IPAddress"]
    assert connects(web, peer_ip, 5000).startswith("closed")
    assert not [n for n in docker_client.networks.list(names=[legacy]) if n.name == legacy]

    again = h.invoke("state:migrate")
    assert again.exit_code == 0 and "moved" not in again.output
