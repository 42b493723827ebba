"""Unit tests: when an app image is based on the run image, and what of a compile step reaches it."""

from __future__ import annotations

import io
import json
import tarfile
from types import SimpleNamespace

import pytest

import skiff_buildpacks.node as node
from skiff.contracts import Stash
from skiff_buildpacks import pipeline
from skiff_buildpacks.build import Stack, changed_entries
from skiff_buildpacks.plan import PackPlan

RUN = {"image": "skiff/stack-run:trixie", "id": "sha256:run", "python": "3.13.5", "node": "20.19.2", "npm": "9.2.0"}


class Lines:
    def __init__(self):
        self.lines: list[str] = []

    def step(self, line):
        self.lines.append(line)

    info = warn = step


def session(packs, described, answer, settings=None, stack_id="sha256:build"):
    calls = []

    def hook(context, image, output):
        calls.append(image)
        return answer

    out = Lines()
    s = SimpleNamespace(
        deploy=SimpleNamespace(context="ctx", output=out),
        build=SimpleNamespace(
            stack=Stack(image="skiff/stack:trixie", id=stack_id), settings={"run-image": True, **(settings or {})}
        ),
        described=described,
        packs=packs,
        hook=SimpleNamespace(skiff_stack_run_image=hook),
    )
    return s, calls, out


OPTED = {"python": {"run_image": True}, "node": {"run_image": True}, "ruby": {}}


def test_the_run_image_is_used_when_every_pack_runs_on_it_and_it_has_what_they_need():
    answer = {**RUN, "of": "sha256:build"}
    s, calls, _ = session(["python"], OPTED, answer)
    assert pipeline.run_image(s, PackPlan(packs=["python"])) == answer
    assert calls == ["skiff/stack:trixie"]
    plan = PackPlan(packs=["node", "python"], run_needs=["node", "npm"])
    assert pipeline.run_image(session(["node", "python"], OPTED, answer)[0], plan) == answer


@pytest.mark.parametrize(
    ("packs", "settings", "answer", "why"),
    [
        (["ruby"], {}, {**RUN, "of": "sha256:build"}, "a pack that needs its toolchain at run time"),
        (["python", "ruby"], {}, {**RUN, "of": "sha256:build"}, "one pack of two does not opt in"),
        (["python"], {"run-image": False}, {**RUN, "of": "sha256:build"}, "buildpacks:set APP run-image false"),
        (["python"], {}, None, "no run image (a registry stack, build-on-push off)"),
        (["python"], {}, {**RUN, "of": "sha256:older"}, "derived from another build image than the deps'"),
    ],
)
def test_the_build_image_stays_the_base(packs, settings, answer, why):
    s, _, _ = session(packs, OPTED, answer, settings)
    assert pipeline.run_image(s, PackPlan(packs=packs)) is None, why


def test_a_run_image_without_what_a_pack_needs_keeps_the_app_on_the_build_image_and_says_so():
    s, _, out = session(["node"], OPTED, {**RUN, "npm": "", "of": "sha256:build"})
    assert pipeline.run_image(s, PackPlan(packs=["node"], run_needs=["node", "npm"])) is None
    assert out.lines == ["the run image skiff/stack-run:trixie has no npm: the app runs on the build image"]


def _tar(entries: dict[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_only_what_the_code_and_the_compile_steps_changed_reaches_the_run_image():
    raw = _tar(
        {
            "app": None,
            "app/server.js": b"code",
            "app/dist": None,
            "app/dist/message.txt": b"built",
            "app/node_modules": None,
            "app/node_modules/left-pad/index.js": b"unchanged dependency",
            "app/node_modules/.cache/x": b"written by the build",
        }
    )
    chunks = [raw[i : i + 700] for i in range(0, len(raw), 700)]  # the engine streams it in pieces
    changed = {"/app", "/app/server.js", "/app/dist", "/app/dist/message.txt", "/app/node_modules/.cache/x"}
    with changed_entries(chunks, changed) as result:
        with tarfile.open(fileobj=result) as tf:
            kept = {m.name: (tf.extractfile(m).read() if m.isfile() else None) for m in tf}
    assert kept == {
        "app": None,
        "app/server.js": b"code",
        "app/dist": None,
        "app/dist/message.txt": b"built",
        "app/node_modules/.cache/x": b"written by the build",
    }


def _node_app(tmp_path, package):
    (tmp_path / "package.json").write_text(json.dumps(package))
    return tmp_path


def test_a_node_app_needs_the_run_images_node_and_npm_unless_it_brings_its_own(tmp_path, node_build, closed_url):
    deps = node.skiff_buildpack_dependencies("node", node_build(_node_app(tmp_path, {"name": "x"}), closed_url))
    assert deps["run_needs"] == ["node", "npm"]
    assert node.skiff_buildpack_describe()["run_image"] is True


class _Container:
    """A build container whose ``get_archive`` waits until the commit started (they overlap)."""

    def __init__(self, archive: bytes):
        import threading

        self.archive, self.committing, self.overlapped, self.removed = archive, threading.Event(), False, False

    def put_archive(self, path, data):
        return True

    def get_archive(self, path):
        assert path == "/app"
        self.overlapped = self.committing.wait(5)
        return iter([self.archive[:100], self.archive[100:]]), {}

    def commit(self, repository, tag, changes):
        self.committing.set()
        return SimpleNamespace(id="sha256:deps")

    def remove(self, **kwargs):
        self.removed = True


def test_a_new_dependency_layers_app_is_read_from_its_build_container_while_it_is_committed(tmp_path):
    from skiff.output import Output
    from skiff_buildpacks.build import Build, ImageChanges, Runner

    archive = _tar({"app": None, "app/.venv/bin/python": b"#!", "app/requirements.txt": b"flask\n"})
    container = _Container(archive)
    client = SimpleNamespace(containers=SimpleNamespace(create=lambda image, command, **kw: container))
    stack = Stack(image="skiff/stack:trixie", id="sha256:build")
    build = Build(app="demo", source=tmp_path, config={}, stack=stack, stacks=[stack], output=Output(quiet=True))
    runner = Runner(client, build, {"trust-host-ca": False})
    image_id = runner.run(stack.image, [], {}, io.BytesIO(b""), ImageChanges(), "skiff/demo", "deps-1", export="/app")
    runner.finish()
    assert image_id == "sha256:deps" and container.overlapped and container.removed
    assert runner.exported is not None and runner.exported.read() == archive
    runner.exported.close()
    assert runner.run(stack.image, [], {}, io.BytesIO(b""), ImageChanges(), "skiff/demo", "deps-2") == "sha256:deps"


class _Engine:
    """``api.load_image`` / ``api.inspect_image`` of an engine that loads image archives (each call recorded)."""

    def __init__(self, known: dict):
        self.loads: list[list[dict]] = []
        self.ids: dict[str, str] = {}
        self.known = known
        self.api = self
        self.base_url = f"fake://{id(self)}"

    def load_image(self, data):
        with tarfile.open(fileobj=data) as tf:
            manifest = json.loads(tf.extractfile("manifest.json").read())
            configs = {m["Config"]: json.loads(tf.extractfile(m["Config"]).read()) for m in manifest}
        for entry in manifest:
            self.ids[entry["RepoTags"][0]] = "sha256:" + entry["Config"].removesuffix(".json")
        self.loads.append([{**m, "config": configs[m["Config"]]} for m in manifest])
        return iter([{"stream": "Loaded"}])

    def inspect_image(self, ref):
        return {"Id": self.ids[ref]} if ref in self.ids else self.known[ref]


def test_a_new_layers_copy_onto_the_run_image_goes_in_the_code_layers_load():
    from skiff_buildpacks import layers as image_layers
    from skiff_buildpacks.build import ImageChanges

    run_base = {
        "Id": "sha256:run",
        "Architecture": "amd64",
        "Os": "linux",
        "RootFS": {"Type": "layers", "Layers": ["sha256:" + "a" * 64]},
        "Config": {"Labels": {}},
    }
    engine = _Engine({RUN["image"]: run_base})
    app_tar = io.BytesIO(_tar({"app": None, "app/.venv/bin/python": b"#!"}))
    code = io.BytesIO(_tar({"app": None, "app/app.py": b"print()"}))
    deploy = SimpleNamespace(app="demo", output=Lines(), stash=Stash(), meta={})
    s = SimpleNamespace(client=engine, deploy=deploy)
    layer = pipeline.DepsLayer(base="skiff/demo:deps-1", image_id="sha256:deps", app_tar=app_tar)
    copy = pipeline.run_copy_image(s, layer, RUN, "run-1")
    assert copy is not None and copy.base is run_base and copy.config["config"]["Labels"] == {"skiff.deps.run": "demo"}
    loaded = pipeline.load_layer(
        s, layer, code, ImageChanges(labels={"skiff.app": "demo"}), "b1", "skiff/demo:run-1", copy
    )
    (call,) = engine.loads  # one load: the copy and the code layer on it
    assert [m["RepoTags"] for m in call] == [["skiff/demo:run-1"], ["skiff/demo:b1"]]
    assert call[1]["config"]["rootfs"]["diff_ids"][:2] == copy.config["rootfs"]["diff_ids"]
    assert loaded == engine.ids["skiff/demo:b1"] and image_layers.supported(engine)


def test_an_app_made_of_a_shared_layer_builds_on_the_sets_own_run_copy(tmp_path):
    from skiff_buildpacks import venvs

    digest = "ab" * 32
    shared = {"Id": "sha256:shared", "RootFS": {"Layers": ["sha256:s1", "sha256:s2"]}, "Config": {"Labels": {}}}
    mine = {"Id": "sha256:mine", "RootFS": {"Layers": ["sha256:s1", "sha256:s2"]}}
    mine["Config"] = {"Labels": {venvs.LABEL: digest}}
    stacked = {**mine, "Id": "sha256:stacked", "RootFS": {"Layers": ["sha256:s1", "sha256:s2", "sha256:more"]}}
    ref = f"skiff-shared/venv:run-{digest[:16]}-{'cd' * 6}"
    known = {"sha256:shared": shared, "sha256:mine": mine, "sha256:stacked": stacked, ref: {"Id": "sha256:copy"}}
    client = SimpleNamespace(api=SimpleNamespace(inspect_image=lambda r: known[r]))
    client.images = SimpleNamespace(get=lambda r: SimpleNamespace(id=known[r]["Id"]))
    stack = Stack(image="skiff/stack:trixie", id="sha256:build")
    records = venvs.SharedVenvs(tmp_path, stack.id)
    records.put(digest, "sha256:shared", [], ["flask"])
    records.put_run_copy(digest, "sha256:" + "cd" * 32, ref)
    out = Lines()
    s = SimpleNamespace(client=client, build=SimpleNamespace(cache_dir=tmp_path, stack=stack))
    s.deploy = SimpleNamespace(app="demo", output=out)
    found = pipeline.shared_source(s, pipeline.DepsLayer(base="skiff/demo:deps-1", image_id="sha256:mine"))
    assert found is not None and found[1] == digest
    # a layer installed on top of the shared one (additions) is not the set: it gets its own copy
    assert pipeline.shared_source(s, pipeline.DepsLayer(base="x", image_id="sha256:stacked")) is None
    run = {**RUN, "id": "sha256:" + "cd" * 32}
    assert pipeline.shared_run_copy(s, *found, run) == ref  # made before: nothing copied
    assert out.lines == [f"Dependencies on the run image {RUN['image']}: the shared layer's copy {digest[:12]}"]


def test_a_layer_left_without_bytecode_becomes_the_shared_layer_of_exactly_what_it_installed(tmp_path):
    from skiff_buildpacks import venvs

    flask = [{"name": "Flask", "version": "3.1.1", "tags": ["py3-none-any"]}]
    digest = venvs.pins_hash([("flask", "3.1.1")])
    layers = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    shared = {"Id": "sha256:shared", "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": layers}}
    shared["Config"] = {"Labels": {venvs.LABEL: digest}, "Env": ["PATH=/usr/bin"]}
    labels = {"skiff.deps": "demo", "skiff.deps.key": "k" * 64, "skiff.deps.lines": '{"python": ["flask"]}'}
    mine = {
        "Id": "sha256:mine",
        "RootFS": {"Layers": layers[:1] + ["sha256:" + "c" * 64]},
        "Config": {"Labels": labels},
    }
    engine = _Engine({"skiff/demo:deps-1": mine, "sha256:shared": shared})
    removed: list[str] = []
    engine.images = SimpleNamespace(remove=removed.append)
    stack = Stack(image="skiff/stack:trixie", id="sha256:build")
    venvs.SharedVenvs(tmp_path, stack.id).put(digest, "sha256:shared", ["flask-3.1.1-py3-none-any.whl"], ["flask"])
    s = SimpleNamespace(client=engine, build=SimpleNamespace(cache_dir=tmp_path, stack=stack))

    def layer(installed, image_id="sha256:mine"):
        reports = {"installed": installed, "bytecode": "deferred"}
        return pipeline.DepsLayer(base="skiff/demo:deps-1", image_id=image_id, reports=reports)

    assert layer(flask).bytecode_deferred and not pipeline.DepsLayer(base="x", image_id="y").bytecode_deferred
    # another set than the record's, or the app's image changed since the build: nothing happens
    assert pipeline.adopt_shared_layer(s, layer([{**flask[0], "version": "3.1.2"}])) is None
    assert pipeline.adopt_shared_layer(s, layer(flask, image_id="sha256:newer")) is None
    assert engine.loads == [] and removed == []

    adopted = pipeline.adopt_shared_layer(s, layer(flask))
    (call,) = engine.loads  # the app's tag on the shared layer's layers: no layer file, no copy
    assert call[0]["RepoTags"] == ["skiff/demo:deps-1"] and call[0]["Layers"] == [
        f"{'a' * 64}/layer.tar",
        f"{'b' * 64}/layer.tar",
    ]
    assert call[0]["config"]["rootfs"]["diff_ids"] == layers
    assert call[0]["config"]["config"]["Labels"] == {**labels, venvs.LABEL: digest}  # its own key, lines and depth
    assert adopted == engine.ids["skiff/demo:deps-1"] and removed == ["sha256:mine"]


def test_with_load_the_build_container_is_not_committed_unless_its_app_cannot_be_a_layer(tmp_path):
    from skiff.output import Output
    from skiff_buildpacks.build import Build, ImageChanges, Runner

    stack = Stack(image="skiff/stack:trixie", id="sha256:build")
    build = Build(app="demo", source=tmp_path, config={}, stack=stack, stacks=[stack], output=Output(quiet=True))

    def run(archive: bytes):
        container = _Container(archive)
        container.committing.set()  # get_archive does not wait here
        commits: list[str] = []
        container.commit = lambda repository, tag, changes: commits.append(tag) or SimpleNamespace(id="sha256:c")
        client = SimpleNamespace(containers=SimpleNamespace(create=lambda image, command, **kw: container))
        runner = Runner(client, build, {"trust-host-ca": False})
        args = (stack.image, [], {}, io.BytesIO(b""), ImageChanges(), "skiff/demo", "deps-1")
        result = runner.run_or_export(*args, export="/app", load=True)
        runner.finish()
        return result, runner.exported, commits, container.removed

    archive = _tar({"app": None, "app/.venv/bin/python": b"#!"})
    result, exported, commits, removed = run(archive)
    assert result is None and commits == [] and removed and exported.read() == archive
    exported.close()
    # a whiteout name in /app: committed (the export is read again beside the commit)
    result, exported, commits, removed = run(_tar({"app": None, "app/.wh.x": b""}))
    assert result == "sha256:c" and commits == ["deps-1"] and removed
    exported.close()


def test_the_dependency_image_and_the_run_copy_share_one_layer_file_in_the_load(tmp_path):
    from skiff_buildpacks import layers as image_layers
    from skiff_buildpacks.build import ImageChanges

    base = {"Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": ["sha256:" + "a" * 64]}, "Config": {}}
    run_base = {**base, "RootFS": {"Layers": ["sha256:" + "b" * 64]}}
    app_tar = io.BytesIO(_tar({"app": None, "app/.venv/bin/python": b"#!"}))
    deps = image_layers.NewImage(base, ImageChanges(labels={"skiff.deps": "demo"}), "skiff/demo", "deps-1", app_tar)
    engine = _Engine({RUN["image"]: run_base})
    s = SimpleNamespace(client=engine, deploy=SimpleNamespace(app="demo", output=Lines()))
    layer = pipeline.DepsLayer(base="skiff/demo:deps-1", image_id=deps.id, pending=deps, app_tar=app_tar)
    copy = pipeline.run_copy_image(s, layer, RUN, "run-1")
    assert copy is not None and copy.diff_id == deps.diff_id
    with image_layers.archive([deps, copy]) as data, tarfile.open(fileobj=data) as tf:
        names = tf.getnames()
    assert names.count(f"{deps.diff_id.split(':')[1]}/layer.tar") == 1


@pytest.mark.parametrize("after_code", [True, False])
def test_a_new_layers_after_install_work_starts_once_the_code_layer_is_loaded(monkeypatch, after_code):
    order: list[str] = []
    out = Lines()
    deploy = SimpleNamespace(app="demo", output=out)

    def dependency_layer(session, plan, export=False):
        layer = pipeline.DepsLayer(base="skiff/demo:deps-1", image_id="sha256:deps", built=True)
        layer.start_after = lambda: order.append("after-install")
        return layer

    monkeypatch.setattr(pipeline, "AFTER_INSTALL_AFTER_CODE", after_code)
    monkeypatch.setattr(pipeline, "start", lambda d: SimpleNamespace(deploy=d))
    monkeypatch.setattr(pipeline, "plan_dependencies", lambda session: PackPlan(packs=["python"]))
    monkeypatch.setattr(pipeline, "run_image", lambda session, plan: RUN)
    monkeypatch.setattr(pipeline, "dependency_layer", dependency_layer)
    monkeypatch.setattr(pipeline, "plan_code", lambda session, plan: None)
    monkeypatch.setattr(pipeline, "fill_default_processes", lambda d, plan: None)
    monkeypatch.setattr(pipeline, "code_layer", lambda *args: order.append("code layer") or "sha256:app")
    monkeypatch.setattr(pipeline, "record", lambda *args: None)
    assert pipeline.build_image(deploy).startswith("skiff/demo:")
    assert order == (["code layer", "after-install"] if after_code else ["after-install", "code layer"])


def test_the_after_install_work_starts_once_even_when_the_build_fails_before_its_code_layer(monkeypatch):
    started: list[int] = []
    layer = pipeline.DepsLayer(base="b", image_id="i", start_after=lambda: started.append(1))
    monkeypatch.setattr(pipeline, "start", lambda d: SimpleNamespace(deploy=d))
    monkeypatch.setattr(pipeline, "plan_dependencies", lambda session: PackPlan(packs=["python"]))
    monkeypatch.setattr(pipeline, "run_image", lambda session, plan: None)
    monkeypatch.setattr(pipeline, "dependency_layer", lambda session, plan, export=False: layer)

    def broken_procfile(session, plan):
        raise ValueError("Procfile line 2: no command")

    monkeypatch.setattr(pipeline, "plan_code", broken_procfile)
    with pytest.raises(ValueError):
        pipeline.build_image(SimpleNamespace(app="demo", output=Lines()))
    pipeline.start_after_install(layer)
    assert started == [1]
