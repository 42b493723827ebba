"""Unit tests of the Go pack (no Docker): go.mod parsing, detection, the plan and the stage."""

import io
import tarfile
from pathlib import Path

import pytest

import skiff_buildpacks.golang as go
import skiff_buildpacks.plugin as bp
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.output import Output
from skiff_buildpacks import build as b
from skiff_buildpacks import toolchains
from skiff_buildpacks.build import Build, Stack
from skiff_buildpacks.plan import PackPlan
from skiff_buildpacks.testing import TRIXIE, pack_build

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
MAIN = "package main\n\nfunc main() {}\n"


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def make_build(source: Path, config=None, version="go1.24.4") -> Build:
    return pack_build(source, version, config)


# -- go.mod --------------------------------------------------------------------


def test_go_mod_with_blocks_comments_and_quotes():
    mod = go.parse_go_mod(
        '// the app\nmodule "example.com/app/v2" // trailing\n\ngo 1.22.5\ntoolchain go1.23.1\n'
        "require (\n\texample.com/a v1.2.3\n\texample.com/b v0.0.0-20240101000000-abcdefabcdef // indirect\n)\n"
        "replace example.com/a => ./local/a\nexclude example.com/c v1.0.0\nretract [v1.0.0, v1.0.5]\n"
        "godebug (\n\tdefault=go1.21\n)\ntool example.com/tool\nrequire ()\n"
    )
    assert mod.module == "example.com/app/v2" and mod.go == "1.22.5" and mod.toolchain == "go1.23.1"
    assert mod.requires == [("example.com/a", "v1.2.3"), ("example.com/b", "v0.0.0-20240101000000-abcdefabcdef")]
    assert mod.replaces == ["./local/a"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("go 1.22\n", "go.mod has no module directive"),
        ("module example.com/x y\n", "go.mod line 1: module takes exactly one argument, got 2"),
        ("module a\nmodule b\n", "go.mod line 2: repeated module directive"),
        ("module example.com/a b\n", "exactly one argument"),
        ("module ../escape\n", "go.mod line 1: invalid module path '../escape'"),
        ("module example.com/$(id)\n", "go.mod line 1: unexpected parenthesis"),
        ("module example.com/a;b\n", "go.mod line 1: invalid module path 'example.com/a;b'"),
        ("module example.com/.hidden\n", "invalid module path"),
        ('module "example.com/x\n', "go.mod line 1: unterminated quoted string"),
        ("module x\ngo 1.22x\n", "go.mod line 2: invalid go version '1.22x'"),
        ("module x\ngo 1.22\n1.23\n", "go.mod line 3: unknown directive '1.23'"),
        ("module x\ngo 01.2\n", "invalid go version"),
        ("module x\ngo 1.22\ngo 1.23\n", "go.mod line 3: repeated go directive"),
        ("module x\ntoolchain 1.22\n", "go.mod line 2: invalid toolchain '1.22'"),
        ("module x\nrequire (\n  example.com/a v1.0.0\n", "go.mod line 2: the require block is never closed"),
        ("module x\nrequire example.com/a\n", "go.mod line 2: require needs a module path and a version"),
        ("module x\nrequire example.com/a 1.0\n", "go.mod line 2: invalid version '1.0' of example.com/a"),
        ("module x\nfrobnicate y\n", "go.mod line 2: unknown directive 'frobnicate'"),
        ("module x\nreplace example.com/a ./b\n", "go.mod line 2: replace needs"),
        ("module (\n x\n)\n", "go.mod line 1: module cannot be a block"),
    ],
)
def test_broken_go_mod_is_one_clear_line(text, message):
    with pytest.raises(SkiffError) as info:
        go.parse_go_mod(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_go_versions_order_like_go():
    keys = [go.version_key(v) for v in ("1.21", "1.21beta1", "1.21rc1", "1.21rc2", "1.21.0", "1.21.3", "1.22")]
    assert keys == sorted(keys)
    assert go.version_key("go1.24.4") == go.version_key("1.24.4")
    with pytest.raises(SkiffError):
        go.version_key("1.x")


@pytest.mark.parametrize(
    "path, module_mode, name",
    [
        ("example.com/hello", True, "hello"),
        ("example.com/hello/v2", True, "hello"),
        ("example.com/hello/v1", True, "v1"),
        ("example.com/hello/v2", False, "v2"),
        ("hello", True, "hello"),
    ],
)
def test_binary_names_follow_go_build(path, module_mode, name):
    assert go.exec_name(path, module_mode) == name


# -- detection and the plan ----------------------------------------------------


def test_detect_module_gopath_and_not_go(tmp_path):
    assert go.skiff_buildpack_detect("go", make_build(APPS / "go-module"))
    assert go.skiff_buildpack_detect("go", make_build(APPS / "go-gopath"))
    assert not go.skiff_buildpack_detect("go", make_build(APPS / "flask"))
    assert go.skiff_buildpack_detect("python", make_build(APPS / "go-module")) is None
    write(tmp_path, {"main_test.go": MAIN})
    assert not go.skiff_buildpack_detect("go", make_build(tmp_path))


def test_go_pack_is_an_entry_point_between_node_and_static(skiff):
    h = skiff(("buildpacks", bp), ("buildpack-go", go))
    h.create_app("demo")
    assert [d["name"] for d in bp.describe_packs(h.context)] == ["go"]
    deploy = Deploy(
        context=h.context,
        app="demo",
        kind="deploy",
        description="",
        output=Output(quiet=True),
        workdir=APPS / "go-module",
    )
    assert bp.select_packs(h.context, deploy, make_build(APPS / "go-module")) == ["go"]
    assert go.skiff_buildpack_describe()["order"] == 30  # python 10, node 20, static 90
    cfg = (Path(bp.__file__).parents[1] / "setup.cfg").read_text()
    assert "buildpack-go = skiff_buildpacks.golang" in cfg


def test_module_app_with_vendor_builds_offline_in_the_toolchain_layer():
    build = make_build(APPS / "go-module", config={"GOFLAGS": "-tags=prod", "GOPROXY": "https://proxy.example"})
    deps = go.skiff_buildpack_dependencies("go", build)
    assert deps["label"] == "Go app" and deps["path"] == ["/app/bin"] and "steps" not in deps
    assert "module example.com/gohello, go 1.22" in deps["notes"]
    assert "vendor/ found: building offline with -mod=vendor" in deps["notes"]
    stage = go.skiff_buildpack_compile("go", build)["stage"]
    assert build.toolchain_loader.calls == [("skiff/stack:trixie", "go", ["golang-go"], ["go", "env", "GOVERSION"])]
    assert stage["image"] == "skiff/stack-go:trixie" and stage["outputs"] == ["bin"]
    env = stage["env"]
    assert env["GOTOOLCHAIN"] == "local" and env["GOFLAGS"] == "-tags=prod -mod=vendor"
    assert env["GOCACHE"].startswith("/build/cache/") and env["GOMODCACHE"].startswith("/build/cache/")
    assert "GOPROXY" not in env  # the app's config reaches the build through the driver, unchanged
    (step,) = stage["steps"]
    assert step["run"][-1] == ["go", "build", "-trimpath", "-o", "/app/bin/gohello", "."]
    assert go.skiff_buildpack_processes("go", build) == {"web": "gohello"}


def test_app_goflags_mod_setting_wins_and_no_vendor_means_goproxy(tmp_path):
    write(tmp_path, {"go.mod": "module example.com/x\ngo 1.22\nrequire example.com/y v1.0.0\n", "main.go": MAIN})
    build = make_build(tmp_path, config={"GOFLAGS": "-mod=mod"})
    deps = go.skiff_buildpack_dependencies("go", build)
    assert any("come from GOPROXY" in n for n in deps["notes"])
    assert go.skiff_buildpack_compile("go", build)["stage"]["env"]["GOFLAGS"] == "-mod=mod"
    write(tmp_path, {"vendor/modules.txt": "# example.com/y v1.0.0\n"})
    assert go.skiff_buildpack_compile("go", build)["stage"]["env"]["GOFLAGS"] == "-mod=mod"


def test_gopath_app_builds_in_gopath_mode_under_its_import_path():
    build = make_build(APPS / "go-gopath")
    deps = go.skiff_buildpack_dependencies("go", build)
    assert "no go.mod: GOPATH mode (GO111MODULE=off), import path example.com/oldgo" in deps["notes"]
    stage = go.skiff_buildpack_compile("go", build)["stage"]
    assert stage["env"]["GO111MODULE"] == "off" and stage["env"]["GOPATH"] == "/tmp/gopath"
    link, compile_step = stage["steps"]
    assert link["run"][-1] == ["ln", "-s", "/app", "/tmp/gopath/src/example.com/oldgo"]
    assert compile_step["cwd"] == compile_step["env"]["PWD"] == "/tmp/gopath/src/example.com/oldgo"
    assert compile_step["run"] == [["go", "build", "-trimpath", "-o", "/app/bin/oldgo", "."]]
    assert go.skiff_buildpack_processes("go", build) == {"web": "oldgo"}


def test_gopath_app_without_import_comment_is_named_after_the_app(tmp_path):
    write(tmp_path, {"main.go": MAIN})
    assert go.inspect(make_build(tmp_path)).binaries == {"demo": ""}


def test_main_packages_skip_vendor_testdata_ignored_files_and_nested_modules(tmp_path):
    write(
        tmp_path,
        {
            "go.mod": "module example.com/multi\ngo 1.22\n",
            "lib.go": "package multi\n",
            "gen.go": "//go:build ignore\n\npackage main\n",
            "cmd/api/main.go": "/* licence\n package x */\n// doc\npackage main\n",
            "cmd/worker/main.go": MAIN,
            "cmd/worker/main_test.go": "package main\n",
            "vendor/example.com/v/main.go": MAIN,
            "vendor/modules.txt": "# example.com/v v1.0.0\n",
            "testdata/main.go": MAIN,
            "_old/main.go": MAIN,
            "tools/go.mod": "module example.com/tools\n",
            "tools/main.go": MAIN,
        },
    )
    build = make_build(tmp_path)
    app = go.inspect(build)
    assert app.binaries == {"api": "cmd/api", "worker": "cmd/worker"}
    assert go.skiff_buildpack_processes("go", build) == {}  # two binaries: the Procfile names web
    steps = go.skiff_buildpack_compile("go", build)["stage"]["steps"]
    assert [r[-1] for r in steps[0]["run"][1:]] == ["./cmd/api", "./cmd/worker"]


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"go.mod": "module example.com/lib\n", "lib.go": "package lib\n"},
            "no main package in module example.com/lib",
        ),
        ({"main.go": "package notmain\n"}, "the root package is not package main"),
        (
            {"go.mod": "module x\n", "a/app/main.go": MAIN, "b/app/main.go": MAIN},
            "two main packages would both be bin/app",
        ),
        ({"go.mod": "module x\n", "main.go": MAIN, "vendor/a/a.go": "package a\n"}, "vendor/ has no modules.txt"),
        ({"main.go": 'package main // import "../up"\n'}, "invalid import path '../up'"),
    ],
)
def test_unusable_go_sources_fail_with_one_line(tmp_path, files, message):
    write(tmp_path, files)
    with pytest.raises(SkiffError) as info:
        go.skiff_buildpack_dependencies("go", make_build(tmp_path))
    assert message in str(info.value)


def test_a_go_line_newer_than_debians_toolchain_is_refused_and_a_toolchain_line_ignored(tmp_path):
    write(tmp_path, {"go.mod": "module x\ngo 1.25\n", "main.go": MAIN})
    with pytest.raises(SkiffError) as info:
        go.skiff_buildpack_compile("go", make_build(tmp_path))
    assert "go.mod requires go 1.25, but the Go toolchain from Debian is go1.24.4" in str(info.value)
    write(tmp_path, {"go.mod": "module x\ngo 1.24\ntoolchain go1.26.0\n"})
    app = go.inspect(make_build(tmp_path))
    assert go.check_toolchain(app, "go1.24.4") == [
        "go.mod's toolchain go1.26.0 is ignored: GOTOOLCHAIN=local builds with go1.24.4"
    ]


# -- the builder's side: stages, outputs and the toolchain layer ----------------


def test_stages_are_collected_by_the_plan():
    plan = PackPlan(packs=["go"])
    plan.add_compile({"stage": {"image": "skiff/stack-go:trixie", "steps": [], "outputs": ["bin"]}})
    plan.add_compile({"steps": []})
    assert plan.stages == [{"image": "skiff/stack-go:trixie", "steps": [], "outputs": ["bin"]}]


def test_build_without_an_engine_has_no_toolchain(tmp_path):
    build = make_build(tmp_path)
    build.toolchain_loader = None
    with pytest.raises(SkiffError, match="no Docker engine"):
        build.toolchain("go", ["golang-go"], ["go", "version"])


def _tar(entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    buf.seek(0)
    return buf


def test_outputs_join_the_code_tar_with_exec_bits_and_nothing_that_climbs_out(tmp_path):
    write(tmp_path, {"main.go": MAIN})
    outputs = _tar(
        [
            ("bin", tarfile.DIRTYPE, b"", 0o755),
            ("bin/hello", tarfile.REGTYPE, b"\x7fELF", 0o4755),
            ("bin/../../etc/x", tarfile.REGTYPE, b"x", 0o644),
            ("bin/link", tarfile.SYMTYPE, b"", 0o777),
        ]
    )
    with b.code_tar(tmp_path, (), {}, 1000, 1000) as archive:
        b.add_outputs(archive, outputs, "bin", 1000, 1000)
        with tarfile.open(fileobj=archive) as tf:
            members = {m.name: m for m in tf.getmembers()}
    assert {"app/main.go", "app/bin", "app/bin/hello"} <= set(members)
    assert not any("etc" in n or "link" in n for n in members)
    hello = members["app/bin/hello"]
    assert hello.mode == 0o755 and (hello.uid, hello.gid) == (1000, 1000)


def test_toolchain_recipe_and_names_are_validated():
    with pytest.raises(SkiffError):
        toolchains.validate("go", ["golang-go; rm -rf /"], ["go", "version"])
    with pytest.raises(SkiffError):
        toolchains.validate("Go!", ["golang-go"], ["go", "version"])
    toolchains.validate("go", ["golang-go"], ["go", "env", "GOVERSION"])
    assert toolchains.recipe_key(["golang-go"], ["go", "version"]) != toolchains.recipe_key(
        ["golang"], ["go", "version"]
    )
    assert "$packages" in toolchains.SCRIPT and "golang" not in toolchains.SCRIPT  # packages are arguments


def test_toolchain_tag_is_the_stack_suite():
    stack = Stack(image="registry.example.com/skiff/stack:trixie", id="sha256:" + "ab" * 32)
    assert toolchains.suite_of({"skiff.stack": "bookworm"}, stack) == "bookworm"
    assert toolchains.suite_of({}, stack) == "trixie"
    assert toolchains.suite_of({}, Stack(image="sha256:x/y", id="sha256:" + "cd" * 32)) == "id-" + "cd" * 6


class FakeImage:
    def __init__(self, labels, tags=("skiff/stack-go:trixie",)):
        self.labels, self.tags, self.id = labels, list(tags), "sha256:goimg"


def test_a_toolchain_layer_is_reused_only_for_the_same_stack_and_recipe():
    recipe = toolchains.recipe_key(["golang-go"], ["go", "env", "GOVERSION"])
    labels = {
        "skiff.toolchain": "go",
        "skiff.toolchain.stack": TRIXIE.id,
        "skiff.toolchain.recipe": recipe,
        "skiff.toolchain.version": "go1.24.4",
    }
    found = toolchains.reusable(FakeImage(labels), "go", TRIXIE, recipe)
    assert found is not None and found.version == "go1.24.4"
    other_stack = Stack(image="skiff/stack:trixie", id="sha256:new")
    assert toolchains.reusable(FakeImage(labels), "go", other_stack, recipe) is None
    assert toolchains.reusable(FakeImage(labels), "go", TRIXIE, "other") is None
    assert toolchains.reusable(FakeImage({**labels, "skiff.toolchain.version": ""}), "go", TRIXIE, recipe) is None
