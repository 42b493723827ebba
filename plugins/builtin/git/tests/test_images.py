"""The docker save tarball checks of git:load-image (no engine needed)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from skiff.errors import ValidationError
from skiff_git import images
from skiff_git.images import Limits, normalise, other_app, rewrite

CONFIG = b'{"architecture":"amd64","config":{"Cmd":["/server"]},"rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG_NAME = hashlib.sha256(CONFIG).hexdigest() + ".json"


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    return name, data, kind, link


def manifest(tags, config=CONFIG_NAME, layers=("l1/layer.tar",)) -> bytes:
    return json.dumps([{"Config": config, "RepoTags": tags, "Layers": list(layers)}]).encode()


def saved(path: Path, members: list[tuple], compress: str = "") -> Path:
    with tarfile.open(path, f"w:{compress}") as out:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            out.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def good(tags=("skiff/stack:trixie", "skiff/other:latest")) -> list[tuple]:
    return [
        member("l1", kind=tarfile.DIRTYPE),
        member("l1/layer.tar", b"layer bytes"),
        member("l2", kind=tarfile.DIRTYPE),
        member("l2/layer.tar", kind=tarfile.SYMTYPE, link="../l1/layer.tar"),
        member(CONFIG_NAME, CONFIG),
        member("manifest.json", manifest(list(tags))),
        member("repositories", json.dumps({"skiff/stack": {"trixie": "x"}}).encode()),
    ]


def read(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isreg() else m.linkname.encode()) for m in tar.getmembers()}


def test_the_tags_are_stripped_and_the_image_id_is_the_config_digest(tmp_path):
    result = rewrite(saved(tmp_path / "in.tar", good()), tmp_path / "out.tar")
    out = read(tmp_path / "out.tar")
    assert "repositories" not in out
    assert json.loads(out["manifest.json"]) == [{"Config": CONFIG_NAME, "RepoTags": None, "Layers": ["l1/layer.tar"]}]
    assert out["l1/layer.tar"] == b"layer bytes" and out["l2/layer.tar"] == b"../l1/layer.tar"
    assert result.dropped_tags == ["skiff/stack:trixie", "skiff/other:latest"]
    entry = result.choose("skiff/stack:trixie")
    assert entry.image_id == "sha256:" + hashlib.sha256(CONFIG).hexdigest()
    assert result.choose(None) is entry  # the only image


def test_gzip_input_and_oci_index_annotations(tmp_path):
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "digest": "sha256:" + "a" * 64,
                "annotations": {"io.containerd.image.name": "docker.io/skiff/stack:trixie", "keep": "me"},
            }
        ],
    }
    members = [*good(), member("index.json", json.dumps(index).encode())]
    rewrite(saved(tmp_path / "in.tgz", members, "gz"), tmp_path / "out.tar")
    out = json.loads(read(tmp_path / "out.tar")["index.json"])
    assert out["manifests"][0]["annotations"] == {"keep": "me"}


def test_choosing_by_tag(tmp_path):
    result = rewrite(saved(tmp_path / "in.tar", good(["busybox:latest"])), tmp_path / "out.tar")
    assert result.choose("busybox").config == CONFIG_NAME
    assert result.choose("docker.io/library/busybox:latest").config == CONFIG_NAME
    with pytest.raises(ValidationError, match="no image tagged busybox:1; its tags: busybox:latest"):
        result.choose("busybox:1")
    two = images.Rewritten([images.Entry("a", ["x:1"], []), images.Entry("b", ["y:1"], [])], ["x:1", "y:1"])
    with pytest.raises(ValidationError, match="holds 2 images: name the one"):
        two.choose(None)


def test_normalise():
    assert normalise("busybox") == "busybox:latest"
    assert normalise("docker.io/library/busybox:1") == "busybox:1"
    assert normalise("127.0.0.1:5000/a/b") == "127.0.0.1:5000/a/b:latest"


@pytest.mark.parametrize(
    "members, words",
    [
        ([member("x", b"not a tarball")], "no manifest.json"),
        ([member("../evil", b"x"), *good()], "outside its tree"),
        ([member("/etc/evil", b"x"), *good()], "unsafe member name"),
        ([*good(), member("hard", kind=tarfile.LNKTYPE, link="l1/layer.tar")], "hard link or special file"),
        ([*good(), member("dev", kind=tarfile.CHRTYPE)], "hard link or special file"),
        ([*good(), member("up", kind=tarfile.SYMTYPE, link="../../etc/passwd")], "link that leaves it"),
        ([*good(), member("abs", kind=tarfile.SYMTYPE, link="/etc/passwd")], "link that leaves it"),
        ([member("manifest.json", b"{not json")], "not valid JSON"),
        ([member("manifest.json", b"[]")], "lists no image"),
        ([member("manifest.json", b'[{"RepoTags": []}]')], "without Config"),
        ([member("manifest.json", manifest(["Bad Tag"]))], "invalid tarball tag reference"),
        ([member("manifest.json", manifest(None, config="../x.json"))], "outside its tree"),
        ([member("manifest.json", manifest(None))], "which it lacks"),
    ],
)
def test_bad_tarballs_are_refused_and_nothing_is_written(tmp_path, members, words):
    with pytest.raises(ValidationError, match=words):
        rewrite(saved(tmp_path / "in.tar", members), tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()


def test_a_file_that_is_no_tar_at_all(tmp_path):
    (tmp_path / "in.tar").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValidationError, match="not a docker save tarball"):
        rewrite(tmp_path / "in.tar", tmp_path / "out.tar")


def test_size_and_member_limits(tmp_path):
    path = saved(tmp_path / "in.tar", good())
    with pytest.raises(ValidationError, match=r"larger than 100 bytes \(setting image-max-size\)"):
        rewrite(path, tmp_path / "out.tar", Limits(max_size=100))
    with pytest.raises(ValidationError, match="more than 3 members"):
        rewrite(path, tmp_path / "out.tar", Limits(max_members=3))
    big = [member("manifest.json", b" " * (images.MAX_INDEX + 1))]
    with pytest.raises(ValidationError, match="manifest.json is larger than 4 MiB"):
        rewrite(saved(tmp_path / "big.tar", big), tmp_path / "out.tar")


def test_other_app_of_an_image():
    apps = {"blog", "shop"}.__contains__
    labelled = {"Config": {"Labels": {"skiff.app": "blog"}}}
    assert other_app(labelled, [], "shop", apps) == "blog"
    assert other_app(labelled, [], "blog", apps) is None
    assert other_app({"Config": {"Labels": {"skiff.deps": "blog"}}}, [], "shop", apps) == "blog"
    assert other_app({}, ["skiff/blog:20261203-abc"], "shop", apps) == "blog"
    assert other_app({}, ["skiff/stack:trixie", "debian:12"], "shop", apps) is None  # no app named stack
    assert other_app({"Config": {"Labels": None}}, [], "shop", apps) is None
