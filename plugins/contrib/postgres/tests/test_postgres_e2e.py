"""End-to-end tests of postgres services: real dockerd, real postgres containers.

Every container is labelled with the test's SKIFF_ROOT and removed afterwards;
the local image skiff/postgres:trixie is built once if missing and kept.
"""

import os
import stat
import subprocess
import threading

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_postgres.plugin as pg_plugin
from skiff_postgres.kind import KIND, STORE, database_name

pytestmark = pytest.mark.e2e


@pytest.fixture
def h(skiff, pg_image, cleanup):
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("postgres", pg_plugin))


def _sql(docker_client, name, sql):
    """Run SQL through psql inside the service container (local socket)."""
    container = docker_client.containers.get(KIND.container_name(name))
    code, out = container.exec_run(
        ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database_name(name), "-c", sql],
        user="postgres",
    )
    assert code == 0, out
    return out.decode().strip()


def _ps_sampler(stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
        stop.wait(0.05)


def test_create_info_list_and_secrets(h, docker_client, service_name, cli, psql, skiff_root):
    name, password = service_name, "Pw-" + os.urandom(12).hex()
    stop, seen = threading.Event(), []
    sampler = threading.Thread(target=_ps_sampler, args=(stop, seen))
    sampler.start()
    try:
        r = cli("postgres:create", name, "--password-stdin", input=(password + "\n").encode())
    finally:
        stop.set()
        sampler.join()
    assert r.returncode == 0, r.stderr
    assert len(seen) > 3 and not any(password in sample for sample in seen)
    assert password not in (r.stdout + r.stderr).decode()

    container = docker_client.containers.get(KIND.container_name(name))
    attrs = container.attrs
    assert container.status == "running"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert container.labels[KIND.label] == "postgres"
    # on its own network only: no app reaches it until a link puts it on the app's network
    assert set(attrs["NetworkSettings"]["Networks"]) == {KIND.network(name)}
    assert KIND.hostname(name) in attrs["NetworkSettings"]["Networks"][KIND.network(name)]["Aliases"]
    assert not attrs["HostConfig"]["PortBindings"]
    data = skiff_root / "services" / "postgres" / name
    assert stat.S_IMODE(data.stat().st_mode) == 0o700

    listing = h.invoke("postgres:list")
    assert listing.exit_code == 0 and name in listing.stdout and "running" in listing.stdout
    info = h.invoke("postgres:info", name)
    assert info.exit_code == 0
    assert "running" in info.stdout and "********" in info.stdout and str(data / "data") in info.stdout
    assert h.invoke("postgres:info", name, "--version").stdout.split(".")[0].isdigit()
    dsn = h.invoke("postgres:info", name, "--dsn").stdout.strip()
    assert dsn == f"postgres://postgres:{password}@{KIND.hostname(name)}:5432/{database_name(name)}"
    logs = h.invoke("postgres:logs", name, "-n", "0")
    assert "ready to accept connections" in logs.stdout
    for text in (
        listing.output,
        info.output,
        logs.output,
        h.invoke("postgres:list", "--format", "json").output,
        container.logs().decode(),
    ):
        assert password not in text

    # the DSN works from another container on the service's network; a wrong password does not
    assert psql(dsn, "SELECT current_user") == (0, "postgres")
    code, out = psql(dsn.replace(password, "wrong-password"), "SELECT 1")
    assert code != 0 and "password authentication failed" in out

    again = h.invoke("postgres:create", name)
    assert again.exit_code == 1 and "already exists" in again.stderr
    bad = h.invoke("postgres:create", "Bad/Name")
    assert bad.exit_code == 1 and bad.stderr.startswith("!     invalid service name")


def test_restart_stop_start_recreate_and_expose(h, docker_client, service_name, psql):
    name = service_name
    assert h.invoke("postgres:create", name).exit_code == 0
    dsn = h.invoke("postgres:info", name, "--dsn").stdout.strip()
    _sql(docker_client, name, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')")

    assert h.invoke("postgres:restart", name).exit_code == 0
    assert _sql(docker_client, name, "SELECT body FROM notes") == "kept"
    assert h.invoke("postgres:stop", name).exit_code == 0
    assert h.invoke("postgres:info", name, "--status").stdout.strip() == "exited"
    assert h.invoke("postgres:start", name).exit_code == 0
    assert _sql(docker_client, name, "SELECT body FROM notes") == "kept"
    docker_client.containers.get(KIND.container_name(name)).remove(force=True)
    r = h.invoke("postgres:start", name)
    assert r.exit_code == 0 and "Recreating" in r.stdout
    assert psql(dsn, "SELECT body FROM notes") == (0, "kept")

    r = h.invoke("postgres:expose", name)
    assert r.exit_code == 0, r.output
    bindings = docker_client.containers.get(KIND.container_name(name)).attrs["HostConfig"]["PortBindings"]
    assert [b["HostIp"] for b in bindings["5432/tcp"]] == ["127.0.0.1"]
    port = STORE.load(h.context, name).expose["port"]
    assert h.invoke("postgres:info", name, "--exposed-ports").stdout.strip() == f"127.0.0.1:{port}->5432"
    local = dsn.replace(f"@{KIND.hostname(name)}:5432", f"@127.0.0.1:{port}")
    assert psql(local, "SELECT body FROM notes", network_mode="host") == (0, "kept")

    bad = h.invoke("postgres:expose", name, "example.com:5432")
    assert bad.exit_code == 1 and "invalid address" in bad.stderr
    assert h.invoke("postgres:unexpose", name).exit_code == 0
    assert not docker_client.containers.get(KIND.container_name(name)).attrs["HostConfig"]["PortBindings"]
    assert psql(dsn, "SELECT body FROM notes") == (0, "kept")


def test_export_destroy_create_import_round_trip(h, docker_client, service_name, cli, skiff_root, tmp_path):
    name = service_name
    assert cli("postgres:create", name).returncode == 0
    _sql(
        docker_client,
        name,
        "CREATE TABLE pets (id serial primary key, name text);"
        "INSERT INTO pets (name) VALUES ('cat'), ('dog'), (E'\\u00e9mile')",
    )
    dump = tmp_path / "pets.dump"
    with open(dump, "wb") as f:
        r = cli("postgres:export", name, stdout=f)
    assert r.returncode == 0, r.stderr
    assert dump.read_bytes().startswith(b"PGDMP")

    wrong = h.invoke("postgres:destroy", name, input="other\n")
    assert wrong.exit_code == 1 and "nothing was destroyed" in wrong.stderr
    assert h.invoke("postgres:destroy", name, input=name + "\n").exit_code == 0
    assert not (skiff_root / "services" / "postgres" / name).exists()
    assert not docker_client.containers.list(all=True, filters={"name": KIND.container_name(name)})
    assert h.invoke("postgres:info", name).exit_code == 1

    assert cli("postgres:create", name).returncode == 0
    with open(dump, "rb") as f:
        r = cli("postgres:import", name, stdin=f)
    assert r.returncode == 0, r.stderr
    assert _sql(docker_client, name, "SELECT string_agg(name, ',' ORDER BY id) FROM pets") == "cat,dog,émile"
    r = cli("postgres:connect", name, input=b"SELECT 'n=' || count(*) FROM pets;\n")
    assert r.returncode == 0 and b"n=3" in r.stdout

    # a broken dump is refused and changes nothing
    r = cli("postgres:import", name, input=b"not a dump")
    assert r.returncode == 1 and b"nothing was imported" in r.stderr
    assert _sql(docker_client, name, "SELECT count(*) FROM pets") == "3"
