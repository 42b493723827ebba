"""End to end: ``postgres:upgrade`` moves a service from Debian bookworm's PostgreSQL 15 to
trixie's 17 (the toolkit's KIND:upgrade: pg_dump in the old container, pg_restore into a new
one, switch) and keeps its rows, its password and its links.

The old image is built like a user would: ``postgres:build-image --base skiff/stack-base:bookworm
--tag skiff/postgres:bookworm`` (the bookworm rootfs is bootstrapped once and kept, like the
stack image).
"""

from __future__ import annotations

import sys

import pytest

from skiff.output import Output
from skiff_postgres.kind import KIND, database_name

pytestmark = pytest.mark.e2e

OLD_SUITE = "bookworm"
OLD_IMAGE = f"skiff/postgres:{OLD_SUITE}"


@pytest.fixture
def bookworm_image(docker_client, pg_image, cli) -> str:
    import docker

    try:
        docker_client.images.get(OLD_IMAGE)
    except docker.errors.ImageNotFound:
        from skiff_stack import build

        base = f"skiff/stack-base:{OLD_SUITE}"
        if not build.image_exists(docker_client, base):
            build.build_base(docker_client, OLD_SUITE, base, Output(sys.stderr))
        made = cli("postgres:build-image", "--base", base, "--tag", OLD_IMAGE)
        assert made.returncode == 0, made.stderr
    return OLD_IMAGE


def query(docker_client, name: str, sql: str) -> list[str]:
    code, out = docker_client.containers.get(KIND.container_name(name)).exec_run(
        ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", database_name(name), "-c", sql], user="postgres"
    )
    assert code == 0, out
    return out.decode().split()


def test_upgrade_from_15_to_17_keeps_the_rows_the_password_and_the_links(
    skiff, bookworm_image, pg_image, cleanup, docker_client, service_name, cli
):
    h = skiff(entry_points=True)
    name = service_name
    made = cli("postgres:create", name, "--image", bookworm_image)
    assert made.returncode == 0, made.stderr
    query(docker_client, name, "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
    query(docker_client, name, "INSERT INTO notes (body) VALUES ('meow'), ('purr'), ('hiss')")
    assert h.invoke("postgres:info", name, "--version").stdout.startswith("15.")
    h.create_app("site")
    assert h.invoke("postgres:link", name, "site").exit_code == 0
    url = h.state.get_config("site")["DATABASE_URL"]

    upgraded = cli("postgres:upgrade", name, "--image", pg_image)
    assert upgraded.returncode == 0, upgraded.stderr
    said = upgraded.stdout.decode()
    assert "upgraded: 15." in said and "-> 17." in said
    assert h.invoke("postgres:info", name, "--version").stdout.startswith("17.")
    assert h.invoke("postgres:info", name, "--image").stdout.strip() == pg_image
    assert query(docker_client, name, "SELECT body FROM notes ORDER BY id") == ["meow", "purr", "hiss"]
    query(docker_client, name, "INSERT INTO notes (body) VALUES ('new')")  # the sequence came along
    assert query(docker_client, name, "SELECT max(id) FROM notes") == ["4"]
    assert h.state.get_config("site")["DATABASE_URL"] == url  # same host, password, database
    assert h.invoke("postgres:links", name).stdout.split() == ["site", "DATABASE_URL"]
