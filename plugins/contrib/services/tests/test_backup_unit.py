"""Backups from the toolkit without an engine: the export and import are recorded; gpg, the files,
the path rules, retention, schedules and bad input are real."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
from skiff import access, hookimpl
from skiff.testing import KeyRole
from skiff_services import backup as backup_mod
from skiff_services.commandset import Commands, command_set
from skiff_services.hooks import ServiceHooks
from skiff_services.record import Service, Store

sys.path.insert(0, str(Path(__file__).parent))
from notes_service import KIND  # noqa: E402

MEMO = dataclasses.replace(KIND, name="memo", title="Memo", dump_magic=b"MEMO1", dump_suffix="memo")
MEMO_COMMANDS = command_set(MEMO, __name__)
DUMP = b"MEMO1 the rows\n" + os.urandom(64)


class MemoPlugin(ServiceHooks):
    def __init__(self) -> None:
        super().__init__(MEMO)

    @hookimpl
    def skiff_commands(self, cli: click.Group) -> None:
        for command in MEMO_COMMANDS:
            cli.add_command(command)


class Recorded:
    """The export gives ``dump``; the import records what it got (and refuses non-MEMO1 data)."""

    def __init__(self) -> None:
        self.dump = DUMP
        self.imported: list[bytes] = []


@pytest.fixture
def engine(monkeypatch):
    recorded = Recorded()

    def running(self, context, name):
        return self.store.load(context, name), object()

    def export_to(self, container, out):
        out.write(recorded.dump)

    def import_from(self, context, service, container, source):
        recorded.imported.append(source.read())

    class NoContainers:  # the SDK's shape: no container of the service is there
        class containers:  # noqa: N801
            @staticmethod
            def get(name):
                import docker

                raise docker.errors.NotFound(name)

    monkeypatch.setattr("skiff_services.commandset.client", lambda: NoContainers())
    monkeypatch.setattr(Commands, "running", running)
    monkeypatch.setattr(Commands, "export_to", export_to)
    monkeypatch.setattr(Commands, "import_from", import_from)
    return recorded


@pytest.fixture
def out(tmp_path) -> Path:
    """A destination directory of the test's own (SKIFF_ROOT is beside it)."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def h(skiff, engine):
    harness = skiff(("apps", apps_plugin), ("config", config_plugin), ("memo", MemoPlugin()), KeyRole("admin"))
    Store(MEMO).save(harness.context, Service(name="db", image="img", password="p" * 16))
    return harness


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def one_line(result, message):
    assert result.exit_code != 0, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr, result.stderr


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_backup_to_a_directory_and_restore_it(h, engine, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    out = ok(h.invoke("memo:backup", "db", str(dest)))
    [name] = files(dest)
    assert re.fullmatch(r"memo-db-\d{8}T\d{6}\.\d{3}Z\.memo", name), name
    assert (dest / name).read_bytes() == DUMP and f"Backed up memo db to {dest / name}" in out.stdout
    assert (dest / name).stat().st_mode & 0o777 == 0o600
    ok(h.invoke("memo:backup-restore", "db", str(dest / name)))
    assert engine.imported == [DUMP]


def test_relative_destinations_are_under_skiff_root_backups(h, skiff_root):
    ok(h.invoke("memo:backup", "db", "nightly"))
    assert [n.startswith("memo-db-") for n in files(skiff_root / "backups" / "nightly")] == [True]


def test_over_ssh_only_under_skiff_root_backups_resolved(h, skiff_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (skiff_root / "backups").mkdir()
    (skiff_root / "backups" / "sneaky").symlink_to(outside)
    for dest in (str(outside), "../escape", "sneaky", str(skiff_root / "backups" / "sneaky" / "deeper")):
        one_line(h.ssh(f"memo:backup db {dest}", key="admin"), "over SSH a backup destination must be under")
    assert files(outside) == [] and not (skiff_root / "escape").exists()
    ok(h.ssh("memo:backup db inside", key="admin"))
    assert len(files(skiff_root / "backups" / "inside")) == 1
    one_line(h.ssh(f"memo:backup-restore db {outside}/x.memo", key="admin"), "must be under")


def test_retention_keeps_the_newest_n_of_each_service(h, tmp_path):
    Store(MEMO).save(h.context, Service(name="db-b", image="img", password="p" * 16))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "unrelated.txt").write_text("kept")
    ok(h.invoke("memo:backup", "db-b", str(dest)))
    ok(h.invoke("backups:set", "--global", "retention", "2"))
    for _ in range(4):
        ok(h.invoke("memo:backup", "db", str(dest)))
    names = files(dest)
    mine = [n for n in names if n.startswith("memo-db-") and not n.startswith("memo-db-b-")]
    assert len(mine) == 2 and "unrelated.txt" in names
    assert len([n for n in names if n.startswith("memo-db-b-")]) == 1  # another service's are not counted
    one_line(h.invoke("backups:set", "--global", "retention", "many"), "retention must be a whole number")


def test_a_failed_write_leaves_no_partial_file_and_one_line(h, tmp_path, monkeypatch):
    dest = tmp_path / "out"
    dest.mkdir()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    one_line(h.invoke("memo:backup", "db", str(dest)), "No space left on device; nothing was written")
    assert files(dest) == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    one_line(h.invoke("memo:backup", "db", str(tmp_path / "missing" / "dir")), "no such directory")
    (tmp_path / "a-file").write_text("x")
    one_line(h.invoke("memo:backup", "db", str(tmp_path / "a-file")), "no such directory")


def test_a_bad_export_is_not_written(h, engine, out):
    engine.dump = b"garbage"
    one_line(h.invoke("memo:backup", "db", str(out)), "is not a Memo dump; nothing was written")
    assert files(out) == []


def test_encrypted_backups_restore_only_with_the_passphrase(h, engine, out, monkeypatch):
    argvs: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(argv, *args, **kwargs):
        argvs.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(backup_mod.subprocess, "run", recording_run)
    secret = "correct horse battery staple"
    ok(h.invoke("memo:backup-set-encryption", "db", input=secret + "\n"))
    done = ok(h.invoke("memo:backup", "db", str(out)))
    [name] = files(out)
    assert name.endswith(".memo.gpg") and "(encrypted)" in done.stdout
    data = (out / name).read_bytes()
    assert DUMP not in data and b"the rows" not in data and data[:1] in (b"\x8c", b"\xc3")
    assert all(secret not in " ".join(argv) for argv in argvs) and any("AES256" in argv for argv in argvs)

    # the service is destroyed and created again: its passphrase went with it
    ok(h.invoke("memo:backup-unset-encryption", "db"))
    one_line(h.invoke("memo:backup-restore", "db", str(out / name)), "is encrypted: give its passphrase")
    wrong = h.invoke("memo:backup-restore", "db", str(out / name), "--passphrase-stdin", input="wrong\n")
    one_line(wrong, "wrong passphrase or a damaged file; nothing was restored")
    truncated = out / "truncated.memo.gpg"
    truncated.write_bytes(data[: len(data) // 2])
    damaged = h.invoke("memo:backup-restore", "db", str(truncated), "--passphrase-stdin", input=secret + "\n")
    one_line(damaged, "nothing was restored")
    assert engine.imported == []
    ok(h.invoke("memo:backup-restore", "db", str(out / name), "--passphrase-stdin", input=secret + "\n"))
    assert engine.imported == [DUMP]
    assert not list((h.root / "tmp").glob("*/*")), "the decrypted dump is not left behind"


def test_a_corrupt_file_is_refused_before_the_import(h, engine, tmp_path):
    bad = tmp_path / "memo-db-20260101T000000.000Z.memo"
    bad.write_bytes(b"\x00\x01 not a dump")
    one_line(h.invoke("memo:backup-restore", "db", str(bad)), "is not a Memo dump; nothing was restored")
    one_line(h.invoke("memo:backup-restore", "db", str(tmp_path / "nope")), "no backup file")
    assert engine.imported == []


def test_schedules_use_the_core_parser_and_become_periodic_tasks(h, tmp_path):
    one_line(h.invoke("memo:backup-schedule", "db", "61 * * * *", str(tmp_path)), "minute: 61 is out of range")
    one_line(h.invoke("memo:backup-schedule", "db", "@reboot", str(tmp_path)), "invalid cron schedule")
    one_line(h.invoke("memo:backup-schedule-cat", "db"), "has no backup schedule")
    ok(h.invoke("memo:backup-schedule", "db", "30 3 * * *", str(tmp_path)))
    assert ok(h.invoke("memo:backup-schedule-cat", "db")).stdout == f"30 3 * * * skiff memo:backup db {tmp_path}\n"
    tasks = [t for answer in h.context.hook.skiff_periodic_tasks(context=h.context) for t in answer or []]
    assert [(t.name, t.schedule, t.argv) for t in tasks] == [
        ("memo:backup:db", "30 3 * * *", ("memo:backup", "db", str(tmp_path)))
    ]
    ok(h.invoke("memo:backup-set-encryption", "db", input="a secret phrase\n"))
    info = ok(h.invoke("memo:info", "db")).output
    assert f"30 3 * * * -> {tmp_path}" in info and "a secret phrase" not in info
    assert [line.split()[-1] for line in info.splitlines() if "encryption" in line] == ["on"]
    ok(h.invoke("memo:backup-unschedule", "db"))
    assert [t for answer in h.context.hook.skiff_periodic_tasks(context=h.context) for t in answer or []] == []
    one_line(h.ssh(f"memo:backup-schedule db @daily {tmp_path}", key="admin"), "must be under")


def test_credentials_are_stored_never_printed_and_the_endpoint_is_root_only(h):
    secret = "S3CR3T-abcdefgh"
    one_line(h.ssh(f"memo:backup-auth db AKIDEXAMPLE {secret} us-east-1 s3v4 http://127.0.0.1:9", key="admin"), "root")
    shown = ok(h.invoke("memo:backup-auth", "db", "AKIDEXAMPLE", secret, "eu-west-1", "s3v4", "http://127.0.0.1:9"))
    assert secret not in shown.output
    assert h.state.get_property("memo", "backup:db")["auth"] == {
        "access_key": "AKIDEXAMPLE",
        "secret": secret,
        "region": "eu-west-1",
        "signature": "s3v4",
        "endpoint": "http://127.0.0.1:9",
    }
    info = ok(h.invoke("memo:info", "db")).output
    assert secret not in info and "AKIDEXAMPLE" not in info
    assert "Backup s3 credentials:" in info and "stored (http://127.0.0.1:9)" in info
    one_line(h.invoke("memo:backup-auth", "db", "a b", "c"), "invalid S3 credentials")
    one_line(h.invoke("memo:backup-auth", "db", "ak", "sk", "eu", "v9"), "invalid signature version")
    one_line(h.invoke("memo:backup-auth", "db", "ak", "sk", "eu", "s3v4", "file:///etc"), "invalid endpoint URL")
    ok(h.invoke("memo:backup-deauth", "db"))
    assert h.state.get_property("memo", "backup:db") is None


def test_destroy_forgets_the_backup_configuration(h, monkeypatch, tmp_path):
    from skiff_services import engine as engine_mod

    monkeypatch.setattr(engine_mod.Engine, "remove", lambda *a, **k: None)
    monkeypatch.setattr(engine_mod.Engine, "remove_network", lambda *a, **k: None)
    monkeypatch.setattr(engine_mod.Engine, "remove_data", lambda *a, **k: None)
    ok(h.invoke("memo:backup-schedule", "db", "@daily", str(tmp_path)))
    ok(h.invoke("memo:backup-set-encryption", "db", input="pass\n"))
    ok(h.invoke("memo:destroy", "db", "--force"))
    assert h.state.get_property("memo", "backup:db") is None


@pytest.mark.parametrize("bad", ["../db", "db;rm", "Db", "db\nx", "a" * 60])
def test_hostile_service_names_touch_nothing(h, out, bad):
    for args in (("memo:backup", bad, str(out)), ("memo:backup-restore", bad, str(out / "x"))):
        one_line(h.invoke(*args), "invalid service name")
    one_line(h.invoke("memo:backup-schedule", bad, "@daily", str(out)), "invalid service name")
    assert files(out) == [] and h.state.properties("memo").keys() == {"service:db"}


def test_bad_input_is_one_line(h, tmp_path):
    for args, message in (
        (("memo:backup", "Bad/Name", str(tmp_path)), "invalid service name"),
        (("memo:backup", "nope", str(tmp_path)), "does not exist"),
        (("memo:backup", "db", "s3://UPPER/x"), "invalid bucket"),
        (("memo:backup", "db", "s3://bucket/a/../b"), "invalid prefix"),
        (("memo:backup", "db", "ftp://host/x"), "invalid destination"),
        (("memo:backup", "db", "s3://bucket/x"), "no S3 credentials"),
        (("memo:backup", "db", "a\nb"), "invalid destination"),
        (("memo:backup-restore", "db", "s3://bucket"), "give s3://BUCKET/KEY"),
        (("memo:backup-set-encryption", "db"), "invalid passphrase"),
        (("memo:backup-schedule", "nope", "@daily", str(tmp_path)), "does not exist"),
    ):
        one_line(h.invoke(*args), message)
    assert h.state.get_property("memo", "backup:db") is None


def test_every_backup_command_is_for_admins():
    names = [c.name for c in MEMO_COMMANDS if "backup" in str(c.name)]
    expected = "backup backup-restore backup-auth backup-deauth backup-schedule backup-schedule-cat"
    expected += " backup-unschedule backup-set-encryption backup-unset-encryption"
    assert names == [f"memo:{n}" for n in expected.split()]
    assert {access.effective(c).level for c in MEMO_COMMANDS if c.name in names} == {access.ADMIN}
