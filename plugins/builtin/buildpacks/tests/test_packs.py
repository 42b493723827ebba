"""Unit tests of the packs and the builder's pure parts (no Docker)."""

import io
import json
import tarfile
from pathlib import Path

import pytest

import skiff_buildpacks.node as node
import skiff_buildpacks.plugin as bp
import skiff_buildpacks.python as python
import skiff_buildpacks.static as static
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.output import Output
from skiff_buildpacks import build as b
from skiff_buildpacks.build import Build, Progress, Stack
from skiff_buildpacks.stacks import parse_requested, version_satisfies

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
TRIXIE = Stack(image="skiff/stack:trixie", id="sha256:aaa", python="3.13.5", node="20.19.2")
BOOKWORM = Stack(image="skiff/stack:bookworm", id="sha256:bbb", python="3.11.2", node="18.19.0")


def make_build(source: Path, config=None, stacks=(TRIXIE,)) -> Build:
    return Build(
        app="demo",
        source=source,
        config=dict(config or {}),
        stack=stacks[0],
        stacks=list(stacks),
        output=Output(quiet=True),
    )


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def h(skiff):
    harness = skiff(
        ("buildpacks", bp), ("buildpack-python", python), ("buildpack-node", node), ("buildpack-static", static)
    )
    harness.create_app("demo")
    return harness


def test_packs_declare_their_hooks_through_addhooks(h):
    names = [d["name"] for d in bp.describe_packs(h.context)]
    assert names == ["python", "node", "static"]
    assert not h.pm.broken()


@pytest.mark.parametrize(
    "app, pack", [("flask", "python"), ("node", "node"), ("static", "static"), ("two-managers", "python")]
)
def test_detection(h, app, pack):
    deploy = Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=APPS / app
    )
    assert bp.select_packs(h.context, deploy, make_build(APPS / app)) == [pack]


def test_nothing_detected_lists_what_each_pack_looks_for(h, tmp_path):
    write(tmp_path, {"README": "nothing to build"})
    deploy = Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=tmp_path
    )
    with pytest.raises(SkiffError) as info:
        bp.select_packs(h.context, deploy, make_build(tmp_path))
    message = str(info.value)
    assert "no buildpack detected" in message
    assert "python: requirements.txt" in message and "node: package.json" in message and "static: index.html" in message


def test_explicit_packs_from_dotbuildpacks_config_and_property(h, tmp_path):
    write(
        tmp_path, {".buildpacks": "https://github.com/heroku/heroku-buildpack-nodejs.git\npython\n", "index.html": "x"}
    )
    deploy = Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=tmp_path
    )
    assert bp.select_packs(h.context, deploy, make_build(tmp_path)) == ["node", "python"]
    assert bp.select_packs(h.context, deploy, make_build(tmp_path, {"BUILDPACK": "static"})) == ["static"]
    assert h.invoke("buildpacks:set", "demo", "packs", "python").exit_code == 0
    assert bp.select_packs(h.context, deploy, make_build(tmp_path, {"BUILDPACK": "static"})) == ["python"]
    result = h.invoke("buildpacks:set", "demo", "packs", "cobol")
    assert result.exit_code == 1 and "unknown buildpack 'cobol'" in result.stderr
    assert h.invoke("buildpacks:set", "demo", "packs").exit_code == 0  # reset
    with pytest.raises(SkiffError, match="unknown buildpack 'ruby'"):
        bp.select_packs(h.context, deploy, make_build(tmp_path, {"BUILDPACK": "ruby"}))


def test_two_package_managers_is_an_error_naming_them():
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", make_build(APPS / "two-managers"))
    assert "more than one Python package manager file: requirements.txt, Pipfile.lock" in str(info.value)


def test_requirements_steps_use_venv_without_pip_and_the_stack_pip():
    deps = python.skiff_buildpack_dependencies("python", make_build(APPS / "flask"))
    assert deps["files"] == ["requirements.txt"]
    (step,) = deps["steps"]
    venv, install, compile_all = step["run"]
    assert "--no-compile" in install and compile_all[1:6] == ["-m", "compileall", "-q", "-j", "0"]
    assert venv == ["python3", "-m", "venv", "--without-pip", "/app/.venv"]
    assert install[:5] == ["python3", "-m", "pip", "--python", "/app/.venv/bin/python"]
    assert step["env"]["PIP_CACHE_DIR"] == "/build/cache/pip"
    assert deps["runtime_env"]["PYTHONUNBUFFERED"] == "1"


def test_included_requirement_files_are_part_of_the_key(tmp_path):
    write(
        tmp_path,
        {
            "requirements.txt": "-r requirements/base.txt\n",
            "requirements/base.txt": "-c constraints.txt\nflask\n",
            "requirements/constraints.txt": "flask<4\n",
        },
    )
    deps = python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert sorted(deps["files"]) == ["requirements.txt", "requirements/base.txt", "requirements/constraints.txt"]


@pytest.mark.parametrize(
    "requested, ok",
    [("3", True), ("3.13", True), ("3.13.5", True), ("3.13.x", True), ("3.12", False), ("3.13.4", False), ("4", False)],
)
def test_version_satisfies(requested, ok):
    assert version_satisfies("3.13.5", requested) is ok


def test_parse_requested_reads_python_version_and_runtime_txt():
    assert parse_requested("# pinned\n3.13\n") == "3.13"
    assert parse_requested("python-3.13.5\n") == "3.13.5"


def test_python_version_picks_a_stack_or_fails_naming_both(tmp_path):
    write(tmp_path, {"requirements.txt": "flask\n", ".python-version": "3.11\n"})
    build = make_build(tmp_path, stacks=(TRIXIE, BOOKWORM))
    deps = python.skiff_buildpack_dependencies("python", build)
    assert build.stack is BOOKWORM and "3.11.2" in deps["notes"][0]
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert ".python-version requests Python 3.11" in str(info.value)
    assert "3.13.5 (skiff/stack:trixie)" in str(info.value)


def test_pipfile_lock_to_requirements():
    text = json.dumps(
        {
            "default": {
                "flask": {"version": "==3.1.1"},
                "colorama": {"version": "==0.4.6", "markers": "sys_platform == 'win32'"},
            },
            "develop": {"pytest": {"version": "==8"}},
        }
    )
    assert python.pipfile_requirements(text) == ["colorama==0.4.6 ; sys_platform == 'win32'", "flask==3.1.1"]


def test_poetry_lock_to_requirements_main_group_only():
    text = """
[[package]]
name = "flask"
version = "3.1.1"
groups = ["main"]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]

[[package]]
name = "click"
version = "8.1.8"
category = "main"
markers = "python_version >= '3.8'"
"""
    assert python.poetry_requirements(text) == ["click==8.1.8 ; python_version >= '3.8'", "flask==3.1.1"]


def test_uv_lock_to_requirements_walks_runtime_dependencies():
    text = """
version = 1

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "flask" }]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "flask"
version = "3.1.1"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "click" }, { name = "colorama", marker = "sys_platform == 'win32'" }]

[[package]]
name = "click"
version = "8.1.8"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }
"""
    assert python.uv_requirements(text) == ["click==8.1.8", "colorama==0.4.6 ; sys_platform == 'win32'", "flask==3.1.1"]


def test_lockfile_deps_use_a_generated_requirements_file(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname='demo'\n",
            "poetry.lock": '[[package]]\nname = "flask"\nversion = "3.1.1"\ngroups = ["main"]\n',
        },
    )
    deps = python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert deps["files"] == ["poetry.lock"]
    assert deps["generated"] == {".skiff/requirements.txt": b"flask==3.1.1\n"}
    write(tmp_path, {"uv.lock": "version = 1\n"})
    with pytest.raises(SkiffError, match="more than one Python package manager file: uv.lock, poetry.lock"):
        python.skiff_buildpack_dependencies("python", make_build(tmp_path))


def test_pyproject_without_lock_is_an_error(tmp_path):
    write(tmp_path, {"pyproject.toml": "[project]\nname='demo'\n"})
    with pytest.raises(SkiffError, match="pyproject.toml without uv.lock or poetry.lock"):
        python.skiff_buildpack_dependencies("python", make_build(tmp_path))


def test_django_collectstatic_unless_disabled(tmp_path):
    write(tmp_path, {"manage.py": "", "requirements.txt": "django\n", "bin/post_compile": "echo hi\n"})
    steps = python.skiff_buildpack_compile("python", make_build(tmp_path))["steps"]
    assert [s["title"] for s in steps] == ["Running bin/post_compile", "Running manage.py collectstatic --noinput"]
    assert steps[1]["check"][-1] == "import django"
    steps = python.skiff_buildpack_compile("python", make_build(tmp_path, {"DISABLE_COLLECTSTATIC": "1"}))["steps"]
    assert [s["title"] for s in steps] == ["Running bin/post_compile"]


def test_node_pack(tmp_path):
    deps = node.skiff_buildpack_dependencies("node", make_build(APPS / "node"))
    assert deps["files"] == ["package.json", "package-lock.json"]
    assert deps["steps"][0]["run"][0][:2] == ["npm", "ci"]
    assert node.skiff_buildpack_compile("node", make_build(APPS / "node"))["steps"][0]["run"] == [
        ["npm", "run", "build"]
    ]
    assert node.skiff_buildpack_processes("node", make_build(APPS / "node")) == {"web": "npm start"}
    write(tmp_path, {"package.json": "{}", "bun.lockb": ""})
    with pytest.raises(SkiffError, match="bun.lockb found: bun is not supported"):
        node.skiff_buildpack_dependencies("node", make_build(tmp_path))
    (tmp_path / "bun.lockb").unlink()
    deps = node.skiff_buildpack_dependencies("node", make_build(tmp_path))
    assert deps["steps"][0]["run"][0][:2] == ["npm", "install"]


def test_static_pack_serves_public_or_root(tmp_path):
    assert static.skiff_buildpack_processes("static", make_build(APPS / "static"))["web"].endswith(" /app/public")
    write(tmp_path, {"index.html": "x"})
    assert static.skiff_buildpack_processes("static", make_build(tmp_path))["web"].endswith(" /app")


def test_packs_answer_only_for_themselves():
    build = make_build(APPS / "flask")
    assert node.skiff_buildpack_detect("python", build) is None
    assert python.skiff_buildpack_dependencies("node", build) is None


def test_dependency_key_changes_with_dependency_files_only(tmp_path):
    src = write(tmp_path / "a", {"requirements.txt": "flask\n", "app.py": "1"})
    build = make_build(src)
    deps = python.skiff_buildpack_dependencies("python", build)
    args = ([("python", "1")], deps["files"], deps["generated"], deps["steps"], {"PATH": "/x"})
    key = b.hash_key(build, *args)
    (src / "app.py").write_text("2")
    assert b.hash_key(build, *args) == key
    (src / "requirements.txt").write_text("flask\ngunicorn\n")
    assert b.hash_key(build, *args) != key
    assert b.hash_key(make_build(src, {"PIP_INDEX_URL": "http://x"}), *args) != b.hash_key(build, *args)
    assert b.hash_key(make_build(src, {"GREETING": "hi"}), *args) == b.hash_key(build, *args)


def test_code_tar_is_owned_by_the_app_user_and_skips_git(tmp_path):
    src = write(tmp_path, {"app.py": "x", ".git/HEAD": "ref", "node_modules/x/index.js": "", "lib/a.py": ""})
    with b.code_tar(src, ["node_modules"], {".skiff/extra.py": b"print()"}, 1000, 1000, tmpdir=tmp_path) as archive:
        with tarfile.open(fileobj=archive) as tf:
            members = {m.name: m for m in tf.getmembers()}
    assert "app/app.py" in members and "app/lib/a.py" in members and "app/.skiff/extra.py" in members
    assert not any(n.startswith("app/.git") or n.startswith("app/node_modules") for n in members)
    assert all(m.uid == 1000 and m.gid == 1000 for m in members.values())


def test_code_tar_is_a_temporary_file_the_driver_entries_are_appended_to(tmp_path):
    src = write(tmp_path / "src", {"app.py": "x" * 5000, "requirements.txt": "flask\n"})
    spool = tmp_path / "spool"
    spool.mkdir()
    with b.code_tar(src, (), {}, 1000, 1000, only=["requirements.txt"], tmpdir=spool) as archive:
        assert not isinstance(archive, io.BytesIO) and archive.tell() == 0
        assert list(spool.iterdir()) == []  # unlinked at once: nothing left behind if the build dies
        b.with_entries(archive, b.driver_archive({"steps": []}, 1000, 1000))
        assert archive.tell() == 0 and b.archive_size(archive) % 512 == 0
        with tarfile.open(fileobj=archive) as tf:
            names = tf.getnames()
            plan = json.loads(tf.extractfile("build/skiff/plan.json").read())
    assert names[:2] == ["app", "app/requirements.txt"] and "app/app.py" not in names
    assert {"build", "build/skiff", "build/skiff/driver.py", "build/skiff/plan.json"} <= set(names)
    assert plan == {"steps": []}


def test_code_tar_of_a_large_source_does_not_sit_in_memory(tmp_path):
    import tracemalloc

    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as f:
        f.truncate(64 * 1024**2)  # sparse: 64 MiB of zeros
    tracemalloc.start()
    try:
        with b.code_tar(src, (), {}, 1000, 1000, tmpdir=tmp_path) as archive:
            size = b.archive_size(archive)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 64 * 1024**2
    assert peak < 8 * 1024**2, peak


def test_progress_turns_markers_into_steps_and_indents_output():
    out = io.StringIO()
    p = Progress(Output(stream=out))
    p.feed(b'\x1e{"step": "Installing dependencies with pip"}\nCollecting flask\n')
    p.feed(b'Downloading 10%\r50%\r100%\n\x1e{"done": "x", "seconds": 1.234}\n\x1e{"fail": "y", "code": 2}\n')
    p.close()
    assert out.getvalue().splitlines() == [
        "-----> Installing dependencies with pip",
        "       Collecting flask",
        "       100%",
        "       done in 1.2s",
    ]
    assert p.failed == ("y", 2)


def test_buildpacks_set_settings(h):
    assert h.invoke("buildpacks:set", "--global", "trust-host-ca", "false").exit_code == 0
    assert bp.settings(h.context, "demo")["trust-host-ca"] is False
    assert h.invoke("buildpacks:set", "demo", "trust-host-ca", "true").exit_code == 0
    assert bp.settings(h.context, "demo")["trust-host-ca"] is True
    r = h.invoke("buildpacks:set", "demo", "ca-bundle", "/etc/hosts")
    assert r.exit_code == 1 and "ca-bundle can only be set with --global" in r.stderr
    r = h.invoke("buildpacks:set", "--global", "ca-bundle", "relative.pem")
    assert r.exit_code == 1 and "absolute path" in r.stderr
    r = h.invoke("buildpacks:set", "--global", "trust-host-ca", "maybe")
    assert r.exit_code == 1 and "must be true or false" in r.stderr
    assert "python" in h.invoke("buildpacks:list").stdout


class FakeImage:
    def __init__(self, labels, created="2026"):
        self.labels, self.attrs, self.id = labels, {"Created": created}, "sha256:prev"


class FakeClient:
    def __init__(self, images):
        self.images = self
        self._images = images

    def list(self, filters=None):
        return self._images


@pytest.mark.parametrize(
    "old, new, depth, expected",
    [
        (["flask"], ["flask", "six"], "0", True),  # added: build on top
        (["flask"], ["flask"], "0", True),  # only comments/order changed
        (["flask", "six"], ["flask"], "0", False),  # removed: fresh layer
        (["flask==3.1"], ["flask==3.2"], "0", False),  # changed pin: fresh layer
        (["flask"], ["flask", "six"], "2", False),  # deep enough: fresh layer
    ],
)
def test_previous_layer_only_for_additions(old, new, depth, expected):
    labels = {"skiff.deps.compat": "c", "skiff.deps.depth": depth, "skiff.deps.lines": json.dumps({"python": old})}
    client = FakeClient([FakeImage(labels)])
    assert (b.previous_layer(client, "demo", "c", {"python": new}) is not None) is expected
    assert b.previous_layer(client, "demo", "other-stack-or-steps", {"python": new}) is None


def test_symlinks_never_lead_outside_the_source(tmp_path):
    src = write(tmp_path / "src", {"requirements.txt": "-r reqs/secret\n"})
    outside = write(tmp_path / "outside", {"secret": "host secret\n"})
    (src / "reqs").symlink_to(outside)
    build = make_build(src)
    assert not build.has("reqs/secret")
    with pytest.raises(SkiffError, match="requirements file reqs/secret is missing or outside the app"):
        python.skiff_buildpack_dependencies("python", build)
    (src / "requirements.txt").unlink()
    (src / "requirements.txt").symlink_to(outside / "secret")
    assert not build.has("requirements.txt")
    with pytest.raises(SkiffError):
        build.read("requirements.txt")


def test_host_ca_is_mounted_read_only_unless_turned_off(tmp_path):
    build = make_build(APPS / "flask")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    on = b.Runner(None, build, {"trust-host-ca": True, "ca-bundle": str(ca)})
    mounts = {m["Target"]: m for m in on._mounts()}
    assert mounts["/build/ca-certificates.crt"]["Source"] == str(ca)
    assert mounts["/build/ca-certificates.crt"]["ReadOnly"] is True
    assert mounts["/build/cache"]["Type"] == "volume" and mounts["/build/cache"]["Source"] == "skiff-cache-demo"
    assert on._plan([], {})["ca"] == "/build/ca-certificates.crt"
    off = b.Runner(None, build, {"trust-host-ca": False, "ca-bundle": str(ca)})
    assert "/build/ca-certificates.crt" not in {m["Target"] for m in off._mounts()}
    assert off._plan([], {})["ca"] is None


@pytest.mark.parametrize(
    "requested, ok",
    [
        ("20", True),
        ("20.x", True),
        (">=18", True),
        (">=18 <21", True),
        ("^20.1", True),
        ("~20.19", True),
        ("20.19.2", True),
        ("18 || 20", True),
        ("*", True),
        (">=22", False),
        ("^18", False),
        ("~20.18", False),
        ("<20", False),
        ("18.x", False),
    ],
)
def test_node_engine_ranges(requested, ok):
    from skiff_buildpacks.versions import node_satisfies

    assert node_satisfies("20.19.2", requested) is ok


def test_node_engines_keep_the_stack_and_ask_the_registry(tmp_path):
    """engines.node no longer switches stacks: a release from the registry is installed (test_node_versions.py)."""
    write(tmp_path / "src", {"package.json": json.dumps({"engines": {"node": "18.x"}}), "package-lock.json": "{}"})
    build = make_build(tmp_path / "src", stacks=(TRIXIE, BOOKWORM))
    build.cache_dir, build.settings = tmp_path / "cache", {"node-registry": "http://127.0.0.1:9"}
    with pytest.raises(
        SkiffError, match=r'unreachable .* no Node.js cached on this server matches engines.node "18.x"'
    ):
        node.skiff_buildpack_dependencies("node", build)
    assert build.stack is TRIXIE
    write(tmp_path / "src", {"package.json": json.dumps({"engines": {"node": "20.x"}})})
    deps = node.skiff_buildpack_dependencies("node", build)
    assert build.stack is TRIXIE and "20.19.2 from the stack" in deps["notes"][0]


def test_dokku_style_pack_commands(h, tmp_path):
    assert h.invoke("buildpacks:set", "demo", "https://github.com/heroku/heroku-buildpack-nodejs.git").exit_code == 0
    assert h.invoke("buildpacks:list", "demo").stdout.split()[-1] == "node"
    assert h.invoke("buildpacks:add", "demo", "python").exit_code == 0
    r = h.invoke("buildpacks:add", "demo", "python")
    assert r.exit_code == 1 and "already uses the python buildpack" in r.stderr
    assert h.state.get_property("buildpacks", "packs", app="demo") == "node,python"
    assert h.invoke("buildpacks:remove", "demo", "node").exit_code == 0
    assert h.state.get_property("buildpacks", "packs", app="demo") == "python"
    r = h.invoke("buildpacks:add", "demo", "cobol")
    assert r.exit_code == 1 and "unknown buildpack 'cobol'" in r.stderr
    assert h.invoke("buildpacks:clear", "demo").exit_code == 0
    assert h.state.get_property("buildpacks", "packs", app="demo") is None
    write(tmp_path, {"index.html": "x"})
    deploy = Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=tmp_path
    )
    assert bp.select_packs(h.context, deploy, make_build(tmp_path, {"BUILDPACK_URL": "python"})) == ["python"]


@pytest.mark.parametrize(
    "files, note",
    [
        ({".python-version": "3.13\n"}, "Using Python 3.13.5 (.python-version 3.13)"),
        ({"runtime.txt": "python-3.13.x\n"}, "Using Python 3.13.5 (runtime.txt 3.13)"),
        ({"Pipfile": '[requires]\npython_version = "3.13"\n'}, "Using Python 3.13.5 (Pipfile python_version 3.13)"),
        ({"pyproject.toml": '[project]\nrequires-python = ">=3.10,<3.14"\n'}, "(pyproject.toml requires-python"),
    ],
)
def test_python_version_files(tmp_path, files, note):
    write(tmp_path, files)
    chosen, warnings = python.choose_stack(make_build(tmp_path))
    assert chosen is not None and note in chosen and warnings == []


def test_requires_python_picks_the_newest_and_precedence_warns(tmp_path):
    write(tmp_path, {"requirements.txt": "", "pyproject.toml": '[project]\nrequires-python = "~=3.11"\n'})
    build = make_build(tmp_path, stacks=(BOOKWORM, TRIXIE))
    python.skiff_buildpack_dependencies("python", build)
    assert build.stack is TRIXIE
    write(tmp_path, {".python-version": "3.11\n", "runtime.txt": "python-3.13.5\n"})
    build = make_build(tmp_path, stacks=(TRIXIE, BOOKWORM))
    deps = python.skiff_buildpack_dependencies("python", build)
    assert build.stack is BOOKWORM and "(.python-version 3.11)" in deps["notes"][0]
    assert any("runtime.txt 3.13.5 disagrees with .python-version 3.11" in w for w in deps["warnings"])


def test_patch_pin_gets_the_same_minor_with_a_warning(tmp_path):
    write(tmp_path, {"requirements.txt": "", "runtime.txt": "python-3.13.9\n"})
    deps = python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert "Using Python 3.13.5" in deps["notes"][0] and "same minor" in deps["warnings"][0]


def test_missing_minor_fails_unless_accept_newer(tmp_path):
    write(tmp_path, {"requirements.txt": "", "runtime.txt": "python-3.12.0\n"})
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert "runtime.txt requests Python 3.12.0, but no stack has it; available: 3.13.5" in str(info.value)
    assert "python-accept-newer" in str(info.value) and "\n" not in str(info.value)
    build = make_build(tmp_path)
    build.settings = {"python-accept-newer": True}
    deps = python.skiff_buildpack_dependencies("python", build)
    assert "Using Python 3.13.5" in deps["notes"][0] and "nearest newer" in deps["warnings"][0]


@pytest.mark.parametrize(
    "files, message",
    [
        ({".python-version": "garbage\n"}, ".python-version: 'garbage' is not a Python version"),
        ({"runtime.txt": "ruby-3.2\n"}, "runtime.txt: 'ruby-3.2' is not a Python runtime"),
        ({"pyproject.toml": '[project]\nrequires-python = "3.x"\n'}, "is not a version specifier"),
    ],
)
def test_bad_python_version_input_is_one_clear_line(tmp_path, files, message):
    write(tmp_path, {"requirements.txt": "", **files})
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", make_build(tmp_path))
    assert message in str(info.value)


@pytest.mark.parametrize(
    "spec, ok",
    [
        (">=3.11", True),
        (">=3.10,<3.14", True),
        ("~=3.11", True),
        ("==3.13.*", True),
        ("<3.13", False),
        ("==3.12.*", False),
        ("~=3.13.6", False),
    ],
)
def test_specifier_allows(spec, ok):
    from skiff_buildpacks.versions import specifier_allows

    assert specifier_allows(spec, "3.13.5") is ok


def test_every_buildpack_hook_answers_through_the_plugin_manager(h):
    """Each hook of skiff_buildpacks.hookspecs, called as the plugin calls it: pm.hook.skiff_buildpack_*()."""
    hook = h.context.hook
    described = hook.skiff_buildpack_describe()
    assert sorted(d["name"] for d in described) == ["node", "python", "static"]
    assert all(d["looks_for"] and "version" in d for d in described)
    node_app, flask_app = make_build(APPS / "node"), make_build(APPS / "flask")
    assert hook.skiff_buildpack_detect(pack="node", build=node_app) is True
    assert not hook.skiff_buildpack_detect(pack="python", build=node_app)
    assert hook.skiff_buildpack_detect(pack="python", build=flask_app) is True
    deps = hook.skiff_buildpack_dependencies(pack="node", build=node_app)
    assert deps["files"] == ["package.json", "package-lock.json"]
    assert hook.skiff_buildpack_dependencies(pack="python", build=flask_app)["files"] == ["requirements.txt"]
    compiled = hook.skiff_buildpack_compile(pack="node", build=node_app)
    assert compiled["steps"][0]["run"] == [["npm", "run", "build"]]
    assert hook.skiff_buildpack_processes(pack="node", build=node_app) == {"web": "npm start"}
    assert hook.skiff_buildpack_processes(pack="static", build=make_build(APPS / "static"))["web"].endswith(
        " /app/public"
    )


FORKY_LATER = Stack(image="skiff/stack:forky", id="", python="3.14", buildable=True)
BOOKWORM_LATER = Stack(image="skiff/stack:bookworm", id="", python="3.11", buildable=True)
FORKY = Stack(image="skiff/stack:forky", id="sha256:fff", python="3.14.2", node="20.19.2")


def build_with_buildable(source, stacks, built):
    """A build whose ensurer 'builds' a buildable stack (records it) and returns the built one."""
    build = make_build(source, stacks=stacks)
    build.settings["python-installer"] = "pip"  # no server cache here for uv; the stack is what is tested
    made = []

    def ensurer(stack):
        made.append(stack.image)
        return built[stack.image]

    build.stack_ensurer = ensurer
    return build, made


@pytest.mark.parametrize(
    ("files", "warning"),
    [
        ({".python-version": "3.14\n"}, None),
        (
            {"runtime.txt": "python-3.14.9\n"},
            "runtime.txt 3.14.9: no stack has Python 3.14.9; using 3.14.2 (same minor version)",
        ),
    ],
)
def test_a_python_only_a_buildable_suite_has_builds_that_stack(tmp_path, files, warning):
    write(tmp_path, {"requirements.txt": "", **files})
    build, made = build_with_buildable(tmp_path, (TRIXIE, FORKY_LATER), {FORKY.image: FORKY})
    deps = python.skiff_buildpack_dependencies("python", build)
    assert made == ["skiff/stack:forky"] and build.stack is FORKY
    assert deps["notes"][0].startswith("Using Python 3.14.2 on stack skiff/stack:forky")
    assert deps.get("warnings", []) == ([] if warning is None else [warning])
    assert build.available_stacks() == [TRIXIE, FORKY]  # the built stack replaces the buildable one


def test_built_stacks_are_preferred_over_buildable_ones(tmp_path):
    write(tmp_path, {"requirements.txt": "", "pyproject.toml": '[project]\nrequires-python = ">=3.11"\n'})
    build, made = build_with_buildable(tmp_path, (TRIXIE, FORKY_LATER, BOOKWORM_LATER), {})
    python.skiff_buildpack_dependencies("python", build)
    assert made == [] and build.stack is TRIXIE  # a specifier never triggers a build when a built stack fits
    write(tmp_path, {"pyproject.toml": '[project]\nrequires-python = ">=3.14"\n'})
    build, made = build_with_buildable(tmp_path, (TRIXIE, FORKY_LATER), {FORKY.image: FORKY})
    python.skiff_buildpack_dependencies("python", build)
    assert made == ["skiff/stack:forky"] and build.stack is FORKY
    # accept-newer for 3.12: the nearest newer minor is the built 3.13, not a build of 3.14
    write(tmp_path, {"runtime.txt": "python-3.12.0\n"})
    (tmp_path / "pyproject.toml").unlink()
    build, made = build_with_buildable(tmp_path, (TRIXIE, FORKY_LATER), {})
    build.settings = {python.ACCEPT_NEWER: True}
    deps = python.skiff_buildpack_dependencies("python", build)
    assert made == [] and build.stack is TRIXIE and "nearest newer, 3.13.5" in deps["warnings"][0]


def test_a_minor_no_suite_has_lists_the_buildable_stacks(tmp_path):
    write(tmp_path, {"requirements.txt": "", "runtime.txt": "python-3.12.0\n"})
    build, made = build_with_buildable(tmp_path, (TRIXIE, BOOKWORM_LATER, FORKY_LATER), {})
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", build)
    assert str(info.value).startswith(
        "runtime.txt requests Python 3.12.0, but no stack has it; available: 3.13.5 (skiff/stack:trixie), "
        "3.11 (skiff/stack:bookworm, built on first use), 3.14 (skiff/stack:forky, built on first use); "
        "set 'buildpacks:set APP python-accept-newer true' to use 3.13.5"
    )
    assert made == []


def test_a_buildable_stack_without_an_ensurer_is_one_line(tmp_path):
    write(tmp_path, {"requirements.txt": "", ".python-version": "3.14\n"})
    with pytest.raises(SkiffError) as info:
        python.skiff_buildpack_dependencies("python", make_build(tmp_path, stacks=(TRIXIE, FORKY_LATER)))
    assert str(info.value) == "the stack skiff/stack:forky is not built: run 'skiff stack:build'"
