"""Whole-server backups (state:backup / state:restore) through skiff_backup_parts, with fake parts.

The real parts (repositories, certificates, services, apps) are in tests/e2e_backup; here: the
archive's format, the order of restore steps, and every kind of bad input refused in one line
with nothing written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import IO

import pytest

from skiff import backup, hookimpl
from skiff.contracts import BackupPart
from skiff.errors import SkiffError
from skiff.testing import SkiffHarness, make_plugin_manager


class Holder:
    """A plugin with files under SKIFF_ROOT/things and a dump, restored in its order."""

    def __init__(self, name: str = "holder", order: int = 500, fail_dump: bool = False):
        self.name, self.order, self.fail_dump = name, order, fail_dump
        self.restored: list[tuple[str, bytes | None]] = []
        self.log: list[str] | None = None

    @hookimpl
    def skiff_backup_parts(self, context):
        def dump(out: IO[bytes]) -> None:
            if self.fail_dump:
                raise SkiffError("the service is not running")
            out.write(f"dump of {self.name}".encode())

        def restore(data: IO[bytes] | None) -> None:
            self.restored.append((self.name, data.read() if data else None))
            if self.log is not None:
                self.log.append(self.name)

        paths = ("things",) if self.name == "holder" else ()
        return [BackupPart(f"{self.name}:data", f"{self.name}'s data", paths, dump, restore, self.order)]


def harness(root: Path, *plugins) -> SkiffHarness:
    root.mkdir(parents=True, exist_ok=True)
    return SkiffHarness(make_plugin_manager(*plugins), root)


def fill(h: SkiffHarness) -> None:
    h.create_app("cat")
    h.state.set_config("cat", {"GREETING": "meow"})
    things = h.root / "things"
    (things / "sub").mkdir(parents=True)
    (things / "sub" / "file.txt").write_text("hello")
    (things / "secret").write_text("key")
    os.chmod(things / "secret", 0o600)
    os.symlink("sub/file.txt", things / "link")
    os.symlink("/etc/passwd", things / "outside")


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_backup_and_restore_bring_the_store_files_and_dumps_back_in_order(tmp_path, skiff_root) -> None:
    first, second = Holder("holder", order=300), Holder("second", order=100)
    h = harness(skiff_root, first, second)
    fill(h)
    dest = tmp_path / "server.tar.gz"
    result = h.invoke("state:backup", str(dest))
    assert result.exit_code == 0, result.stderr
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert "points outside SKIFF_ROOT" in result.stderr  # the link to /etc/passwd is left out, and said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.tar.gz", skiff_root.name]  # no temp file left
    with tarfile.open(dest) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        db = tar.extractfile("state/skiff.db").read()  # type: ignore[union-attr]
    assert names[0] == "state/skiff.db" and names[-1] == "manifest.json"
    assert "root/things/outside" not in names and "root/things/link" in names
    assert manifest["format"] == "skiff-backup" and manifest["schema"] == backup.SCHEMA
    assert [p["name"] for p in manifest["parts"]] == ["second:data", "holder:data", "core:builds"]
    assert manifest["members"]["state/skiff.db"]["sha256"] == hashlib.sha256(db).hexdigest()
    assert manifest["members"]["dumps/holder:data"]["size"] == len(b"dump of holder")

    log: list[str] = []
    third, fourth = Holder("holder", order=300), Holder("second", order=100)
    third.log = fourth.log = log
    fresh = harness(tmp_path / "fresh", third, fourth)
    result = fresh.invoke("state:restore", str(dest))
    assert result.exit_code == 0, result.stderr
    assert log == ["second", "holder"]  # by order
    assert third.restored == [("holder", b"dump of holder")] and fourth.restored == [("second", b"dump of second")]
    assert fresh.state.list_apps() == ["cat"]
    assert fresh.state.get_config("cat") == {"GREETING": "meow"}
    things = fresh.root / "things"
    assert (things / "sub" / "file.txt").read_text() == "hello"
    assert oct((things / "secret").stat().st_mode & 0o777) == "0o600"
    assert os.readlink(things / "link") == "sub/file.txt"
    assert not (things / "outside").exists()
    assert not [p for p in fresh.root.iterdir() if p.name.startswith(".restore-")]


def test_restore_onto_a_root_with_apps_needs_force(tmp_path, skiff_root) -> None:
    h = harness(skiff_root, Holder())
    fill(h)
    dest = tmp_path / "server.tar.gz"
    assert h.invoke("state:backup", str(dest)).exit_code == 0
    refused = h.invoke("state:restore", str(dest))
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "is not empty (1 app in its state store, things)" in refused.stderr
    h.state.set_config("cat", {"GREETING": "changed"})
    forced = h.invoke("state:restore", "--force", str(dest))
    assert forced.exit_code == 0, forced.stderr
    assert h.state.get_config("cat") == {"GREETING": "meow"}


def test_a_failed_dump_or_a_bad_destination_writes_nothing(tmp_path, skiff_root) -> None:
    h = harness(skiff_root, Holder(fail_dump=True))
    fill(h)
    out = tmp_path / "out"
    out.mkdir()
    failed = h.invoke("state:backup", str(out / "server.tar.gz"))
    assert failed.exit_code == 1 and failed.stderr.strip().splitlines()[-1] == "!     the service is not running"
    assert list(out.iterdir()) == []
    missing = h.invoke("state:backup", str(tmp_path / "nowhere" / "server.tar.gz"))
    assert missing.exit_code == 1 and "is not a directory" in missing.stderr
    unknown = h.invoke("state:backup", "--exclude", "nope:x", str(out / "server.tar.gz"))
    assert unknown.exit_code == 1 and "no backup part named nope:x" in unknown.stderr
    excluded = h.invoke("state:backup", "--exclude", "holder:data", str(out / "server.tar.gz"))
    assert excluded.exit_code == 0, excluded.stderr


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy the archive member by member; ``change(info, data)`` returns what to write instead (or None)."""
    with tarfile.open(source) as tar, tarfile.open(target, "w:gz") as out:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            replaced = change(info, data)
            for new_info, new_data in [(info, data)] if replaced is None else replaced:
                if new_data is not None:
                    new_info.size = len(new_data)
                out.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)


def _extra(name: str, data: bytes | None = b"x", link: str | None = None):
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        return info, None
    return info, data


def _before_manifest(*members):
    def change(info, data):
        if info.name == "manifest.json":
            return [*members, (info, data)]
        return None

    return change


def _listed(*members):
    """Members added and listed in the manifest with their right checksums (only the path check stops them)."""

    def change(info, data):
        if info.name != "manifest.json":
            return None
        manifest = json.loads(data)
        for extra, extra_data in members:
            if extra.issym():
                manifest["members"][extra.name] = {"type": "symlink", "target": extra.linkname}
            else:
                manifest["members"][extra.name] = {
                    "type": "file",
                    "size": len(extra_data),
                    "sha256": hashlib.sha256(extra_data).hexdigest(),
                }
        return [*members, (info, json.dumps(manifest).encode())]

    return change


def _tamper(info, data):
    if info.name == "root/things/sub/file.txt":
        return [(info, b"jello")]
    return None


BAD_ARCHIVES = {
    "checksum": (_tamper, "does not match (checksum, size or type)"),
    "absolute": (_listed(_extra("/etc/evil")), "unsafe name '/etc/evil'"),
    "dotdot": (_listed(_extra("root/things/../../evil")), "unsafe name"),
    "escaping-link": (_listed(_extra("root/things/up", link="../../../etc")), "leaves SKIFF_ROOT"),
    "absolute-link": (_listed(_extra("root/things/abs", link="/etc")), "leaves SKIFF_ROOT"),
    "through-link": (
        _listed(_extra("root/things/l2", link="sub"), _extra("root/things/l2/evil")),
        "inside a link",
    ),
    "unlisted": (_before_manifest(_extra("root/things/new")), "is not listed in the archive's manifest"),
    "outside-parts": (_listed(_extra("root/elsewhere/file")), "belongs to no part"),
    "not-a-skiff-member": (_listed(_extra("etc/passwd")), "not part of a skiff backup"),
}


@pytest.fixture
def good_archive(tmp_path, skiff_root) -> Path:
    h = harness(skiff_root, Holder())
    fill(h)
    dest = tmp_path / "server.tar.gz"
    assert h.invoke("state:backup", str(dest)).exit_code == 0
    return dest


def _refused(tmp_path: Path, archive: Path, expected: str) -> None:
    target = tmp_path / "target"
    fresh = harness(target, Holder())
    before = listing(target)
    result = fresh.invoke("state:restore", str(archive))
    assert result.exit_code == 1, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("!")]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert listing(target) == before == []
    assert fresh.pm.get_plugin("Holder-0").restored == []


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_in_one_line_before_anything_is_written(tmp_path, good_archive, case) -> None:
    change, expected = BAD_ARCHIVES[case]
    bad = tmp_path / f"{case}.tar.gz"
    _rewrite(good_archive, bad, change)
    _refused(tmp_path, bad, expected)


def test_a_truncated_or_corrupt_archive_is_refused(tmp_path, good_archive) -> None:
    data = good_archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, cut, "not a complete skiff backup (truncated or corrupt")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(flipped))
    _refused(tmp_path, corrupt, "")
    trailer = tmp_path / "trailer.tar.gz"
    trailer.write_bytes(data[:-4])  # the gzip length field: the tar itself is whole
    _refused(tmp_path, trailer, "truncated or corrupt")
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(gzip.compress(b"not a tar at all" * 100))
    _refused(tmp_path, plain, "")
    no_manifest = tmp_path / "no-manifest.tar.gz"
    _rewrite(good_archive, no_manifest, lambda info, data: [] if info.name == "manifest.json" else None)
    _refused(tmp_path, no_manifest, "has no manifest")


def test_a_newer_state_schema_is_refused(tmp_path, good_archive) -> None:
    def newer(info, data):
        if info.name != "manifest.json":
            return None
        manifest = json.loads(data)
        manifest["state_schema"] = 999
        return [(info, json.dumps(manifest).encode())]

    bad = tmp_path / "newer.tar.gz"
    _rewrite(good_archive, bad, newer)
    _refused(tmp_path, bad, "newer than this skiff's")


def test_backup_and_restore_are_for_a_root_shell_only(skiff_root) -> None:
    h = harness(skiff_root, Holder())
    for command in ("state:backup /tmp/x.tar.gz", "state:restore /tmp/x.tar.gz"):
        refused = h.ssh(command)
        assert refused.exit_code == 1 and "not available over SSH" in refused.stderr


def test_parts_with_one_name_or_one_path_twice_fail_the_backup(tmp_path, skiff_root) -> None:
    h = harness(skiff_root, Holder(), ("again", Holder()))
    result = h.invoke("state:backup", str(tmp_path / "x.tar.gz"))
    assert result.exit_code == 1 and "two plugins declared the backup part holder:data" in result.stderr
    for bad in ("/etc", "../x", "a/../b", "skiff.db", "locks", ""):
        with pytest.raises(SkiffError):
            backup.check_part_path(bad)


class Upgrader:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def skiff_upgrade(self, context):
        self.calls += 1
        return ["brought forward"]


def test_an_archive_of_another_version_is_brought_forward_before_anything_starts(tmp_path, good_archive) -> None:
    def older(info, data):
        if info.name != "manifest.json":
            return None
        manifest = json.loads(data)
        manifest["skiff"] = "0.0.1"
        return [(info, json.dumps(manifest).encode())]

    same, upgrader = Upgrader(), Upgrader()
    result = harness(tmp_path / "same", Holder(), same).invoke("state:restore", str(good_archive))
    assert result.exit_code == 0 and same.calls == 0
    old = tmp_path / "old.tar.gz"
    _rewrite(good_archive, old, older)
    result = harness(tmp_path / "target", Holder(), upgrader).invoke("state:restore", str(old))
    assert result.exit_code == 0, result.stderr
    assert upgrader.calls == 1 and "brought forward" in result.stdout
