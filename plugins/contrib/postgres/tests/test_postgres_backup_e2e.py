"""End to end: postgres backups from the service toolkit on a real postgres container.

backup -> destroy -> create -> postgres:backup-restore brings the rows back; an encrypted backup
restores only with its passphrase; a truncated dump is refused by pg_restore's one transaction
and the running database keeps its rows. An encrypted backup to S3 (moto's server on a loopback
port) holds no plain data and restores only with its passphrase.
"""

from __future__ import annotations

import uuid

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_postgres.plugin as pg_plugin
from skiff.testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_client
from skiff_postgres.kind import KIND, database_name

pytestmark = pytest.mark.e2e


@pytest.fixture
def h(skiff, pg_image, cleanup):
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("postgres", pg_plugin))


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def refused(result, message):
    assert result.exit_code != 0 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def query(docker_client, name: str, sql: str) -> list[str]:
    """The rows psql prints for ``sql`` in the service's own container (its local socket)."""
    argv = ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", database_name(name), "-c", sql]
    code, out = docker_client.containers.get(KIND.container_name(name)).exec_run(argv, user="postgres")
    assert code == 0, out
    return out.decode().split()


def test_backup_destroy_create_restore_encrypted_and_truncated(h, docker_client, tmp_path):
    name = "p" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    out.mkdir()
    ok(h.invoke("postgres:create", name))
    query(docker_client, name, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    query(docker_client, name, "INSERT INTO notes VALUES (1, 'first'), (2, 'second')")
    ok(h.invoke("postgres:backup", name, str(out)))
    [plain] = sorted(out.iterdir())
    assert plain.name.startswith(f"postgres-{name}-") and plain.read_bytes().startswith(b"PGDMP")

    ok(h.invoke("postgres:destroy", name, "--force"))
    ok(h.invoke("postgres:create", name))
    assert query(docker_client, name, "SELECT count(*) FROM pg_tables WHERE tablename = 'notes'") == ["0"]
    ok(h.invoke("postgres:backup-restore", name, str(plain)))
    assert query(docker_client, name, "SELECT body FROM notes ORDER BY id") == ["first", "second"]

    # a truncated dump: pg_restore's one transaction rolls back, the rows stay as they are
    query(docker_client, name, "INSERT INTO notes VALUES (3, 'third')")
    truncated = out / "truncated.dump"
    truncated.write_bytes(plain.read_bytes()[: len(plain.read_bytes()) * 2 // 3])
    refused(h.invoke("postgres:backup-restore", name, str(truncated)), "nothing was imported")
    assert query(docker_client, name, "SELECT body FROM notes ORDER BY id") == ["first", "second", "third"]

    secret = "pg passphrase " + uuid.uuid4().hex
    ok(h.invoke("postgres:backup-set-encryption", name, input=secret + "\n"))
    ok(h.invoke("postgres:backup", name, str(out)))
    [encrypted] = [p for p in out.iterdir() if p.name.endswith(".dump.gpg")]
    assert not encrypted.read_bytes().startswith(b"PGDMP") and b"second" not in encrypted.read_bytes()
    ok(h.invoke("postgres:destroy", name, "--force"))
    ok(h.invoke("postgres:create", name))
    refused(h.invoke("postgres:backup-restore", name, str(encrypted)), "is encrypted")
    wrong = h.invoke("postgres:backup-restore", name, str(encrypted), "--passphrase-stdin", input="nope\n")
    refused(wrong, "wrong passphrase or a damaged file; nothing was restored")
    assert query(docker_client, name, "SELECT count(*) FROM pg_tables WHERE tablename = 'notes'") == ["0"]
    ok(h.invoke("postgres:backup-restore", name, str(encrypted), "--passphrase-stdin", input=secret + "\n"))
    assert query(docker_client, name, "SELECT body FROM notes ORDER BY id") == ["first", "second", "third"]
    ok(h.invoke("postgres:destroy", name, "--force"))


def test_an_encrypted_s3_backup_restores_only_with_its_passphrase(h, docker_client, moto_s3):
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket="pg-backups")
    name = "s" + uuid.uuid4().hex[:8]
    auth = ("postgres:backup-auth", name, ACCESS_KEY, SECRET_KEY, REGION, "s3v4", moto_s3)
    ok(h.invoke("postgres:create", name))
    query(docker_client, name, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    query(docker_client, name, "INSERT INTO notes VALUES (1, 'secret-row-one'), (2, 'secret-row-two')")
    ok(h.invoke(*auth))
    secret = "s3 passphrase " + uuid.uuid4().hex
    ok(h.invoke("postgres:backup-set-encryption", name, input=secret + "\n"))
    done = ok(h.invoke("postgres:backup", name, "s3://pg-backups/nightly"))
    assert secret not in done.output and SECRET_KEY not in done.output
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="pg-backups")["Contents"]]
    assert key.startswith(f"nightly/postgres-{name}-") and key.endswith(".dump.gpg"), key
    stored = s3.get_object(Bucket="pg-backups", Key=key)["Body"].read()
    assert not stored.startswith(b"PGDMP") and b"secret-row" not in stored

    # a new service of that name (destroy forgets the credentials and the passphrase)
    ok(h.invoke("postgres:destroy", name, "--force"))
    ok(h.invoke("postgres:create", name))
    ok(h.invoke(*auth))
    source = f"s3://pg-backups/{key}"
    refused(h.invoke("postgres:backup-restore", name, source), "is encrypted")
    wrong = h.invoke("postgres:backup-restore", name, source, "--passphrase-stdin", input="not it\n")
    refused(wrong, "wrong passphrase or a damaged file; nothing was restored")
    assert query(docker_client, name, "SELECT count(*) FROM pg_tables WHERE tablename = 'notes'") == ["0"]
    ok(h.invoke("postgres:backup-restore", name, source, "--passphrase-stdin", input=secret + "\n"))
    assert query(docker_client, name, "SELECT body FROM notes ORDER BY id") == ["secret-row-one", "secret-row-two"]
    ok(h.invoke("postgres:destroy", name, "--force"))
