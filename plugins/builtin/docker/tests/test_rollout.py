"""The rollout's steps against a fake engine: settings read once, start, check, switch, fail, retire;
the prestart: prediction, the waiting containers, adoption, hand-off, fallback."""

from __future__ import annotations

import collections
import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError

import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
from skiff.contracts import CODE_LAYER, CODE_LAYER_WANTED, CodeLayer
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.output import Output
from skiff.state import Release
from skiff_docker import engine, prestart, rollout, settings
from skiff_docker.checks import CheckFailed

OLD_WEB = "0ld0000000web1ffffffff"


class FakeEngine:
    """Just enough of a docker client for the rollout: one event log of every call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.created: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.start_errors: list[Exception] = []
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.api = FakeAPI(self)
        self.containers = FakeContainers(self)

    def add_running(self, ident: str, name: str, process: str, index: int) -> None:
        self.names[ident] = name
        self.entries.append(
            {
                "Id": ident,
                "Names": [f"/{name}"],
                "State": "running",
                "Labels": {
                    "skiff.app": "cat",
                    "skiff.role": "process",
                    "skiff.process": process,
                    "skiff.index": str(index),
                },
            }
        )

    def log(self, *event: str) -> None:
        with self.lock:
            self.events.append(event)


class FakeContainers:
    def __init__(self, eng: FakeEngine) -> None:
        self.eng = eng

    def create(self, **kwargs: Any) -> Any:
        with self.eng.lock:
            ident = f"new{len(self.eng.created):04d}" + "f" * 20
            self.eng.created[ident] = kwargs
            self.eng.names[ident] = kwargs["name"]
        self.eng.log("create", kwargs["name"])
        return type("Container", (), {"id": ident})()


class FakeAPI:
    def __init__(self, eng: FakeEngine) -> None:
        self.eng = eng

    def create_endpoint_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.eng.entries)

    def start(self, ident: str) -> None:
        self.eng.log("start", self.eng.names[ident])
        with self.eng.lock:
            error = self.eng.start_errors.pop(0) if self.eng.start_errors else None
        if error:
            raise error

    def inspect_container(self, ident: str) -> dict[str, Any]:
        return {"Name": f"/{self.eng.names[ident]}", "State": {"Running": True, "RestartCount": 0}}

    def rename(self, ident: str, name: str) -> None:
        self.eng.log("rename", self.eng.names[ident], name)
        self.eng.names[ident] = name

    def remove_container(self, ident: str, force: bool = False, v: bool = False) -> None:
        self.eng.log("remove", self.eng.names.get(ident, ident))

    def logs(self, ident: str, **kwargs: Any) -> bytes:
        return b"Traceback (most recent call last):\nValueError: meow\n"


class Recorder(Output):
    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.lines: list[tuple[str, str]] = []

    def step(self, message: str) -> None:
        self.lines.append(("step", message))

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warn(self, message: str) -> None:
        self.lines.append(("warn", message))

    def of(self, kind: str) -> list[str]:
        return [text for k, text in self.lines if k == kind]


@pytest.fixture
def h(skiff):
    harness = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    harness.create_app("cat")
    return harness


@pytest.fixture
def eng(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    ports = iter(range(20001, 20100))
    monkeypatch.setattr(engine, "client", lambda: fake)
    monkeypatch.setattr(engine, "ensure_app_network", lambda c, app: None)
    monkeypatch.setattr(engine, "allocate_ports", lambda c, n: [next(ports) for _ in range(n)])
    return fake


@pytest.fixture
def checks_run(monkeypatch) -> list[tuple[str, int | None]]:
    """Checks pass at once; each (check name, port) is recorded."""
    seen: list[tuple[str, int | None]] = []
    monkeypatch.setattr(rollout, "run_check", lambda check, port, alive, timeout: seen.append((check.name, port)))
    return seen


def make_deploy(h, processes: dict[str, str] | None = None, **meta: Any) -> Deploy:
    processes = {"web": "gunicorn app:app", "worker": "celery"} if processes is None else processes
    release = Release(
        app="cat",
        version=3,
        status="pending",
        description="Deploy",
        image="skiff/cat:3",
        revision="abc1234",
        config={"GREETING": "meow"},
        processes=processes,
    )
    return Deploy(
        context=h.context,
        app="cat",
        kind="deploy",
        description="Deploy",
        output=Recorder(),
        image="skiff/cat:3",
        revision="abc1234",
        processes=processes,
        config={"GREETING": "meow"},
        meta=dict(meta),
        release=release,
    )


def test_settings_are_read_once_into_a_snapshot(h, monkeypatch):
    settings.set_scale(h.state, "cat", {"worker": 2})
    settings.CHECKS.set(h.context, "timeout", "30", "cat")
    settings.set_check_mode(h.state, "cat", ["worker"], "skipped")
    h.state.set_property("docker", "resources", {"_default": {"memory": "256m"}, "web": {"cpu": "0.5"}}, app="cat")
    h.state.set_property("docker", "docker-options", {"deploy": ["--label=team=cats", "--volume=/:/host"]}, app="cat")
    reads: collections.Counter[str] = collections.Counter()
    get_property = h.state.get_property

    def counting(plugin: str, key: str, **kwargs: Any) -> Any:
        reads[f"{plugin}/{key}"] += 1
        return get_property(plugin, key, **kwargs)

    monkeypatch.setattr(h.state, "get_property", counting)
    warned: list[str] = []
    snapshot = rollout.read_settings(
        h.state, "cat", {"web": "x", "worker": "y"}, {}, {"exposed_ports": [8080]}, warned.append
    )
    assert reads and set(reads.values()) == {1}  # every setting fetched once
    assert snapshot.formation == {"web": 1, "worker": 2}
    assert snapshot.start_timeout == 30.0 and snapshot.wait_to_retire == 10.0 and snapshot.stop_timeout == 10
    assert snapshot.check_mode("worker") == "skipped" and snapshot.check_mode("web") == "enabled"
    assert snapshot.resources == {"web": {"memory": "256m", "cpu": "0.5"}, "worker": {"memory": "256m"}}
    assert snapshot.docker_options == ("--label=team=cats",)  # host-reaching and unconfirmed: checked, left out
    assert len(warned) == 1 and "--volume=/:/host is not applied" in warned[0]
    assert snapshot.container_port == 8080
    settings.set_scale(h.state, "cat", {"web": 5})
    assert snapshot.formation == {"web": 1, "worker": 2}


def test_deploy_starts_checks_and_publishes(h, eng, checks_run):
    settings.set_scale(h.state, "cat", {"worker": 1})
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h)
    assert rollout.deploy(d) is True
    ran = rollout.rollout_of(d)
    assert ran is not None and list(d.scratch["docker"]) == ["rollout"]
    assert [inst.name for inst in ran.instances] == ["cat.web.1.v3", "cat.worker.1.v3"]
    assert ran.old == [OLD_WEB] and ran.checked and not ran.switched
    assert d.meta["formation"] == {"web": 1, "worker": 1} and d.meta["container_port"] == 5000
    assert d.meta["upstreams"] == ["127.0.0.1:20001"]
    web_kwargs = eng.created[ran.instances[0].id]
    assert web_kwargs["ports"] == {"5000/tcp": ("127.0.0.1", 20001)} and web_kwargs["labels"]["skiff.port"] == "20001"
    assert web_kwargs["environment"]["PORT"] == "5000" and web_kwargs["environment"]["GREETING"] == "meow"
    assert web_kwargs["command"] == ["/bin/sh", "-c", "gunicorn app:app"] and web_kwargs["network"] == "skiff-app-cat"
    assert "ports" not in eng.created[ran.instances[1].id]
    assert sorted(checks_run) == [("default uptime check", None), ("default web check", 20001)]
    assert d.output.of("step") == ["Starting cat v3 (web=1, worker=1)"]
    assert [line.split(" (")[0] for line in d.output.of("info")] == ["web.1: up on 127.0.0.1:20001", "worker.1: up"]
    assert ("remove", "cat.web.1") not in eng.events  # the old one keeps serving until the switch


def test_disabled_checks_remove_the_old_containers_first(h, eng, checks_run):
    settings.set_check_mode(h.state, "cat", ["web"], "disabled")
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h, {"web": "gunicorn app:app"})
    rollout.deploy(d)
    assert eng.events.index(("remove", "cat.web.1")) < eng.events.index(("create", "cat.web.1.v3"))
    assert rollout.rollout_of(d).old == [] and checks_run == []


def test_a_taken_port_is_replaced(h, eng, checks_run):
    eng.start_errors.append(APIError("driver failed: Bind for 127.0.0.1:20001 failed: port is already allocated"))
    d = make_deploy(h, {"web": "gunicorn app:app"})
    rollout.deploy(d)
    ran = rollout.rollout_of(d)
    assert ("remove", "cat.web.1.v3") in eng.events and len(ran.created) == 2
    assert d.meta["upstreams"] == ["127.0.0.1:20002"] and checks_run == [("default web check", 20002)]


def test_a_start_error_fails_the_deploy(h, eng, checks_run):
    eng.start_errors.append(APIError("no such image"))
    d = make_deploy(h, {"web": "gunicorn app:app"})
    with pytest.raises(SkiffError, match=r"\Aweb\.1 failed its checks: could not start: .*no such image"):
        rollout.deploy(d)
    assert "upstreams" not in d.meta and checks_run == []


def test_one_failure_stops_the_others_and_only_it_is_named(h, eng, monkeypatch):
    settings.set_scale(h.state, "cat", {"web": 2, "worker": 1})

    def run_check(check, port, alive, timeout):
        if port == 20001:
            raise CheckFailed("default web check: GET / gave HTTP 500 (5 attempts)")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reason = alive()
            if reason:
                raise CheckFailed(f"{check.name}: {reason}")
            time.sleep(0.01)

    monkeypatch.setattr(rollout, "run_check", run_check)
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h)
    began = time.monotonic()
    with pytest.raises(SkiffError) as info:
        rollout.deploy(d)
    assert time.monotonic() - began < 4  # the others stopped at once, not after their own checks
    assert str(info.value) == "web.1 failed its checks: default web check: GET / gave HTTP 500 (5 attempts)"
    ran = rollout.rollout_of(d)
    assert [inst.dyno for inst in ran.failures] == ["web.1"]
    assert all(rollout.ANOTHER_FAILED in inst.error for inst in ran.instances[1:])
    rollout.switch(d)  # not checked: nothing is renamed
    assert not [e for e in eng.events if e[0] == "rename"]

    rollout.failed(d, "deploy")
    assert d.output.of("warn") == [
        "last 2 log lines of web.1:",
        "  Traceback (most recent call last):",
        "  ValueError: meow",
    ]
    removed = {e[1] for e in eng.events if e[0] == "remove"}
    assert removed == {"cat.web.1.v3", "cat.web.2.v3", "cat.worker.1.v3"} and ran.created == []


def test_switch_renames_and_a_later_failure_gives_the_names_back(h, eng, checks_run):
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h, {"web": "gunicorn app:app"})
    rollout.deploy(d)
    rollout.switch(d)
    ran = rollout.rollout_of(d)
    assert ran.switched and eng.names[OLD_WEB] == f"cat.web.1.old-{OLD_WEB[:12]}"
    assert eng.names[ran.instances[0].id] == "cat.web.1"
    assert eng.events.index(("rename", "cat.web.1", f"cat.web.1.old-{OLD_WEB[:12]}")) < eng.events.index(
        ("rename", "cat.web.1.v3", "cat.web.1")
    )

    rollout.failed(d, "post_deploy")  # e.g. postdeploy failed: the old one is back under its name
    assert eng.names[OLD_WEB] == "cat.web.1" and ("remove", "cat.web.1") in eng.events


def test_retire_uses_the_rollouts_settings(h, eng, checks_run, monkeypatch):
    spawned: list[tuple[str, list[str], float, int]] = []
    monkeypatch.setattr(
        rollout,
        "spawn_retire",
        lambda app, containers, images, wait, stop_timeout: spawned.append((app, containers, wait, stop_timeout)),
    )
    settings.CHECKS.set(h.context, "wait-to-retire", "3", "cat")
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h, {"web": "gunicorn app:app"})
    rollout.deploy(d)
    settings.CHECKS.set(h.context, "wait-to-retire", "99", "cat")  # changed meanwhile: this rollout keeps its own
    rollout.retire_later(d)
    assert spawned == [("cat", [OLD_WEB], 3.0, 10)] and d.output.of("info")[-1] == "old containers retire in 3s"

    other = make_deploy(h)  # another scheduler ran this one: nothing of ours to retire, the app's settings
    rollout.retire_later(other)
    assert spawned[-1] == ("cat", [], 99.0, 10)


def test_no_processes_retire_the_old_ones_without_a_switch(h, eng, checks_run):
    settings.set_scale(h.state, "cat", {"web": 0})
    eng.add_running(OLD_WEB, "cat.web.1", "web", 1)
    d = make_deploy(h, {"web": "gunicorn app:app"})
    rollout.deploy(d)
    assert d.meta["upstreams"] == [] and not eng.created and d.output.of("step") == ["Starting cat v3 (web=0)"]
    rollout.switch(d)
    assert rollout.rollout_of(d).old == [OLD_WEB] and not [e for e in eng.events if e[0] == "rename"]


def test_a_release_without_an_image_does_not_reach_the_engine(h, monkeypatch):
    monkeypatch.setattr(engine, "client", lambda: pytest.fail("the engine was asked"))
    d = make_deploy(h)
    d.image = None
    with pytest.raises(SkiffError, match="nothing to run"):
        rollout.deploy(d)
    assert rollout.rollout_of(d) is None
    rollout.failed(d, "deploy")  # nothing began: nothing to undo, the engine is not asked


def test_the_scheduler_uses_no_private_docker_py_api():
    sources = Path(rollout.__file__).parent.glob("*.py")
    text = "\n".join(p.read_text() for p in sources)
    assert "_create_container_args" not in text and "._version" not in text


def test_a_rollout_writes_only_documented_meta_keys(h, eng, checks_run):
    from skiff.contracts import META_KEYS
    from skiff.testing import RecordingMeta

    written: set[str] = set()
    d = make_deploy(h, exposed_ports=[8080, 3000])
    d.meta = RecordingMeta(dict(d.meta), written)  # type: ignore[assignment]
    assert rollout.deploy(d) is True
    docker_plugin.skiff_post_deploy(d)
    assert written == {"formation", "container_port", "upstreams"} and written <= META_KEYS
    assert d.container_port == 3000  # the lowest exposed port: skiff.contracts.container_port
    assert rollout.rollout_of(d) is d.stash[rollout.ROLLOUT]


# -- prestart (skiff_docker.prestart) ----------------------------------------------------------

BASE = "sha256:" + "b" * 64
OLD_IMAGE = "skiff/cat:old"
NEW_IMAGE = "skiff/cat:new"
IMAGE_CONFIG = {"Env": ["PATH=/app/.venv/bin:/usr/bin", "LANG=C.UTF-8"], "User": "1000:1000", "WorkingDir": "/app"}


def code_tar(text: bytes = b"print('meow')\n") -> io.BufferedRandom:
    f = tempfile.TemporaryFile()
    with tarfile.open(fileobj=f, mode="w") as tf:
        info = tarfile.TarInfo("app/app.py")
        info.size = len(text)
        tf.addfile(info, io.BytesIO(text))
    f.seek(0)
    return f  # type: ignore[return-value]


def layer_id(f) -> str:
    f.seek(0)
    digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    f.seek(0)
    return digest


class ImageAPI(FakeAPI):
    """Images: the code base, the current release's image on it, the new one (set by the test)."""

    def __init__(self, eng: FakeEngine) -> None:
        super().__init__(eng)
        base = {"RootFS": {"Layers": ["sha256:l1", "sha256:l2"]}, "Config": {"Env": ["PATH=/usr/bin"]}}
        self.images: dict[str, dict[str, Any]] = {
            BASE: base,
            OLD_IMAGE: {"RootFS": {"Layers": ["sha256:l1", "sha256:l2", "sha256:old"]}, "Config": dict(IMAGE_CONFIG)},
        }
        self.archives: list[tuple[str, str, bytes]] = []

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self.images[ref]

    def put_archive(self, ident: str, path: str, data: Any) -> bool:
        raw = data if isinstance(data, bytes) else data.read()
        self.eng.log("put_archive", self.eng.names[ident])
        self.archives.append((ident, path, raw))
        return True

    def update_container(self, ident: str, **kwargs: Any) -> None:
        self.eng.log("update", self.eng.names[ident], kwargs["restart_policy"]["Name"])


@pytest.fixture
def images(eng):
    eng.api = ImageAPI(eng)
    return eng.api


def push(h, text: bytes | None = b"print('meow')\n", **changes: Any) -> Deploy:
    """A push of ``cat`` whose current release v2 runs OLD_IMAGE on BASE (released once already)."""
    state = h.state
    if not state.releases("cat"):
        for _ in range(2):
            made = state.create_release(
                "cat",
                description="Deploy",
                image=OLD_IMAGE,
                revision="a" * 40,
                config={},
                processes={"web": "gunicorn app:app"},
                meta={"code_base": BASE, "app_json": {}},  # type: ignore[typeddict-unknown-key]
            )
            state.finish_release(made, "succeeded", {})
    previous = state.current_release("cat")
    d = Deploy(
        context=h.context,
        app="cat",
        kind="deploy",
        description="Deploy",
        output=Recorder(),
        revision="c" * 40,
        config={"GIT_REV": "c" * 40},
        processes={"web": "gunicorn app:app"},
    )
    d.previous = previous
    return d


def build(d: Deploy, images: ImageAPI, text: bytes = b"print('meow')\n", base: str = BASE, **config: Any) -> Any:
    """What the build and the release phase leave: the code layer handed over, the new image, the release."""
    archive = code_tar(text)
    images.images[NEW_IMAGE] = {
        "RootFS": {"Layers": ["sha256:l1", "sha256:l2", layer_id(archive)]},
        "Config": {**IMAGE_CONFIG, **config, "Cmd": ["/bin/sh", "-c", "gunicorn app:app"]},
    }
    d.stash[CODE_LAYER] = CodeLayer(base=base, archive=archive)
    d.image = NEW_IMAGE
    d.config = {**d.state.effective_config("cat"), **d.config}
    d.release = d.state.create_release(
        "cat",
        description="Deploy",
        image=NEW_IMAGE,
        revision=d.revision,
        config=d.config,
        processes=d.processes,
        meta={},
    )
    return archive


def test_a_code_only_push_runs_the_prestarted_container_with_the_new_code(h, eng, images, checks_run):
    h.state.set_config("cat", {"GREETING": "meow"})
    d = push(h)
    pre = prestart.begin(d)
    assert pre is not None and pre.predicted.version == 3
    prestart.take(d)
    assert pre.error == ""
    (waiting,) = eng.created.values()
    assert waiting["image"] == BASE and waiting["command"] == ["/bin/sh", "-c", prestart.WAITER]
    assert waiting["restart_policy"] == {"Name": "no"} and waiting["name"] == "cat.web.1.v3.pre"
    assert waiting["user"] == "1000:1000" and waiting["working_dir"] == "/app"
    env = waiting["environment"]
    assert env["PATH"] == "/app/.venv/bin:/usr/bin" and env["GREETING"] == "meow" and env["GIT_REV"] == "c" * 40
    assert env["DYNO"] == "web.1" and env["PORT"] == "5000"
    archive = build(d, images)
    assert rollout.deploy(d) is True
    ran = rollout.rollout_of(d)
    assert [inst.prestarted for inst in ran.instances] == [True] and len(eng.created) == 1
    calls = [e for e in eng.events if e[0] != "start"]
    assert calls == [
        ("create", "cat.web.1.v3.pre"),
        ("update", "cat.web.1.v3.pre", "unless-stopped"),
        ("put_archive", "cat.web.1.v3.pre"),
    ]
    ((_, path, both),) = images.archives
    assert path == "/" and archive.closed  # closed once handed over
    with tarfile.open(fileobj=io.BytesIO(both)) as tf:
        assert tf.getnames() == ["app/app.py", ".skiff-command"]  # the command last: the code is in first
        assert tf.extractfile("app/app.py").read() == b"print('meow')\n"
        member = tf.getmember(".skiff-command")
        assert member.mode == 0o644 and tf.extractfile(member).read() == b"gunicorn app:app"
    assert d.upstreams == [f"127.0.0.1:{ran.instances[0].host_port}"] and checks_run
    assert ": prestarted" in d.output.of("step")[0] and CODE_LAYER not in d.stash


@pytest.mark.parametrize(
    "change, reason",
    [
        ("deps", "the dependencies or the base image changed"),
        ("layer", "the image is not the code base plus the code layer"),
        ("env", "the image's environment, user or workdir changed"),
        ("config", "web.1's container settings changed"),
        ("scale", "the formation changed"),
        ("no-code", "the build made no single code layer"),
    ],
)
def test_anything_unexpected_falls_back_to_a_container_of_the_image(h, eng, images, checks_run, change, reason):
    d = push(h)
    prestart.begin(d)
    prestart.take(d)
    if change == "deps":
        build(d, images, base="sha256:" + "d" * 64)
    elif change == "layer":
        build(d, images)
        images.images[NEW_IMAGE]["RootFS"]["Layers"][-1] = "sha256:other"
    elif change == "env":
        build(d, images, Env=["PATH=/usr/bin"])
    elif change == "config":
        h.state.set_config("cat", {"GREETING": "purr"})  # meanwhile: the release has another env
        build(d, images)
    elif change == "scale":
        settings.set_scale(h.state, "cat", {"web": 2})
        build(d, images)
    else:
        build(d, images)
        d.stash[CODE_LAYER].archive.close()
        del d.stash[CODE_LAYER]
    assert rollout.deploy(d) is True
    prestart_bg_wait()
    ran = rollout.rollout_of(d)
    assert not any(inst.prestarted for inst in ran.instances)
    assert f"prestart not used ({reason}): starting containers of the new image" in d.output.of("info")
    assert ("remove", "cat.web.1.v3.pre") in eng.events  # the waiting one went
    normal = [kwargs for kwargs in eng.created.values() if kwargs["image"] == NEW_IMAGE]
    assert normal and normal[0]["command"] == ["/bin/sh", "-c", "gunicorn app:app"]
    assert not any(e[0] == "put_archive" for e in eng.events) and CODE_LAYER not in d.stash


def prestart_bg_wait() -> None:
    from skiff import background

    background.wait(10)


def test_a_failed_hand_off_starts_a_container_of_the_image(h, eng, images, checks_run, monkeypatch):
    d = push(h)
    prestart.begin(d)
    prestart.take(d)
    build(d, images)
    monkeypatch.setattr(images, "put_archive", lambda *a, **k: False)
    assert rollout.deploy(d) is True
    ran = rollout.rollout_of(d)
    assert ("remove", "cat.web.1.v3.pre") in eng.events and not ran.instances[0].prestarted
    assert eng.created[ran.instances[0].id]["image"] == NEW_IMAGE


def test_when_it_does_not_apply_nothing_starts_ahead(h, eng, images):
    d = push(h)
    assert h.invoke("ps:set", "cat", "prestart", "false").exit_code == 0
    assert prestart.begin(d) is None
    assert h.invoke("ps:set", "cat", "prestart", "true").exit_code == 0
    settings.set_check_mode(h.state, "cat", ["web"], "disabled")  # old ones stop first: nothing may start ahead
    assert prestart.begin(d) is None
    settings.set_check_mode(h.state, "cat", ["web"], "enabled")
    d.previous = Release(**{**d.previous.__dict__, "meta": {}})  # made before code_base was recorded
    assert prestart.begin(d) is None
    d.kind = "redeploy"
    assert prestart.begin(d) is None and eng.created == {}


def test_a_failed_build_removes_the_waiting_containers(h, eng, images):
    d = push(h)
    prestart.begin(d)
    rollout.failed(d, "build")
    prestart_bg_wait()
    assert ("remove", "cat.web.1.v3.pre") in eng.events and prestart.PRESTART not in d.stash


def test_a_base_that_is_not_the_image_below_the_code_starts_nothing(h, eng, images):
    images.images[OLD_IMAGE]["RootFS"]["Layers"] = ["sha256:l1", "sha256:other", "sha256:old"]
    d = push(h)
    pre = prestart.begin(d)
    prestart.take(d)
    assert pre is not None and "not its code base plus one layer" in pre.error and eng.created == {}


def run_waiter(tmp_path: Path, write_after: float | None) -> subprocess.CompletedProcess:
    command = tmp_path / "command"
    script = prestart.WAITER.replace(prestart.COMMAND_FILE, str(command))
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if write_after is not None:
        time.sleep(write_after)
        command.write_text('echo "ran $0 with $GREETING"; exit 3')
    out, err = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_the_waiter_waits_for_the_command_then_runs_it_under_sh(tmp_path, monkeypatch):
    monkeypatch.setenv("GREETING", "meow")
    t0 = time.monotonic()
    done = run_waiter(tmp_path, 0.3)
    assert time.monotonic() - t0 >= 0.3
    assert done.stdout == b"ran /bin/sh with meow\n" and done.returncode == 3  # exec'd: its own exit status
    again = run_waiter(tmp_path, None)  # a restart: the file is there, it runs at once
    assert again.stdout == b"ran /bin/sh with meow\n"
    assert os.path.exists(tmp_path / "command")


def test_code_announced_before_the_load_is_handed_over_while_the_image_loads(h, eng, images, checks_run):
    d = push(h)
    prestart.begin(d)
    wanted = d.stash[CODE_LAYER_WANTED]
    wanted(CodeLayer(base=BASE, archive=code_tar()))  # what the builder does before its docker load
    pre = d.stash[prestart.PRESTART]
    assert pre.handed is not None
    pre.handed.result(10)
    before = list(eng.events)
    assert [e[0] for e in before] == ["create", "start", "update", "put_archive"]
    build(d, images)
    assert rollout.deploy(d) is True
    ran = rollout.rollout_of(d)
    assert ran.instances[0].prestarted and ran.instances[0].handed
    assert not [e for e in eng.events[len(before) :] if e[0] in ("put_archive", "create", "start")]


def test_code_announced_early_must_be_the_images_layer(h, eng, images, checks_run):
    d = push(h)
    prestart.begin(d)
    d.stash[CODE_LAYER_WANTED](CodeLayer(base=BASE, archive=code_tar(b"print('other')\n")))
    build(d, images)
    assert rollout.deploy(d) is True
    prestart_bg_wait()
    reason = (
        "prestart not used (the code handed over early is not the image's layer): starting containers of the new image"
    )
    assert reason in d.output.of("info") and ("remove", "cat.web.1.v3.pre") in eng.events
    assert not rollout.rollout_of(d).instances[0].prestarted


def test_with_release_tasks_the_code_waits_for_the_release_phase(h, eng, images, checks_run):
    d = push(h)
    d.release_command = "python manage.py migrate"
    prestart.begin(d)
    assert CODE_LAYER_WANTED not in d.stash  # no early hand-off: the app must not run before the release task
    prestart.take(d)
    build(d, images)
    assert rollout.deploy(d) is True
    assert rollout.rollout_of(d).instances[0].prestarted and not rollout.rollout_of(d).instances[0].handed


def test_a_fallback_starts_its_containers_while_the_prestarted_ones_go(h, eng, images, checks_run, monkeypatch):
    d = push(h)
    prestart.begin(d)
    prestart.take(d)
    build(d, images, base="sha256:" + "d" * 64)  # new dependencies: the prestart is not used
    slow = threading.Event()
    remove = images.remove_container

    def slow_remove(ident: str, **kwargs: Any) -> None:
        slow.wait(5)  # still being removed when the rollout creates its own
        remove(ident, **kwargs)

    monkeypatch.setattr(images, "remove_container", slow_remove)
    assert rollout.deploy(d) is True
    names = [kwargs["name"] for kwargs in eng.created.values()]
    assert names == ["cat.web.1.v3.pre", "cat.web.1.v3"]  # no name conflict with the one going
    slow.set()
    prestart_bg_wait()
    assert ("remove", "cat.web.1.v3.pre") in eng.events


def test_the_hand_off_tar_is_the_code_byte_for_byte_then_the_command():
    code = code_tar(b"x" * 3000)
    original = code.read()
    long_line = "gunicorn " + "--flag " * 100  # longer than one tar block
    with prestart.with_command(code, long_line) as both:
        data = both.read()
    with tarfile.open(fileobj=io.BytesIO(original)) as tf:
        list(tf)
        end = tf.offset
    assert data[:end] == original[:end]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["app/app.py", ".skiff-command"]
        assert tf.extractfile(".skiff-command").read() == long_line.strip().encode()


def test_workers_get_the_code_only_in_the_deploy_phase(h, eng, images, checks_run):
    d = push(h)
    d.previous = Release(**{**d.previous.__dict__, "processes": {"web": "gunicorn app:app", "worker": "celery"}})
    settings.set_scale(h.state, "cat", {"worker": 1})
    prestart.begin(d)
    d.stash[CODE_LAYER_WANTED](CodeLayer(base=BASE, archive=code_tar()))
    pre = d.stash[prestart.PRESTART]
    pre.handed.result(10)
    handed = [e[1] for e in eng.events if e[0] == "put_archive"]
    assert handed == ["cat.web.1.v3.pre"]  # the worker waits: it acts on its own
    d.processes = {"web": "gunicorn app:app", "worker": "celery"}
    build(d, images)
    assert rollout.deploy(d) is True
    ran = rollout.rollout_of(d)
    assert [(i.dyno, i.prestarted, i.handed) for i in ran.instances] == [
        ("web.1", True, True),
        ("worker.1", True, False),
    ]
    assert [e[1] for e in eng.events if e[0] == "put_archive"] == ["cat.web.1.v3.pre", "cat.worker.1.v3.pre"]
