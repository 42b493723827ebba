"""Node.js package managers: npm, yarn and pnpm chosen from lock files and package.json, their
releases resolved, verified and cached on the server like Node.js releases.

The registry is a tiny fake on 127.0.0.1 serving packuments and tarballs of ``npm``,
``yarn``, ``@yarnpkg/cli-dist`` and ``pnpm``.
"""

import base64
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
from pathlib import Path

import pytest

import skiff_buildpacks.node as node
from skiff.errors import SkiffError
from skiff.output import Output
from skiff_buildpacks import node_tools
from skiff_buildpacks.build import Build, Stack

TRIXIE = Stack(image="skiff/stack:trixie", id="sha256:aaa", python="3.13.5", node="20.19.2")
BINS = {
    "npm": {"npm": "bin/npm-cli.js", "npx": "bin/npx-cli.js"},
    "yarn": {"yarn": "./bin/yarn.js", "yarnpkg": "./bin/yarn.js"},
    "@yarnpkg/cli-dist": {"yarn": "bin/yarn.js"},
    "pnpm": {"pnpm": "bin/pnpm.cjs", "pnpx": "bin/pnpx.cjs"},
}
RELEASES = {
    "npm": {"9.9.4": None, "10.8.2": ">=18.17", "11.0.0": "^20.17.0 || >=22.9.0"},
    "yarn": {"1.22.19": None, "1.22.22": ">=4"},
    "@yarnpkg/cli-dist": {"3.8.7": ">=18.12", "4.5.3": ">=18.12"},
    "pnpm": {"8.15.9": ">=16.14", "9.15.4": ">=18.12", "10.2.0": ">=18.12", "10.99.0": ">=22"},
}


def fake_package(package: str, version: str, bins: dict | None = None, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    files = {"package/package.json": json.dumps({"name": package, "version": version, "bin": bins})}
    for target in set((bins or {}).values()):
        files[f"package/{target.removeprefix('./')}"] = f"#!/usr/bin/env node\nconsole.log('{version}')\n"
    files["package/node_modules/dep/index.js"] = "module.exports = 1\n"
    files.update(extra or {})
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644  # bins not executable: repack makes them so
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tf.addfile(link)
        bad = tarfile.TarInfo("package/../../escape")
        bad.size = 1
        tf.addfile(bad, io.BytesIO(b"x"))
    return buf.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Registry:
    def __init__(self):
        self.tarballs: dict[str, dict[str, bytes]] = {}
        self.packuments: dict[str, dict] = {}
        self.requests: list[str] = []
        self.accept: list[str] = []
        for package, versions in RELEASES.items():
            self.tarballs[package] = {v: fake_package(package, v, BINS[package]) for v in versions}
            self.packuments[package] = {
                "name": package,
                "versions": {
                    v: {
                        "dist": {"integrity": sri(t), "shasum": hashlib.sha1(t).hexdigest()},
                        **({"engines": {"node": versions[v]}} if versions[v] else {}),
                    }
                    for v, t in self.tarballs[package].items()
                },
            }
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                registry.requests.append(self.path)
                registry.accept.append(self.headers.get("Accept", ""))
                body = None
                for package, doc in registry.packuments.items():
                    if self.path.lower() == "/" + package.replace("/", "%2f"):  # the name as one path segment
                        body = json.dumps(doc).encode()
                    for v, data in registry.tarballs[package].items():
                        if self.path == f"/{package}/-/{package.rsplit('/', 1)[-1]}-{v}.tgz":
                            body = data
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry():
    reg = Registry()
    yield reg
    reg.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def make_build(source: Path, tmp_path: Path, registry_url: str) -> Build:
    return Build(
        app="demo",
        source=source,
        config={},
        stack=TRIXIE,
        stacks=[TRIXIE],
        output=Output(quiet=True),
        settings={"node-registry": registry_url},
        cache_dir=tmp_path / "cache",
    )


def app(tmp_path: Path, files: dict, package: dict | None = None) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in {"package.json": json.dumps(package or {}), **files}.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    return src


YARN_V1 = "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n"
YARN_BERRY = '# This file is generated by running "yarn install"\n\n__metadata:\n  version: 8\n  cacheKey: 10c0\n'
PNPM_9 = "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n"


# -- which manager, which version (no registry) ------------------------------------------


@pytest.mark.parametrize(
    "files, package, expected",
    [
        ({}, {}, ("npm", None, "", "")),
        ({"package-lock.json": "{}"}, {"engines": {"npm": "10.x"}}, ("npm", "npm", "engines.npm", "10.x")),
        ({}, {"packageManager": "npm@10.8.2"}, ("npm", "npm", "packageManager", "npm@10.8.2")),
        ({"yarn.lock": YARN_V1}, {}, ("yarn", "yarn", "yarn.lock", "v1")),
        ({"yarn.lock": YARN_V1}, {"engines": {"yarn": "1.22.19"}}, ("yarn", "yarn", "engines.yarn", "1.22.19")),
        ({"yarn.lock": YARN_BERRY}, {}, ("yarn", "@yarnpkg/cli-dist", "yarn.lock __metadata version", "8")),
        (
            {"yarn.lock": YARN_BERRY},
            {"packageManager": "yarn@3.8.7"},
            ("yarn", "@yarnpkg/cli-dist", "packageManager", "yarn@3.8.7"),
        ),
        ({}, {"packageManager": "yarn@1.22.22"}, ("yarn", "yarn", "packageManager", "yarn@1.22.22")),
        ({"pnpm-lock.yaml": PNPM_9}, {}, ("pnpm", "pnpm", "pnpm-lock.yaml lockfileVersion", "9.0")),
        ({"pnpm-lock.yaml": "lockfileVersion: 5.4\n"}, {}, ("pnpm", "pnpm", "pnpm-lock.yaml lockfileVersion", "5.4")),
        ({"pnpm-lock.yaml": PNPM_9}, {"engines": {"pnpm": "^8"}}, ("pnpm", "pnpm", "engines.pnpm", "^8")),
        (
            {"pnpm-lock.yaml": PNPM_9},
            {"engines": {"npm": "10.x"}},
            ("pnpm", "pnpm", "pnpm-lock.yaml lockfileVersion", "9.0"),
        ),
    ],
)
def test_the_manager_and_why(tmp_path, files, package, expected):
    choice = node_tools.choose(make_build(app(tmp_path, files, package), tmp_path, closed_port_url()), package)
    assert (choice.name, choice.tool.package if choice.tool else None, choice.what, choice.text) == expected


def test_yarn_path_uses_the_apps_own_release(tmp_path):
    files = {
        "yarn.lock": YARN_BERRY,
        ".yarnrc.yml": "nodeLinker: node-modules\nyarnPath: .yarn/releases/yarn-4.5.3.cjs\n",
    }
    files[".yarn/releases/yarn-4.5.3.cjs"] = "// yarn"
    src = app(tmp_path, files)
    build = make_build(src, tmp_path, closed_port_url())
    deps = node.skiff_buildpack_dependencies("node", build)
    assert deps["notes"] == ["Using the app's own yarn release (.yarnrc.yml yarnPath .yarn/releases/yarn-4.5.3.cjs)"]
    assert deps["steps"][0]["run"] == [["node", "/app/.yarn/releases/yarn-4.5.3.cjs", "install", "--immutable"]]
    assert deps["files"] == ["package.json", "yarn.lock", ".yarnrc.yml", ".yarn/releases/yarn-4.5.3.cjs"]
    assert deps["archives"] == []


@pytest.mark.parametrize(
    "files, package, message",
    [
        (
            {"yarn.lock": YARN_V1, "package-lock.json": "{}"},
            {},
            "more than one Node.js package manager file: package-lock.json, yarn.lock; keep only one",
        ),
        (
            {"bun.lockb": ""},
            {},
            "bun.lockb found: bun is not supported; commit a package-lock.json, yarn.lock or pnpm-lock.yaml",
        ),
        (
            {"yarn.lock": YARN_V1},
            {"packageManager": "pnpm@9.15.4"},
            "package.json packageManager is pnpm@9.15.4 but the lock file is yarn.lock: keep the one the app uses",
        ),
        (
            {},
            {"packageManager": "pnpm@latest"},
            'package.json packageManager "pnpm@latest" is not NAME@X.Y.Z[+sha512.HEX] with NAME npm, yarn or pnpm',
        ),
        ({}, {"packageManager": "bun@1.1.0"}, 'package.json packageManager "bun@1.1.0" is not NAME@X.Y.Z'),
        ({}, {"packageManager": 7}, 'package.json packageManager "7" is not'),
        ({}, {"engines": {"npm": "ten"}}, 'engines.npm "ten" is not a version range npm understands'),
        (
            {"pnpm-lock.yaml": "lockfileVersion: '4.0'\n"},
            {},
            "pnpm-lock.yaml lockfileVersion 4.0 is not one Skiff knows",
        ),
        ({"pnpm-lock.yaml": "hello: world\n"}, {}, "pnpm-lock.yaml has no lockfileVersion line"),
        (
            {"yarn.lock": YARN_BERRY, ".yarnrc.yml": "yarnPath: ../../etc/passwd\n"},
            {},
            '.yarnrc.yml yarnPath "../../etc/passwd" is not a file of the app',
        ),
        (
            {"yarn.lock": YARN_BERRY, ".yarnrc.yml": "yarnPath: .yarn/releases/missing.cjs\n"},
            {},
            '.yarnrc.yml yarnPath ".yarn/releases/missing.cjs" is not a file of the app',
        ),
    ],
)
def test_bad_manager_input_is_one_line(tmp_path, files, package, message):
    src = app(tmp_path, files, package)
    with pytest.raises(SkiffError) as caught:
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, closed_port_url()))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not (tmp_path / "cache").exists()


# -- the registry and the server's cache ------------------------------------------------


def members(path: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_pnpm_from_its_lock_file_is_downloaded_verified_cached_then_reused(tmp_path, registry):
    src = app(tmp_path, {"pnpm-lock.yaml": PNPM_9, "pnpm-workspace.yaml": "packages: []\n"})
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    # 10.99.0 needs Node.js 22: the stack's 20.19.2 gets the newest release that runs on it
    assert deps["notes"][0] == "Installing pnpm 10.2.0 (pnpm-lock.yaml lockfileVersion 9.0)"
    assert "downloaded pnpm@10.2.0" in deps["notes"][1] and "checksum verified" in deps["notes"][1]
    archive = tmp_path / "cache" / "node" / "tools" / "pnpm" / "10.2.0.tar"
    assert deps["archives"] == [{"path": str(archive), "key": "pnpm@10.2.0"}]
    assert deps["steps"][0]["run"] == [["pnpm", "install", "--frozen-lockfile"]]
    assert deps["steps"][0]["title"] == "Installing dependencies with pnpm install"
    assert deps["steps"][0]["env"]["npm_config_store_dir"] == "/build/cache/pnpm-store"
    assert deps["path"] == ["/app/node_modules/.bin", "/app/.heroku/bin"]
    assert deps["files"] == ["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml"]
    assert {".heroku/pnpm", ".heroku/bin"} <= set(deps["exclude"])
    assert "application/vnd.npm.install-v1+json" in registry.accept[0]  # the abbreviated packument

    names = members(str(archive))
    assert names["app/.heroku/bin/pnpm"].issym() and names["app/.heroku/bin/pnpm"].linkname == "../pnpm/bin/pnpm.cjs"
    assert names["app/.heroku/pnpm/bin/pnpm.cjs"].mode == 0o755 and names["app/.heroku/pnpm/bin/pnpm.cjs"].uid == 0
    assert names["app/.heroku/pnpm/package.json"].mode == 0o644
    assert "app/.heroku/pnpm/node_modules/dep/index.js" in names  # bundled dependencies are kept
    assert all(n == "app/.heroku" or n.startswith("app/.heroku/") for n in names)
    assert not any(n.endswith(("evil", "escape")) for n in names)
    assert not list(archive.parent.glob(".*"))  # no temporary files left

    registry.requests.clear()
    again = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert again["notes"] == ["Installing pnpm 10.2.0 (pnpm-lock.yaml lockfileVersion 9.0), cached on this server"]
    assert registry.requests == []


def test_engines_npm_installs_that_npm(tmp_path, registry):
    src = app(tmp_path, {"package-lock.json": "{}"}, {"engines": {"npm": ">=10"}})
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert deps["notes"][0] == "Installing npm 11.0.0 (engines.npm >=10)"
    assert deps["steps"][0]["run"][0][:2] == ["npm", "ci"]
    assert deps["archives"][0]["key"] == "npm@11.0.0"
    names = members(deps["archives"][0]["path"])
    assert names["app/.heroku/bin/npx"].linkname == "../npm/bin/npx-cli.js"


def test_a_manager_that_does_not_run_on_the_builds_node_is_one_line(tmp_path, registry):
    src = app(tmp_path, {}, {"engines": {"node": "20.x"}, "packageManager": "pnpm@10.99.0"})
    with pytest.raises(SkiffError) as caught:
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert str(caught.value) == (
        'packageManager "pnpm@10.99.0": no pnpm release in that range runs on Node.js 20.19.2 '
        "(pnpm 10.99.0 needs node >=22)"
    )


def test_yarn_classic_and_berry(tmp_path, registry):
    src = app(tmp_path, {"yarn.lock": YARN_V1, ".yarnrc": "network-timeout 1000\n"})
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert deps["notes"][0] == "Installing yarn 1.22.22 (yarn.lock v1)"
    assert deps["steps"][0]["run"] == [["yarn", "install", "--non-interactive", "--frozen-lockfile"]]
    assert deps["steps"][0]["env"]["YARN_CACHE_FOLDER"] == "/build/cache/yarn"
    assert deps["files"] == ["package.json", "yarn.lock", ".yarnrc"]
    assert members(deps["archives"][0]["path"])["app/.heroku/bin/yarnpkg"].linkname == "../yarn/bin/yarn.js"
    (src / "yarn.lock").write_text(YARN_BERRY)
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert deps["notes"][0] == "Installing yarn 4.5.3 (yarn.lock __metadata version 8)"
    assert deps["steps"][0]["run"] == [["yarn", "install", "--immutable"]]
    assert deps["steps"][0]["env"]["YARN_GLOBAL_FOLDER"] == "/build/cache/yarn-berry"
    assert deps["archives"][0]["key"] == "@yarnpkg/cli-dist@4.5.3"
    (src / "package.json").write_text(json.dumps({"scripts": {"build": "tsc"}}))
    assert node.skiff_buildpack_compile("node", make_build(src, tmp_path, registry.url))["steps"][0]["run"] == [
        ["yarn", "run", "build"]
    ]


def test_package_manager_hash_is_checked(tmp_path, registry):
    good = hashlib.sha512(registry.tarballs["pnpm"]["9.15.4"]).hexdigest()
    src = app(tmp_path, {}, {"packageManager": f"pnpm@9.15.4+sha512.{good}"})
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert deps["notes"][0] == f"Installing pnpm 9.15.4 (packageManager pnpm@9.15.4+sha512.{good})"
    assert len(deps["notes"]) == 2 and deps["steps"][0]["run"] == [["pnpm", "install"]]
    (src / "package.json").write_text(json.dumps({"packageManager": f"pnpm@9.15.4+sha512.{'0' * 128}"}))
    with pytest.raises(SkiffError) as caught:
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert str(caught.value) == (
        "package.json packageManager pnpm@9.15.4+sha512 does not match the registry's checksum of pnpm@9.15.4"
    )


def test_tarball_with_a_wrong_checksum_caches_nothing(tmp_path, registry):
    registry.packuments["npm"]["versions"]["10.8.2"]["dist"] = {"shasum": "0" * 40}
    src = app(tmp_path, {}, {"engines": {"npm": "10.8.x"}})
    with pytest.raises(SkiffError, match=r"^npm@10.8.2 does not match the registry's checksum; nothing was cached$"):
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert not list((tmp_path / "cache" / "node" / "tools" / "npm").glob("*.tar"))


def test_no_release_in_range_is_one_line(tmp_path, registry):
    src = app(tmp_path, {}, {"engines": {"npm": "99.x"}})
    with pytest.raises(SkiffError) as caught:
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    assert str(caught.value) == 'engines.npm "99.x" matches no npm release; newest is 11.0.0'


def test_unreachable_registry_uses_the_cached_release(tmp_path, registry):
    src = app(tmp_path, {"pnpm-lock.yaml": PNPM_9})
    node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, registry.url))
    offline = closed_port_url()
    deps = node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, offline))
    assert deps["notes"] == [
        "Installing pnpm 10.2.0 (pnpm-lock.yaml lockfileVersion 9.0)",
        f"the npm registry at {offline} is unreachable (ConnectionError): using the cached release",
    ]
    (src / "package.json").write_text(json.dumps({"engines": {"pnpm": "8.x"}}))
    with pytest.raises(SkiffError) as caught:
        node.skiff_buildpack_dependencies("node", make_build(src, tmp_path, offline))
    assert str(caught.value) == (
        f"the npm registry at {offline} is unreachable (ConnectionError) and no pnpm cached on this server "
        'matches engines.pnpm "8.x" (cached: 10.2.0)'
    )


def test_a_package_without_the_command_is_refused(tmp_path):
    tool = node_tools.PNPM
    data = fake_package("pnpm", "1.0.0", {"other": "bin/x.js"})
    with pytest.raises(SkiffError, match="pnpm@1.0.0 has no pnpm command in its package.json; nothing was cached"):
        node_tools.repack_tool(io.BytesIO(data), io.BytesIO(), "pnpm@1.0.0", tool)
    data = fake_package("pnpm", "1.0.0", {"pnpm": "../../bin/sh"})
    with pytest.raises(SkiffError, match="has no pnpm command"):
        node_tools.repack_tool(io.BytesIO(data), io.BytesIO(), "pnpm@1.0.0", tool)
