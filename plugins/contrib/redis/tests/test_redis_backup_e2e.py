"""End to end, backups from the service toolkit on a real redis (skiff/redis:trixie): to a
directory, encrypted with Debian's gpg, to moto's S3 server on a loopback port with retention,
and on a schedule started by the cron runner's tick. A backup restores after destroy + create;
a truncated or wrongly decrypted file, a full or read-only destination: one line, nothing changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_redis.plugin as redis_plugin
from skiff.testing.s3 import s3_client
from skiff_redis.kind import KIND

pytestmark = pytest.mark.e2e


@pytest.fixture
def h(skiff, stack_image, redis_image, redis_cleanup):
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("redis", redis_plugin))


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def one_line(result, message):
    assert result.exit_code != 0, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr, result.stderr


def cli(docker_client, name: str, *args: str, stdin_from: str = "") -> str:
    """redis-cli in the service's container (the password from its environment)."""
    container = docker_client.containers.get(KIND.container_name(name))
    line = 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning "$@"'
    if stdin_from:
        line = f'{stdin_from} | REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning -x "$@"'
    code, out = container.exec_run(["sh", "-c", line, "sh", *args])
    assert code == 0, out
    return out.decode().strip()


def backups_in(directory: Path, name: str) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(f"redis-{name}-"))


def test_backup_destroy_create_restore_and_bad_files(h, docker_client, tmp_path):
    name = "b" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    out.mkdir()
    ok(h.invoke("redis:create", name))
    cli(docker_client, name, "set", "greeting", "hello")
    cli(docker_client, name, "rpush", "rows", "1", "2", "3")
    done = ok(h.invoke("redis:backup", name, str(out)))
    [plain] = backups_in(out, name)
    assert plain.name.endswith(".rdb") and plain.read_bytes().startswith(b"REDIS")
    assert f"Backed up redis {name} to {plain}" in done.stdout
    assert [p.name for p in out.iterdir()] == [plain.name]  # no temporary file left

    ok(h.invoke("redis:destroy", name, "--force"))
    ok(h.invoke("redis:create", name))
    assert cli(docker_client, name, "get", "greeting") == ""
    ok(h.invoke("redis:backup-restore", name, str(plain)))
    assert cli(docker_client, name, "get", "greeting") == "hello"
    assert cli(docker_client, name, "lrange", "rows", "0", "-1").split() == ["1", "2", "3"]

    # a truncated dump, a file that is not a dump: one line; the running service keeps its data
    cli(docker_client, name, "set", "after", "kept")
    truncated = out / f"redis-{name}-truncated.rdb"
    truncated.write_bytes(plain.read_bytes()[:-12])
    one_line(h.invoke("redis:backup-restore", name, str(truncated)), "nothing was imported")
    junk = out / "junk.rdb"
    junk.write_bytes(b"PGDMP not redis")
    one_line(h.invoke("redis:backup-restore", name, str(junk)), "is not a Redis dump; nothing was restored")
    assert cli(docker_client, name, "get", "after") == "kept"
    assert cli(docker_client, name, "get", "greeting") == "hello"

    # encrypted: the file holds no plain data and restores only with the passphrase
    secret = "a long passphrase " + uuid.uuid4().hex
    ok(h.invoke("redis:backup-set-encryption", name, input=secret + "\n"))
    ok(h.invoke("redis:backup", name, str(out)))
    [encrypted] = [p for p in backups_in(out, name) if p.name.endswith(".rdb.gpg")]
    assert b"REDIS" not in encrypted.read_bytes()[:64] and b"hello" not in encrypted.read_bytes()
    ok(h.invoke("redis:destroy", name, "--force"))
    ok(h.invoke("redis:create", name))
    one_line(h.invoke("redis:backup-restore", name, str(encrypted)), "is encrypted: give its passphrase")
    wrong = h.invoke("redis:backup-restore", name, str(encrypted), "--passphrase-stdin", input="not it\n")
    one_line(wrong, "wrong passphrase or a damaged file; nothing was restored")
    assert cli(docker_client, name, "get", "greeting") == ""
    ok(h.invoke("redis:backup-restore", name, str(encrypted), "--passphrase-stdin", input=secret + "\n"))
    assert cli(docker_client, name, "get", "after") == "kept"
    ok(h.invoke("redis:destroy", name, "--force"))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_and_read_only_destinations_leave_nothing(h, docker_client, tmp_path):
    name = "f" + uuid.uuid4().hex[:8]
    full, readonly = tmp_path / "full", tmp_path / "readonly"
    full.mkdir()
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "skiff-test-full", str(full)], check=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "skiff-test-ro", str(readonly)], check=True)
        try:
            ok(h.invoke("redis:create", name))
            cli(docker_client, name, "set", "big", stdin_from="head -c 400000 /dev/urandom | base64")
            one_line(h.invoke("redis:backup", name, str(full)), "No space left on device; nothing was written")
            assert list(full.iterdir()) == []
            one_line(h.invoke("redis:backup", name, str(readonly)), "Read-only file system; nothing was written")
            assert len(cli(docker_client, name, "get", "big")) > 400000
        finally:
            subprocess.run(["umount", str(readonly)], check=False)
    finally:
        subprocess.run(["umount", str(full)], check=False)
    ok(h.invoke("redis:destroy", name, "--force"))


def test_s3_backup_to_moto_with_retention_and_restore(h, docker_client, moto_s3):
    s3 = s3_client(moto_s3)  # moto's S3 server on loopback: the moto_s3 fixture of skiff.testing.s3
    s3.create_bucket(Bucket="skiff-backups")
    name = "s" + uuid.uuid4().hex[:8]
    ok(h.invoke("redis:create", name))
    one_line(h.invoke("redis:backup", name, "s3://skiff-backups/nightly"), "no S3 credentials")
    shown = ok(h.invoke("redis:backup-auth", name, "AKIDTEST", "s3cr3t", "us-east-1", "s3v4", moto_s3))
    assert "s3cr3t" not in shown.output
    ok(h.invoke("backups:set", "--global", "retention", "2"))
    for count in range(1, 4):
        cli(docker_client, name, "set", "count", str(count))
        done = ok(h.invoke("redis:backup", name, "s3://skiff-backups/nightly"))
        assert "s3cr3t" not in done.output
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="skiff-backups")["Contents"])
    assert len(keys) == 2 and all(k.startswith(f"nightly/redis-{name}-") and k.endswith(".rdb") for k in keys)
    assert "Removed 1 older backup (retention)" in done.stdout
    one_line(h.invoke("redis:backup", name, "s3://no-such-bucket/x"), "NoSuchBucket")

    ok(h.invoke("redis:destroy", name, "--force"))
    ok(h.invoke("redis:create", name))
    ok(h.invoke("redis:backup-auth", name, "AKIDTEST", "s3cr3t", "us-east-1", "s3v4", moto_s3))
    one_line(h.invoke("redis:backup-restore", name, "s3://skiff-backups/nightly/nope.rdb"), "cannot fetch")
    ok(h.invoke("redis:backup-restore", name, f"s3://skiff-backups/{keys[-1]}"))
    assert cli(docker_client, name, "get", "count") == "3"
    ok(h.invoke("redis:destroy", name, "--force"))


def test_a_scheduled_backup_is_started_by_the_cron_runner_at_its_minute(h, docker_client, tmp_path, skiff_root):
    from skiff_cron.runner import Runner

    name = "c" + uuid.uuid4().hex[:8]
    out = tmp_path / "scheduled"
    out.mkdir()
    ok(h.invoke("redis:create", name))
    cli(docker_client, name, "set", "nightly", "yes")
    ok(h.invoke("redis:backup-schedule", name, "30 3 * * *", str(out)))
    log = tmp_path / "runner.log"
    with open(log, "w") as sink:
        runner = Runner(h.context, sink, [sys.executable, "-m", "skiff"])  # a real skiff per task, as installed
        assert runner.tick(datetime(2026, 12, 4, 3, 29)) == []
        assert runner.tick(datetime(2026, 12, 4, 3, 30)) == [f"redis:backup:{name}"]
        assert runner.children[f"redis:backup:{name}"].wait(timeout=120) == 0, log.read_text()
    [made] = backups_in(out, name)
    assert f"starting redis:backup:{name}: skiff redis:backup {name} {out}" in log.read_text()
    ok(h.invoke("redis:destroy", name, "--force"))
    ok(h.invoke("redis:create", name))
    ok(h.invoke("redis:backup-restore", name, str(made)))
    assert cli(docker_client, name, "get", "nightly") == "yes"
    ok(h.invoke("redis:destroy", name, "--force"))


def test_over_ssh_backups_stay_under_skiff_root_backups(sshd, redis_image, redis_cleanup, docker_client, skiff_root):
    """A real sshd and admin key: the passphrase travels on ssh's stdin, the files stay in SKIFF_ROOT/backups."""
    name = "o" + uuid.uuid4().hex[:8]

    def ssh(*argv: str, stdin: str | None = None):
        return sshd.ssh(list(argv), input=stdin)

    assert ssh("redis:create", name).exit_code == 0
    cli(docker_client, name, "set", "via", "ssh")
    secret = "over ssh " + uuid.uuid4().hex
    assert ssh("redis:backup-set-encryption", name, stdin=secret + "\n").exit_code == 0
    refused = ssh("redis:backup", name, "/tmp")
    assert refused.exit_code != 0 and "must be under" in refused.stderr, refused.output
    done = ssh("redis:backup", name, "nightly")
    assert done.exit_code == 0 and secret not in done.output, done.output
    [made] = backups_in(skiff_root / "backups" / "nightly", name)
    assert made.name.endswith(".rdb.gpg")
    assert ssh("redis:destroy", name, "--force").exit_code == 0
    assert ssh("redis:create", name).exit_code == 0
    restore = ("redis:backup-restore", name, f"nightly/{made.name}", "--passphrase-stdin")
    assert ssh(*restore, stdin=secret + "\n").exit_code == 0
    assert cli(docker_client, name, "get", "via") == "ssh"
    assert ssh("redis:destroy", name, "--force").exit_code == 0
