"""End to end, TLS by default (real dockerd, real postgres): a service serves TLS with its own
certificate, `postgres:set NAME tls false` turns it off, and a service made by the previous
version (its record and its container as that version wrote them, no TLS) gains TLS at
``state:migrate`` and keeps its rows.
"""

from __future__ import annotations

import os
import stat
import time

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_postgres.plugin as pg_plugin
from skiff_postgres.kind import DATA_MOUNT, KIND, STORE, database_name
from skiff_services.record import ROOT_LABEL

pytestmark = pytest.mark.e2e

SSL_USED = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.fixture
def h(skiff, pg_image, cleanup):
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("postgres", pg_plugin))


def require(url: str) -> str:
    return url + "?sslmode=require"


def in_container(docker_client, name: str, argv: list[str]) -> str:
    code, out = docker_client.containers.get(KIND.container_name(name)).exec_run(argv, user="postgres")
    assert code == 0, out
    return out.decode().strip()


def test_a_new_service_serves_tls_with_its_own_certificate_unless_turned_off(h, docker_client, service_name, psql):
    name = service_name
    r = h.invoke("postgres:create", name)
    assert r.exit_code == 0, r.output
    dsn = h.invoke("postgres:info", name, "--dsn").stdout.strip()
    assert "sslmode" not in dsn  # the URL a link sets is the same; clients may ask for TLS

    folder = STORE.data_dir(h.context, name) / "tls"
    assert stat.S_IMODE((folder / "server.key").stat().st_mode) == 0o600
    owner = in_container(docker_client, name, ["stat", "-c", "%U %a", "/var/lib/postgresql/tls/server.key"])
    assert owner == "postgres 600"  # the server's own, unreadable to others
    assert in_container(docker_client, name, ["psql", "-X", "-tA", "-c", "SHOW ssl"]) == "on"

    # a client that requires TLS gets it, and sees this service's certificate
    assert psql(require(dsn), SSL_USED) == (0, "t")
    assert psql(dsn, SSL_USED) == (0, "t")  # libpq's default (prefer) uses it too
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((folder / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [KIND.hostname(name)]

    # the opt-out: no TLS, so a client that requires it is refused; unset turns it back on
    r = h.invoke("postgres:set", name, "tls", "false")
    assert r.exit_code == 0, r.output
    code, out = psql(require(dsn), "SELECT 1")
    assert code != 0 and "server does not support SSL" in out
    assert psql(dsn, SSL_USED) == (0, "f")
    bad = h.invoke("postgres:set", name, "tls", "maybe")
    assert bad.exit_code == 1 and "invalid value 'maybe' for tls" in bad.stderr
    assert h.invoke("postgres:set", name, "tls").exit_code == 0
    assert psql(require(dsn), SSL_USED) == (0, "t")


def old_service(context, docker_client, name: str, image: str, password: str) -> None:
    """A service as the previous version made it: its record (no options) and its container
    (the image's own command, no certificate), as skiff_postgres.container.run wrote them."""
    database = database_name(name)
    context.state.set_property(
        "postgres",
        f"service:{name}",
        {
            "name": name,
            "image": image,
            "password": password,
            "user": "postgres",
            "database": database,
            "created": time.time(),
            "expose": None,
            "links": {},
        },
    )
    data = STORE.data_dir(context, name) / "data"
    data.mkdir(parents=True)
    os.chmod(data.parent, 0o700)
    network = KIND.network(name)
    docker_client.networks.create(network, labels={"skiff.service": "postgres", ROOT_LABEL: str(context.root)})
    container = docker_client.containers.create(
        image,
        name=KIND.container_name(name),
        environment={
            "POSTGRES_PASSWORD": password,
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": database,
            "PGDATA": DATA_MOUNT,
        },
        volumes={str(data): {"bind": DATA_MOUNT, "mode": "rw"}},
        labels={"skiff.service": "postgres", "skiff.postgres.name": name, ROOT_LABEL: str(context.root)},
        restart_policy={"Name": "always"},
        network=network,
        networking_config={network: docker_client.api.create_endpoint_config(aliases=[KIND.hostname(name)])},
        shm_size="128m",
    )
    container.start()
    deadline = time.monotonic() + 90
    while container.exec_run(["pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"], user="postgres")[0] != 0:
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.3)


def test_a_service_of_the_previous_version_gains_tls_at_upgrade_and_keeps_its_rows(
    h, docker_client, pg_image, service_name, cli, psql
):
    name, stopped = service_name, service_name + "-off"
    for each in (name, stopped):
        old_service(h.context, docker_client, each, pg_image, "pw-" + os.urandom(8).hex())
    dsn = h.invoke("postgres:info", name, "--dsn").stdout.strip()
    sql = "CREATE TABLE pets (name text); INSERT INTO pets VALUES ('cat')"
    in_container(docker_client, name, ["psql", "-X", "-d", database_name(name), "-c", sql])
    code, out = psql(require(dsn), "SELECT 1")
    assert code != 0 and "server does not support SSL" in out  # as it was before the upgrade
    assert h.invoke("postgres:stop", stopped).exit_code == 0

    migrated = cli("state:migrate")
    assert migrated.returncode == 0, migrated.stderr
    out = migrated.stdout.decode()
    assert f"postgres {name}: TLS on" in out and f"postgres {stopped}: TLS on" in out
    assert psql(require(dsn), "SELECT name FROM pets") == (0, "cat")
    assert psql(require(dsn), SSL_USED) == (0, "t")
    assert h.invoke("postgres:info", name, "--dsn").stdout.strip() == dsn  # same password, same URL
    assert h.invoke("postgres:info", stopped, "--status").stdout.strip() == "exited"  # left as it was

    again = cli("state:migrate")
    assert again.returncode == 0 and b"TLS on" not in again.stdout  # nothing left to do
    assert h.invoke("postgres:start", stopped).exit_code == 0
    assert in_container(docker_client, stopped, ["psql", "-X", "-tA", "-c", "SHOW ssl"]) == "on"
