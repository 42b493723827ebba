"""``git:from-archive`` extraction stays inside its tree, for every kind of member.

Unit level (no docker): crafted tar, tar.gz and zip archives go through
``skiff_git.archive.extract`` and, for a few, through a real ``skiff
git:from-archive APP -`` process. Every refused archive must leave nothing
behind (no destination, no staging directory) and a sentinel directory
outside the tree untouched.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from skiff.errors import ValidationError
from skiff.testing.sshd import STUB_ENV, skiff_executable
from skiff_git.archive import Limits, extract

DEFAULT_LIMITS = Limits()

SENTINEL_TEXT = "untouched\n"


# -- crafting archives ---------------------------------------------------------------

Member = tuple  # (name, kind, data[, mode]) with kind file|dir|symlink|hardlink|chr|blk|fifo


def tar_bytes(members: Iterable[Member], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, kind, data, *rest in members:
            info = tarfile.TarInfo(name)
            if rest:
                info.mode = rest[0]
            if kind == "file":
                info.size = len(data.encode())
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "blk": tarfile.BLKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = data
            tar.addfile(info)
    return buffer.getvalue()


def zip_bytes(members: Iterable[Member]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, kind, data, *rest in members:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" and not name.endswith("/") else ""))
            file_type = {
                "file": stat.S_IFREG,
                "dir": stat.S_IFDIR,
                "symlink": stat.S_IFLNK,
                "chr": stat.S_IFCHR,
                "fifo": stat.S_IFIFO,
            }[kind]
            info.external_attr = (file_type | (rest[0] if rest else 0o644)) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


@pytest.fixture
def box(tmp_path):
    """A work directory for the extraction and a sentinel directory next to it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text(SENTINEL_TEXT)
    work = tmp_path / "work"
    work.mkdir()
    return work, outside


def snapshot(path: Path) -> dict[str, str | None]:
    """Every entry under ``path`` (links as their target, files as their text)."""
    seen: dict[str, str | None] = {}
    for entry in sorted(path.rglob("*")):
        rel = str(entry.relative_to(path))
        if entry.is_symlink():
            seen[rel] = "-> " + os.readlink(entry)
        elif entry.is_file():
            seen[rel] = entry.read_text(errors="replace")
        else:
            seen[rel] = None
    return seen


def refuse(box, data: bytes, message: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Extract ``data``; it must be refused with ``message``, with nothing written anywhere."""
    work, outside = box
    before = snapshot(outside)
    saved = work / "archive"
    saved.write_bytes(data)
    with pytest.raises(ValidationError) as caught:
        extract(saved, work / "tree", limits)
    assert message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in work.iterdir()) == ["archive"]  # no tree, no staging directory left
    assert snapshot(outside) == before
    assert (outside / "sentinel").read_text() == SENTINEL_TEXT
    return str(caught.value)


def accept(box, data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, str | None]:
    work, outside = box
    saved = work / "archive"
    saved.write_bytes(data)
    tree = extract(saved, work / "tree", limits)
    assert (outside / "sentinel").read_text() == SENTINEL_TEXT
    assert sorted(p.name for p in work.iterdir()) == ["archive", "tree"]
    return snapshot(tree)


# -- tar ------------------------------------------------------------------------------------


def test_a_good_archive_keeps_its_links_inside(box):
    files = accept(
        box,
        tar_bytes(
            [
                ("proj-1/", "dir", ""),
                ("proj-1/app.py", "file", "print(1)\n", 0o755),
                ("proj-1/lib/", "dir", ""),
                ("proj-1/lib/util.py", "file", "X = 1\n"),
                ("proj-1/alias.py", "symlink", "lib/../app.py"),
                ("proj-1/here", "symlink", "."),
                ("proj-1/up", "symlink", "lib/.."),
                ("proj-1/copy.py", "hardlink", "proj-1/lib/util.py"),
                ("proj-1/.git/config", "file", "[core]\n"),
            ]
        ),
    )
    assert files == {
        "alias.py": "-> lib/../app.py",
        "app.py": "print(1)\n",
        "copy.py": "X = 1\n",
        "here": "-> .",
        "lib": None,
        "lib/util.py": "X = 1\n",
        "up": "-> lib/..",
    }


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_dotdot_and_absolute_names_are_refused_in_every_compression(box, mode):
    _, outside = box
    refuse(box, tar_bytes([("ok", "file", "x"), ("../outside/sentinel", "file", "owned")], mode), "outside its tree")
    refuse(box, tar_bytes([(str(outside / "sentinel"), "file", "owned")], mode), "unsafe member name")
    refuse(box, tar_bytes([("a/../../outside/new", "file", "x")], mode), "'a/../../outside/new'")


def test_symlinks_pointing_outside_are_refused(box):
    _, outside = box
    refuse(box, tar_bytes([("out", "symlink", "../../outside")]), "leaves its tree: out -> ../../outside")
    refuse(box, tar_bytes([("abs", "symlink", str(outside))]), "leaves its tree")
    refuse(box, tar_bytes([("abs", "symlink", "/etc/passwd")]), "leaves its tree")
    refuse(box, tar_bytes([("proj/", "dir", ""), ("proj/x", "symlink", "..")]), "leaves its tree: x -> ..")


def test_writes_through_a_symlinked_parent_are_refused(box):
    # the link is fine on its own; the members written through it are not
    refuse(box, tar_bytes([("out", "symlink", "../../outside"), ("out/sentinel", "file", "owned")]), "out")
    refuse(box, tar_bytes([("sub/", "dir", ""), ("d", "symlink", "sub"), ("d/new/", "dir", "")]), "'d'")
    refuse(box, tar_bytes([("sub/", "dir", ""), ("d", "symlink", "sub"), ("d/f", "file", "x")]), "'d'")
    refuse(box, tar_bytes([("a", "symlink", "."), ("a/b", "symlink", "x")]), "writes through a link: 'a/b'")


def test_symlink_chains_are_followed_step_by_step(box):
    # a -> . makes a/a/a/... the tree itself: lexically inside, really outside after the '..'
    refuse(box, tar_bytes([("a", "symlink", "."), ("b", "symlink", "a/a/a/..")]), "leaves its tree: b -> a/a/a/..")
    refuse(
        box,
        tar_bytes([("a", "symlink", "."), ("deep", "symlink", "a/" * 30 + "../outside/sentinel")]),
        "leaves its tree",
    )
    refuse(box, tar_bytes([("a", "symlink", "."), ("a/a/a/a/x", "file", "x")]), "a")
    # order does not matter: the escape is found once every link exists
    refuse(
        box,
        tar_bytes([("x", "symlink", "s/.."), ("sub/", "dir", ""), ("s", "symlink", "sub/..")]),
        "leaves its tree: x -> s/..",
    )
    refuse(box, tar_bytes([("p", "symlink", "q"), ("q", "symlink", "p")]), "link loop")
    # a chain that stays inside is fine
    assert (
        accept(
            box, tar_bytes([("sub/deeper/", "dir", ""), ("d", "symlink", "sub/deeper"), ("up", "symlink", "d/../..")])
        )["up"]
        == "-> d/../.."
    )


def test_hard_links_outside_or_through_links_are_refused(box):
    _, outside = box
    refuse(box, tar_bytes([("h", "hardlink", str(outside / "sentinel"))]), "hard link")
    refuse(box, tar_bytes([("h", "hardlink", "../outside/sentinel")]), "hard link")
    refuse(box, tar_bytes([("f", "file", "x"), ("l", "symlink", "."), ("h", "hardlink", "l/f")]), "hard link")
    refuse(box, tar_bytes([("l", "symlink", "../outside"), ("h", "hardlink", "l/sentinel")]), "hard link")
    refuse(box, tar_bytes([("h", "hardlink", "later"), ("later", "file", "x")]), "hard link")


@pytest.mark.parametrize("kind", ["chr", "blk", "fifo"])
def test_devices_and_fifos_are_refused(box, kind):
    message = refuse(box, tar_bytes([("ok", "file", "x"), (f"dev-{kind}", kind, "")]), "special file")
    assert f"dev-{kind}" in message


def test_a_member_twice_or_under_a_file_is_refused(box):
    refuse(box, tar_bytes([("f", "file", "1"), ("f", "file", "2")]), "twice")
    refuse(box, tar_bytes([("f", "file", "1"), ("f/g", "file", "2")]), "under a file")
    refuse(box, tar_bytes([("f", "file", "1"), ("f", "symlink", ".")]), "twice")


def test_size_and_member_count_are_bounded(box):
    refuse(box, tar_bytes([("big", "file", "x" * 2000)]), "larger than 1 KiB uncompressed", Limits(max_size=1024))
    # hard links copy their data: they count again
    refuse(box, tar_bytes([("f", "file", "x" * 600), ("h", "hardlink", "f")]), "at h", Limits(max_size=1024))
    refuse(box, tar_bytes([(f"f{i}", "file", "") for i in range(11)]), "more than 10 members", Limits(max_members=10))
    refuse(box, tar_bytes([(f"d{i}/", "dir", "") for i in range(11)]), "more than 10 members", Limits(max_members=10))
    assert len(accept(box, tar_bytes([(f"f{i}", "file", "") for i in range(10)]), Limits(max_members=10))) == 10


def test_damaged_and_foreign_archives_are_refused(box):
    good = tar_bytes([("f", "file", "x" * 5000)])
    refuse(box, good[: len(good) // 2], "damaged")
    refuse(box, b"this is not an archive at all" * 40, "neither a tar (plain, gz, bz2, xz) nor a zip")


# -- zip --------------------------------------------------------------------------------------


def test_zip_good_archive(box):
    files = accept(
        box,
        zip_bytes(
            [
                ("app.py", "file", "print(2)\n"),
                ("lib/", "dir", ""),
                ("lib/u.py", "file", "U\n"),
                ("alias", "symlink", "lib/u.py"),
            ]
        ),
    )
    assert files == {"alias": "-> lib/u.py", "app.py": "print(2)\n", "lib": None, "lib/u.py": "U\n"}


def test_zip_escapes_are_refused(box):
    _, outside = box
    refuse(box, zip_bytes([("../outside/sentinel", "file", "owned")]), "outside its tree")
    refuse(box, zip_bytes([(str(outside / "sentinel"), "file", "owned")]), "unsafe member name")
    refuse(box, zip_bytes([("out", "symlink", "../../outside")]), "leaves its tree")
    refuse(box, zip_bytes([("a", "symlink", "."), ("b", "symlink", "a/a/..")]), "leaves its tree")
    refuse(box, zip_bytes([("out", "symlink", "../../outside"), ("out/sentinel", "file", "owned")]), "out")
    refuse(box, zip_bytes([("dev", "chr", "")]), "special file")
    refuse(box, zip_bytes([("pipe", "fifo", "")]), "special file")
    refuse(box, zip_bytes([("w\\..\\x", "file", "x")]), "unsafe member name")


def test_zip_size_and_member_count_are_bounded(box):
    refuse(box, zip_bytes([("big", "file", "x" * 5000)]), "larger than", Limits(max_size=4096))
    refuse(box, zip_bytes([(f"f{i}", "file", "") for i in range(6)]), "more than 5 members", Limits(max_members=5))


# -- the command, in a real process ---------------------------------------------------------


def run_from_archive(root: Path, data: bytes, *settings: tuple[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **STUB_ENV, "SKIFF_ROOT": str(root)}
    for key, value in settings:
        subprocess.run(
            [skiff_executable(), "git:set", "--global", key, value], env=env, check=True, capture_output=True
        )
    return subprocess.run(
        [skiff_executable(), "git:from-archive", "web", "-"], input=data, env=env, capture_output=True
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (
            tar_bytes([("Procfile", "file", "web: x\n"), ("a", "symlink", "."), ("b", "symlink", "a/a/../outside")]),
            "b -> a/a/../outside",
        ),
        (tar_bytes([("Procfile", "file", "web: x\n"), ("out", "symlink", "../.."), ("out/x", "file", "owned")]), "out"),
        (zip_bytes([("Procfile", "file", "web: x\n"), ("../../x", "file", "owned")]), "../../x"),
        (
            tar_bytes([("Procfile", "file", "web: x\n"), ("f2", "file", "x"), ("f3", "file", "x")]),
            "more than 2 members",
        ),
    ],
)
def test_from_archive_refuses_and_creates_nothing(skiff_root, tmp_path, data, message):
    settings = [("archive-max-members", "2")] if "members" in message else []
    proc = run_from_archive(skiff_root, data, *settings)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    error_lines = [line for line in err.splitlines() if line.startswith("!")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert not (skiff_root / "repos" / "web.git").exists()
    listing = subprocess.run(
        [skiff_executable(), "apps:list"],
        env={**os.environ, **STUB_ENV, "SKIFF_ROOT": str(skiff_root)},
        capture_output=True,
        text=True,
    )
    assert "web" not in listing.stdout
    assert not any((skiff_root / "tmp").glob("*"))  # no archive, tree or staging directory left


def test_from_archive_size_settings_are_enforced(skiff_root):
    bomb = tar_bytes([("Procfile", "file", "web: x\n"), ("big", "file", "x" * 300_000)], mode="w:gz")
    assert len(bomb) < 100 * 1024
    proc = run_from_archive(skiff_root, bomb, ("archive-max-size", "100K"))
    assert proc.returncode == 1 and "larger than 100 KiB uncompressed (at big" in proc.stderr.decode(), proc.stderr
    plain = tar_bytes([("Procfile", "file", "web: x\n"), ("big", "file", "x" * 300_000)], mode="w")
    proc = run_from_archive(skiff_root, plain)
    assert proc.returncode == 1 and "archive is larger than 100 KiB" in proc.stderr.decode(), proc.stderr
    assert not (skiff_root / "repos" / "web.git").exists()
    proc = run_from_archive(skiff_root, plain, ("archive-max-size", "1M"))
    assert proc.returncode == 0, proc.stderr.decode()
