import hashlib
import threading
import time

import pytest

import skiff_stack.plugin as stack_plugin
from skiff.errors import SkiffError
from skiff_stack import build, ensure, run


def test_find_mirror_reads_deb822_and_one_line_sources(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bookworm\n"
    )
    (d / "other.list").write_text("deb https://packages.example.com/apt stable main\n")
    assert build.find_mirror(d, tmp_path / "missing") == "http://mirror.example.org/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://ftp.example.net/debian/ trixie main\n")
    assert build.find_mirror(d, tmp_path / "sources.list") == "http://ftp.example.net/debian"
    assert build.find_mirror(tmp_path / "none", tmp_path / "none") == build.DEFAULT_MIRROR


@pytest.mark.parametrize("suite", ["trixie", "bookworm", "sid"])
def test_valid_suites(suite):
    assert build.validate_suite(suite) == suite


@pytest.mark.parametrize("suite", ["", "Trixie", "../x", "trixie;rm", "a"])
def test_invalid_suites(suite):
    with pytest.raises(SkiffError):
        build.validate_suite(suite)


def test_stack_dockerfile_installs_node_and_a_non_root_user():
    text = build.dockerfile("trixie", "skiff/stack-base:trixie")
    assert "nodejs" in text and "npm" in text and "useradd --uid 1000" in text
    assert "nodejs" not in build.BASE_PACKAGES  # npm does not configure inside debootstrap


def test_stack_set_global_image(skiff):
    h = skiff(("stack", stack_plugin))
    assert stack_plugin.stack_image(h.context) == "skiff/stack:trixie"
    r = h.invoke("stack:set", "image", "x")
    assert r.exit_code == 1 and "--global" in r.stderr
    assert h.invoke("stack:set", "--global", "image", "registry.example.com/stack:1").exit_code == 0
    assert h.state.get_property("stack", "image") == "registry.example.com/stack:1"
    r = h.invoke("stack:set", "--global", "image", "bad name;")
    assert r.exit_code == 1 and "invalid image name" in r.stderr
    r = h.invoke("stack:set", "--global", "colour", "blue")
    assert r.exit_code == 1 and "unknown stack property" in r.stderr
    assert h.invoke("stack:set", "--global", "image").exit_code == 0
    assert stack_plugin.stack_image(h.context) == "skiff/stack:trixie"


@pytest.mark.e2e
def test_stack_image_has_python_node_and_the_app_user(stack_image, docker_client):
    image = docker_client.images.get(stack_image)
    labels = image.labels
    assert labels["skiff.stack"] == "trixie" and labels["skiff.stack.python"].startswith("3.13")
    assert labels["skiff.stack.node"].split(".")[0] >= "18"
    out = (
        docker_client.containers.run(stack_image, ["sh", "-c", "id -u app; node --version; npm --version"], remove=True)
        .decode()
        .split()
    )
    assert out[0] == "1000" and out[1].startswith("v")


@pytest.mark.e2e
def test_stack_build_is_a_no_op_when_the_tag_exists(skiff, stack_image):
    h = skiff(("stack", stack_plugin))
    r = h.invoke("stack:build")
    assert r.exit_code == 0 and "already exists; nothing to do" in r.stdout
    report = h.invoke("stack:report", "--format", "json")
    assert report.exit_code == 0 and '"present": true' in report.stdout


# What each suite's stack recipe renders to, for STACK_VERSION. A change here without a bump of
# build.STACK_VERSION would keep servers on stacks of the old recipe forever: bump it, then update these.
RECIPE_DIGESTS = {
    "1": {
        "bookworm": "106d9007dd054b210275a32d9286117f7b637ef023d57c758e5cb3b10b79902c",
        "trixie": "7525e3ecc518ec4b1c735ad935735c2de35f3d4d321b18de6d2d8327f2535362",
        "forky": "f3459af4850d87af0937101f0dae8feea4f9e00a84afbcd5f949747de697f2c9",
    }
}


def _digest(suite):
    return hashlib.sha256(build.dockerfile(suite, f"skiff/stack-base:{suite}").encode()).hexdigest()


def test_a_changed_stack_recipe_needs_a_new_recipe_version():
    pinned = RECIPE_DIGESTS.get(build.STACK_VERSION)
    assert pinned, f"bump done: add the digests of recipe {build.STACK_VERSION} to RECIPE_DIGESTS"
    assert {suite: _digest(suite) for suite in build.SUITES} == pinned, (
        "the stack recipe changed: bump build.STACK_VERSION (servers rebuild their stacks) and record the digests"
    )


def test_known_suites_and_their_python():
    assert {name: s.python for name, s in build.SUITES.items()} == {
        "bookworm": "3.11",
        "trixie": "3.13",
        "forky": "3.14",
    }
    forky = build.dockerfile("forky", "skiff/stack-base:forky")
    assert 'Acquire::Check-Valid-Until "false";' in forky  # the mirror's testing Release is past Valid-Until
    assert "python3.14 python3.14-venv python3.14-dev" in forky
    assert "ln -s /usr/bin/python3.14 /usr/local/bin/python3" in forky
    bookworm = build.dockerfile("bookworm", "skiff/stack-base:bookworm")
    assert "Check-Valid-Until" not in bookworm and "python3.1" not in bookworm.replace("python3-dev", "")
    # the host's and the container's debootstrap have no forky script: sid's bootstraps testing too
    assert build.debootstrap_args("forky", "/rootfs", "http://m/debian")[-1] == "/usr/share/debootstrap/scripts/sid"
    assert build.debootstrap_args("bookworm", "/rootfs", "http://m/debian")[-3:] == [
        "bookworm",
        "/rootfs",
        "http://m/debian",
    ]


def test_the_update_recipe_adds_security_suites_only_for_releases():
    stable = build.update_dockerfile("bookworm", "skiff/stack:bookworm", "http://m/debian", "http://m/debian-security")
    assert stable.startswith("FROM skiff/stack:bookworm\nRUN [")
    assert '"stable", "bookworm", "http://m/debian-security", "http://m/debian"' in stable
    rolling = build.update_dockerfile("forky", "skiff/stack:forky", "http://m/debian", "http://m/debian-security")
    assert '"rolling", "forky"' in rolling
    assert "apt-get upgrade" in build.UPDATE_SCRIPT and "$2-security" in build.UPDATE_SCRIPT


def test_find_mirror_finds_the_security_mirror(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://sec.example.org/debian-security\nSuites: bookworm-security\n"
    )
    assert build.find_mirror(d, tmp_path / "none", security=True) == "http://sec.example.org/debian-security"
    assert build.find_mirror(tmp_path / "x", tmp_path / "none", security=True) == build.DEFAULT_SECURITY_MIRROR


def fake_id(tag):
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


class FakeImage:
    def __init__(self, labels, tag=""):
        self.labels = labels
        self.tags = [tag] if tag else []
        self.short_id = "sha256:0123456789"
        self.id = fake_id(tag)
        self.attrs = {"Size": 250_000_000}


class FakeImages:
    def __init__(self, store):
        self.store = store

    def get(self, ref):
        import docker.errors

        if ref not in self.store:
            raise docker.errors.ImageNotFound(ref)
        return FakeImage(self.store[ref], ref)

    def list(self, filters=None):
        return [FakeImage(labels, tag) for tag, labels in self.store.items()]


class FakeApi:
    def __init__(self, store):
        self.store = store

    def images(self, filters=None):
        return [{"RepoTags": [tag], "Labels": labels} for tag, labels in self.store.items()]


class FakeEngine:
    """Images by tag with their labels; build_stack is replaced by a slow fake that adds one."""

    def __init__(self, store=None):
        self.store = dict(store or {})
        self.images = FakeImages(self.store)
        self.api = FakeApi(self.store)
        self.builds = []
        self.runs = []


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine()

    def fake_build_run(client, build_tag, out):
        tag = run.run_tag(build_tag)
        fake.runs.append(tag)
        client.store[tag] = {
            "skiff.stack.run": run.RUN_VERSION,
            "skiff.stack.run-of": fake_id(build_tag),
            "skiff.stack.python": "3.13.5",
            "skiff.stack.npm": "9.2.0",
        }
        return client.store[tag]

    monkeypatch.setattr(run, "build_run", fake_build_run)

    def fake_build_stack(client, suite, tag, out, base=None, rebuild=False):
        fake.builds.append(tag)
        time.sleep(0.3)
        client.store[tag] = {"skiff.stack": suite, "skiff.stack.version": build.STACK_VERSION}
        return client.store[tag]

    monkeypatch.setattr(build, "build_stack", fake_build_stack)
    monkeypatch.setattr(build, "docker_client", lambda: fake)
    from skiff import dockerclient

    monkeypatch.setattr(dockerclient, "client", lambda *a, **k: fake)
    return fake


def test_skiff_stack_suites_lists_the_known_suites(skiff):
    h = skiff(("stack", stack_plugin))
    suites = h.pm.hook.skiff_stack_suites(context=h.context)
    assert {"suite": "forky", "image": "skiff/stack:forky", "python": "3.14"} in suites
    assert [s["suite"] for s in suites] == list(build.SUITES)


def test_skiff_stack_ensure_builds_a_missing_stack_once_for_two_pushes(skiff, engine):
    h = skiff(("stack", stack_plugin))
    outputs = [RecordingOutput(), RecordingOutput()]
    results = []

    def push(out):
        results.append(h.pm.hook.skiff_stack_ensure(context=h.context, image="skiff/stack:forky", output=out))

    threads = [threading.Thread(target=push, args=(out,)) for out in outputs]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert engine.builds == ["skiff/stack:forky"]  # the per-suite lock: the second push waited, then used it
    assert [r["skiff.stack"] for r in results] == ["forky", "forky"]
    said = outputs[0].text + outputs[1].text
    assert "No stack image skiff/stack:forky yet (Debian forky, Python 3.14): building it now" in said
    assert "Waiting for another build of skiff/stack:forky" in said
    assert "another push built meanwhile" in said
    # current now: nothing more to do, no lock taken
    assert h.pm.hook.skiff_stack_ensure(context=h.context, image="skiff/stack:forky", output=RecordingOutput())
    assert engine.builds == ["skiff/stack:forky"]


def test_skiff_stack_ensure_leaves_other_images_alone(skiff, engine):
    h = skiff(("stack", stack_plugin))
    assert h.pm.hook.skiff_stack_ensure(context=h.context, image="registry.example.com/stack:1", output=None) is None
    assert engine.builds == []


def test_build_on_push_off_gives_one_line_and_builds_nothing(skiff, engine, monkeypatch):
    monkeypatch.delenv("SKIFF_STACK_BUILD_ON_PUSH", raising=False)
    h = skiff(("stack", stack_plugin))
    assert h.invoke("stack:set", "--global", "build-on-push", "false").exit_code == 0
    with pytest.raises(SkiffError) as info:
        ensure.ensure(h.context, "skiff/stack:bookworm", RecordingOutput())
    assert str(info.value) == (
        "the stack skiff/stack:bookworm (Debian bookworm, Python 3.11) is not built on this server and "
        "build-on-push is off: build it with 'skiff stack:build bookworm' (or 'stack:set --global build-on-push true')"
    )
    assert engine.builds == []
    r = h.invoke("stack:set", "--global", "build-on-push", "maybe")
    assert r.exit_code == 1 and "must be true or false" in r.stderr


def test_a_stale_stack_is_rebuilt_at_the_next_push_or_kept_with_a_warning(skiff, engine, monkeypatch):
    engine.store["skiff/stack:bookworm"] = {"skiff.stack": "bookworm", "skiff.stack.version": "0"}
    h = skiff(("stack", stack_plugin))
    monkeypatch.setenv("SKIFF_STACK_BUILD_ON_PUSH", "false")
    out = RecordingOutput()
    assert ensure.ensure(h.context, "skiff/stack:bookworm", out)["skiff.stack.version"] == "0"
    assert engine.builds == [] and "it was made by stack recipe 0, this skiff's is 1" in out.text
    monkeypatch.setenv("SKIFF_STACK_BUILD_ON_PUSH", "true")
    assert ensure.ensure(h.context, "skiff/stack:bookworm", RecordingOutput())["skiff.stack.version"] == "1"
    assert engine.builds == ["skiff/stack:bookworm"]


def test_state_migrate_names_stale_stacks(skiff, engine):
    engine.store["skiff/stack:bookworm"] = {"skiff.stack": "bookworm", "skiff.stack.version": "0"}
    engine.store["skiff/stack:trixie"] = {"skiff.stack": "trixie", "skiff.stack.version": build.STACK_VERSION}
    h = skiff(("stack", stack_plugin))
    r = h.invoke("state:migrate")
    assert r.exit_code == 0
    assert (
        "stack skiff/stack:bookworm: it was made by stack recipe 0, this skiff's is 1; rebuilt at the next push "
        "that uses it (or now: skiff stack:build bookworm)"
    ) in r.stdout
    assert "skiff/stack:trixie" not in r.stdout


class RecordingOutput:
    def __init__(self):
        self.lines = []

    @property
    def text(self):
        return "\n".join(self.lines)

    def step(self, line):
        self.lines.append(line)

    info = warn = step


def test_stack_update_updates_every_stack_present_then_says_to_rebuild_the_apps(skiff, engine, monkeypatch):
    h = skiff(("stack", stack_plugin))
    r = h.invoke("stack:update")
    assert r.exit_code == 1 and r.stderr.strip() == (
        "!     there is no skiff/stack:SUITE image to update: build one with 'skiff stack:build'"
    )
    for suite in ("bookworm", "forky"):
        engine.store[f"skiff/stack:{suite}"] = {"skiff.stack": suite, "skiff.stack.version": build.STACK_VERSION}
    engine.store["skiff/myapp:latest"] = {"skiff.stack": "trixie"}  # built FROM a stack: not a stack
    updated = []
    monkeypatch.setattr(build, "update_stack", lambda client, suite, tag, out: updated.append((suite, tag)))
    r = h.invoke("stack:update")
    assert r.exit_code == 0, r.stderr
    assert updated == [("bookworm", "skiff/stack:bookworm"), ("forky", "skiff/stack:forky")]
    assert "skiff ps:rebuild --all" in r.stdout
    assert h.invoke("stack:update", "forky").exit_code == 0 and updated[-1] == ("forky", "skiff/stack:forky")
    bad = h.invoke("stack:update", "../x")
    assert bad.exit_code == 1 and "invalid Debian suite name" in bad.stderr


def test_the_run_recipe_keeps_the_runtime_and_drops_the_build_tools():
    keep, _, drop = " ".join(run.derive_args("trixie")).partition(" -- ")
    assert {"python3", "nodejs", "libpq5", "libssl3t64", "ca-certificates", "tzdata"} <= set(keep.split())
    assert {"build-essential", "python3-dev", "libpq-dev", "libssl-dev", "git", "npm"} <= set(drop.split())
    assert not set(keep.split()) & set(drop.split())
    # forky: the stack's pinned python3.14 stays, its headers go
    keep, _, drop = " ".join(run.derive_args("forky")).partition(" -- ")
    assert "python3.14" in keep.split() and "python3.14-dev" in drop.split()
    # the package names reach the fixed script as arguments only
    assert "$@" in run.DERIVE_SCRIPT and "libpq5" not in run.DERIVE_SCRIPT
    assert run.run_tag("skiff/stack:forky") == "skiff/stack-run:forky"
    assert run.run_tag("registry.example.com/stack:1") is None and run.run_tag("skiff/stack:../x") is None


def test_a_run_image_is_current_only_for_its_recipe_and_its_build_image():
    labels = {"skiff.stack.run": run.RUN_VERSION, "skiff.stack.run-of": "sha256:a"}
    assert run.is_current(labels, "sha256:a")
    assert not run.is_current(labels, "sha256:b")  # the stack was rebuilt or updated since
    assert not run.is_current({**labels, "skiff.stack.run": "0"}, "sha256:a")
    assert not run.is_current(None, "sha256:a")


def test_the_run_image_keeps_the_build_images_environment():
    attrs = {"Config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"], "WorkingDir": "/app"}}
    lines = run.changes(attrs, {"skiff.stack": "trixie", "skiff.stack.run": "1"})
    assert lines == [
        'ENV PATH="/usr/local/bin:/usr/bin"',
        'ENV LANG="C.UTF-8"',
        "WORKDIR /app",
        'LABEL skiff.stack="trixie" skiff.stack.run="1"',
    ]


def test_skiff_stack_run_image_derives_once_then_reuses_and_follows_the_build_image(skiff, engine, monkeypatch):
    monkeypatch.delenv("SKIFF_STACK_BUILD_ON_PUSH", raising=False)
    engine.store["skiff/stack:trixie"] = {"skiff.stack": "trixie", "skiff.stack.version": build.STACK_VERSION}
    h = skiff(("stack", stack_plugin))
    answer = h.pm.hook.skiff_stack_run_image(context=h.context, image="skiff/stack:trixie", output=RecordingOutput())
    assert answer["image"] == "skiff/stack-run:trixie" and answer["npm"] == "9.2.0"
    assert answer["of"] == fake_id("skiff/stack:trixie") and answer["python"] == "3.13.5"
    assert h.pm.hook.skiff_stack_run_image(context=h.context, image="skiff/stack:trixie", output=RecordingOutput())
    assert engine.runs == ["skiff/stack-run:trixie"]  # reused while it is of this build image
    engine.store["skiff/stack-run:trixie"]["skiff.stack.run-of"] = "sha256:older"
    assert h.pm.hook.skiff_stack_run_image(context=h.context, image="skiff/stack:trixie", output=RecordingOutput())
    assert engine.runs == ["skiff/stack-run:trixie"] * 2
    # not a stack this plugin makes: no run image
    out = RecordingOutput()
    assert h.pm.hook.skiff_stack_run_image(context=h.context, image="registry.example.com/s:1", output=out) is None
    # build-on-push off: a stale run image is not derived on a push (apps run on the build image) ...
    engine.store["skiff/stack-run:trixie"]["skiff.stack.run-of"] = "sha256:older"
    assert h.invoke("stack:set", "--global", "build-on-push", "false").exit_code == 0
    assert h.pm.hook.skiff_stack_run_image(context=h.context, image="skiff/stack:trixie", output=out) is None
    assert engine.runs == ["skiff/stack-run:trixie"] * 2
    # ... but stack:build (root) derives it
    monkeypatch.setattr(build, "build_stack", lambda client, suite, tag, out, base=None, rebuild=False: {})
    r = h.invoke("stack:build")
    assert r.exit_code == 0, r.stderr
    assert engine.runs == ["skiff/stack-run:trixie"] * 3


def test_a_failed_derivation_keeps_the_push_on_the_build_image_but_fails_stack_build(skiff, engine, monkeypatch):
    monkeypatch.delenv("SKIFF_STACK_BUILD_ON_PUSH", raising=False)
    engine.store["skiff/stack:trixie"] = {"skiff.stack": "trixie", "skiff.stack.version": build.STACK_VERSION}

    def broken(client, build_tag, out):
        raise SkiffError("deriving the run image skiff/stack-run:trixie failed (exit 100)")

    monkeypatch.setattr(run, "build_run", broken)
    h = skiff(("stack", stack_plugin))
    out = RecordingOutput()
    assert h.pm.hook.skiff_stack_run_image(context=h.context, image="skiff/stack:trixie", output=out) is None
    assert out.lines[-1] == (
        "deriving the run image skiff/stack-run:trixie failed (exit 100): "
        "this build's app image is based on the build image skiff/stack:trixie"
    )
    monkeypatch.setattr(build, "build_stack", lambda client, suite, tag, out, base=None, rebuild=False: {})
    r = h.invoke("stack:build")
    assert r.exit_code == 1 and "deriving the run image skiff/stack-run:trixie failed (exit 100)" in r.stderr
