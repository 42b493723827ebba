"""The null pack (Dokku's null buildpack): detection, explicit choice, and a plan that installs nothing."""

from pathlib import Path

import pytest

import skiff_buildpacks.node as node
import skiff_buildpacks.null as null
import skiff_buildpacks.plugin as bp
import skiff_buildpacks.python as python
import skiff_buildpacks.static as static
from skiff.deploy import Deploy
from skiff.errors import SkiffError, ValidationError
from skiff.output import Output
from skiff_buildpacks import pipeline
from skiff_buildpacks.build import Build, Stack

TRIXIE = Stack(image="skiff/stack:trixie", id="sha256:aaa", python="3.13.5", node="20.19.2")
NULL_URL = "https://github.com/ryandotsmith/null-buildpack.git"


@pytest.fixture
def h(skiff):
    harness = skiff(
        ("buildpacks", bp),
        ("buildpack-python", python),
        ("buildpack-node", node),
        ("buildpack-static", static),
        ("buildpack-null", null),
    )
    harness.create_app("demo")
    return harness


def make_build(source: Path, config=None) -> Build:
    return Build(
        app="demo", source=source, config=dict(config or {}), stack=TRIXIE, stacks=[TRIXIE], output=Output(quiet=True)
    )


def make_deploy(h, source: Path) -> Deploy:
    return Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=source
    )


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def select(h, source: Path, config=None) -> list[str]:
    return bp.select_packs(h.context, make_deploy(h, source), make_build(source, config))


def test_null_is_tried_first(h):
    names = [d["name"] for d in bp.describe_packs(h.context)]
    assert names == ["null", "python", "node", "static"]
    assert not h.pm.broken()


@pytest.mark.parametrize(
    "files",
    [
        {".null": ""},
        {"null": ""},
        {".null": "", "index.html": "x"},  # the marker wins over the static pack
        {"null": "anything", "requirements.txt": "flask\n"},  # and over the python pack
        {".null": "", "package.json": "{}"},
    ],
)
def test_detected_by_a_null_file(h, tmp_path, files):
    write(tmp_path, {"Procfile": "web: python3 -m http.server $PORT\n", **files})
    assert select(h, tmp_path) == ["null"]


def test_a_directory_or_a_symlink_named_null_is_no_marker(h, tmp_path):
    write(tmp_path, {"null/keep": "", "index.html": "x"})
    (tmp_path / ".null").symlink_to(tmp_path / "index.html")
    assert select(h, tmp_path) == ["static"]


def test_not_detected_without_a_marker(h, tmp_path):
    write(tmp_path, {"Procfile": "web: python3 -m http.server $PORT\n", "nullish": "", ".nullrc": ""})
    with pytest.raises(SkiffError) as info:
        select(h, tmp_path)
    assert "null: .null or null" in str(info.value)


@pytest.mark.parametrize(
    "line",
    [
        NULL_URL,
        "https://github.com/ryandotsmith/null-buildpack",
        "https://github.com/ryandotsmith/null-buildpack.git#v1",
        "https://github.com/someone/null-buildpack/",
        "null",
        "NULL",
    ],
)
def test_chosen_by_dotbuildpacks(h, tmp_path, line):
    write(tmp_path, {".buildpacks": f"# Dokku's null buildpack\n{line}\n", "index.html": "x"})
    assert select(h, tmp_path) == ["null"]


def test_chosen_by_buildpack_url_or_buildpacks_set(h, tmp_path):
    write(tmp_path, {"requirements.txt": "flask\n"})
    assert select(h, tmp_path, {"BUILDPACK_URL": NULL_URL}) == ["null"]
    assert h.invoke("buildpacks:set", "demo", NULL_URL).exit_code == 0
    assert h.state.get_property("buildpacks", "packs", app="demo") == "null"
    assert select(h, tmp_path) == ["null"]
    assert h.invoke("buildpacks:clear", "demo").exit_code == 0
    assert select(h, tmp_path) == ["python"]
    assert h.invoke("buildpacks:set", "demo", "null").exit_code == 0
    assert select(h, tmp_path) == ["null"]


@pytest.mark.parametrize(
    "raw", ["https://github.com/x/not-null-buildpack", "https://github.com/x/null-buildpack-extra", "null buildpack"]
)
def test_other_urls_are_not_the_null_buildpack(raw):
    with pytest.raises(ValidationError, match="invalid buildpack name"):
        bp.pack_name(raw)


def test_answers_only_for_itself(tmp_path):
    build = make_build(write(tmp_path, {".null": ""}))
    for hook in (
        null.skiff_buildpack_detect,
        null.skiff_buildpack_dependencies,
        null.skiff_buildpack_compile,
        null.skiff_buildpack_processes,
    ):
        assert hook("static", build) is None
    assert static.skiff_buildpack_detect("null", build) is None


def test_the_plan_installs_nothing_and_the_base_is_the_stack(h, tmp_path):
    """No dependency layer, no compile step, no default process: the stack plus the app's files."""
    source = write(tmp_path, {".null": "", "Procfile": "web: python3 -m http.server $PORT\n", "index.html": "hi"})
    deploy = make_deploy(h, source)
    deploy.processes = {"web": "python3 -m http.server $PORT"}
    build = make_build(source)
    build.packs = ["null"]
    session = pipeline.Session(deploy, None, build, {d["name"]: d for d in bp.describe_packs(h.context)})
    plan = pipeline.plan_dependencies(session)
    assert plan.steps == [] and plan.files == [] and plan.generated == {} and plan.exclude == []
    layer = pipeline.dependency_layer(session, plan)  # no engine call: client is None
    assert (layer.base, layer.image_id, layer.built) == (TRIXIE.image, TRIXIE.id, False)
    pipeline.plan_code(session, plan)
    assert plan.compile_steps == [] and plan.compile_files == {} and plan.processes == {}
    pipeline.fill_default_processes(deploy, plan)
    assert deploy.processes == {"web": "python3 -m http.server $PORT"}
    assert plan.image_env(TRIXIE.path) == {"PATH": TRIXIE.path, "PORT": "5000"}
