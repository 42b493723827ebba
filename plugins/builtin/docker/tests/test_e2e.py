"""End to end on the real engine: deploy, scale, config, rollback, zero downtime, failed checks.

The app (tests/app) is a stdlib-only web server and worker on
``skiff/stack-base:trixie``, built by ``skiff.testing.scheduler.ImageBuilder``;
``TestProxy`` stands in for nginx and switches in ``skiff_post_deploy``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_docker.plugin as docker_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.errors import DeployError
from skiff.testing import DirReceiver, dir_source
from skiff.testing.scheduler import ImageBuilder, Load, TestProxy, get, wait_answer

pytestmark = pytest.mark.e2e

APP_DIR = Path(__file__).parent / "app"


@pytest.fixture
def proxy():
    p = TestProxy()
    yield p
    p.close()


@pytest.fixture
def harness(skiff, proxy, stack_base_image, scheduler_app):
    h = skiff(
        ("apps", apps_plugin),
        ("config", config_plugin),
        ("procfile", procfile_plugin),
        ("docker", docker_plugin),
        ("dir", DirReceiver()),
        ("builder", ImageBuilder()),
        ("proxy", proxy),
    )
    h.create_app(scheduler_app)
    h.app = scheduler_app
    assert h.invoke("checks:set", scheduler_app, "wait-to-retire", "1").exit_code == 0
    assert h.invoke("checks:set", scheduler_app, "uptime", "0.5").exit_code == 0  # keeps the suite lean
    return h


def source(tmp_path: Path, version: str, fail: bool = False, app_json: dict | None = None) -> Path:
    path = tmp_path / f"src-{version}-{time.monotonic_ns()}"
    shutil.copytree(APP_DIR, path)
    (path / "VERSION").write_text(version + "\n")
    if fail:
        (path / "FAIL").write_text("1")
    if app_json is not None:
        (path / "app.json").write_text(json.dumps(app_json))
    return path


def push(h, tmp_path: Path, version: str, **kwargs):
    return lifecycle.deploy(h.context, h.app, dir_source(source(tmp_path, version, **kwargs), f"{version}abcdef0"))


def ps(h) -> dict:
    result = h.invoke("ps:report", h.app, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def answers(h) -> list[str]:
    """The body of every web container, asked on its own published port."""
    return [get(row["port"])[1].strip() for row in ps(h)["processes"] if row["process"] == "web"]


def test_scale_config_rollback(harness, proxy, tmp_path, capsys):
    h = harness
    h.invoke("ps:scale", h.app, "worker=1")  # stored before the first deploy
    app_json = {
        "scripts": {
            "dokku": {"predeploy": "echo predeploy saw $(cat /app/VERSION)", "postdeploy": "echo postdeploy ran"}
        },
        "healthchecks": {"web": [{"type": "startup", "path": "/", "content": "v1", "attempts": 3}]},
    }
    push(h, tmp_path, "v1", app_json=app_json)
    out = capsys.readouterr().out
    assert out.index("predeploy saw v1") < out.index("release task ran for v1abcdef0") < out.index("Starting")
    assert out.index("web.1: up") < out.index("postdeploy ran")
    assert wait_answer(proxy.port)[1].strip() == "v1 - web.1"
    report = ps(h)
    assert {r["name"] for r in report["processes"]} == {f"{h.app}.web.1", f"{h.app}.worker.1"}
    assert all(r["status"] == "running" for r in report["processes"])

    scaled = h.invoke("ps:scale", h.app, "web=3")
    assert scaled.exit_code == 0 and "Running release" not in scaled.stdout  # same image and config
    assert sorted(answers(h)) == ["v1 - web.1", "v1 - web.2", "v1 - web.3"]
    assert len(proxy.upstreams) == 3

    configured = h.invoke("config:set", h.app, "GREETING=meow")
    assert configured.exit_code == 0 and "Running release: echo release task" in configured.stdout
    assert sorted(answers(h)) == ["v1 meow web.1", "v1 meow web.2", "v1 meow web.3"]

    push(h, tmp_path, "v2")
    assert set(answers(h)) == {"v2 meow web.1", "v2 meow web.2", "v2 meow web.3"}

    logs = h.invoke("logs", h.app, "-p", "worker", "-n", "5")
    assert logs.exit_code == 0 and f"{h.app}[worker.1]: worker worker.1 tick" in logs.stdout
    run = h.invoke("run", h.app, "echo $DYNO-less $GREETING; cat /app/VERSION")
    assert run.exit_code == 0 and "meow" in run.stdout and "v2" in run.stdout

    assert h.invoke("config:set", h.app, "GREETING=purr").exit_code == 0
    result = h.invoke("releases:rollback", h.app)  # back to v2 meow
    assert result.exit_code == 0, result.output
    assert set(answers(h)) == {"v2 meow web.1", "v2 meow web.2", "v2 meow web.3"}
    result = h.invoke("releases:rollback", h.app, "3")  # v3: code v1, GREETING=meow
    assert result.exit_code == 0, result.output
    assert set(answers(h)) == {"v1 meow web.1", "v1 meow web.2", "v1 meow web.3"}
    assert get(proxy.port)[1].startswith("v1 meow")
    listing = h.invoke("releases", h.app).stdout
    assert "Scale web=3" in listing and "Set GREETING" in listing and "Rollback to v3" in listing


def test_zero_downtime_under_load(harness, proxy, tmp_path, docker_client):
    h = harness
    push(h, tmp_path, "v0")
    wait_answer(proxy.port)
    with Load(proxy.port, threads=2, limit=240) as load:
        for i in range(1, 6):
            push(h, tmp_path, f"v{i}")
        assert h.invoke("ps:restart", h.app).exit_code == 0
        time.sleep(1.5)  # requests keep flowing while the last old container retires
    assert h.invoke("ps:retire", h.app).exit_code == 0
    entries = docker_client.api.containers(all=True, filters={"label": f"skiff.app={h.app}"})
    assert [e["Names"][0].lstrip("/") for e in entries] == [f"{h.app}.web.1"]
    assert load.failures == [], load.failures[:5]
    assert load.ok > 50
    assert {"v0 - web.1", "v5 - web.1"} <= load.bodies
    assert get(proxy.port)[1].strip() == "v5 - web.1"
    assert h.state.current_release(h.app).description == "Restart"


def test_failing_check_is_rejected_and_old_release_keeps_serving(harness, proxy, tmp_path, capsys, docker_client):
    h = harness
    push(h, tmp_path, "good")
    wait_answer(proxy.port)
    capsys.readouterr()
    with pytest.raises(DeployError) as info:
        push(h, tmp_path, "bad", fail=True)
    assert "web.1 failed its checks" in str(info.value) and "HTTP 500" in str(info.value)
    assert "keeps serving" in str(info.value)
    assert "web bad listening" in capsys.readouterr().err  # the new container's last log lines
    assert get(proxy.port)[1].strip() == "good - web.1"
    names = [c.name for c in docker_client.containers.list(all=True, filters={"label": f"skiff.app={h.app}"})]
    assert names == [f"{h.app}.web.1"]
    assert h.state.releases(h.app)[-1].status == "failed"
    checked = h.invoke("checks:run", h.app)
    assert checked.exit_code == 0 and f"{h.app}.web.1: checks passed" in checked.stdout
    with pytest.raises(DeployError, match="release failed: predeploy command failed with exit status 3"):
        push(h, tmp_path, "worse", app_json={"scripts": {"dokku": {"predeploy": "exit 3"}}})
    assert get(proxy.port)[1].strip() == "good - web.1"
    names = [c.name for c in docker_client.containers.list(all=True, filters={"label": f"skiff.app={h.app}"})]
    assert names == [f"{h.app}.web.1"]  # no one-off container left either
    # checks:skip lets the 500 app through (zero-downtime start, no checks)
    assert h.invoke("checks:skip", h.app, "web").exit_code == 0
    push(h, tmp_path, "bad", fail=True)
    assert wait_answer(proxy.port) == (500, "bad - web.1\n")  # switched without waiting for it


def test_crash_restart_stop_start_prune_destroy(harness, proxy, tmp_path, docker_client):
    h = harness
    assert h.invoke("ps:set", h.app, "keep-releases", "1").exit_code == 0
    first = push(h, tmp_path, "one")
    port = ps(h)["processes"][0]["port"]
    wait_answer(port)
    # a crash: Docker restarts the container, ps:report counts it
    crash = h.invoke("enter", h.app, "web.1", "/bin/sh", "-c", "kill -9 -1")
    assert crash.exit_code in (0, 137, 143, -9), crash.output
    deadline = time.monotonic() + 30
    while ps(h)["restarts"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ps(h)["restarts"] >= 1
    assert wait_answer(port)[1].startswith("one")

    assert h.invoke("ps:stop", h.app).exit_code == 0
    assert ps(h)["running"] == 0 and ps(h)["stopped"]
    assert h.invoke("ps:start", h.app).exit_code == 0
    assert wait_answer(port)[1].startswith("one")  # same container, same port
    assert h.invoke("ps:stop", h.app).exit_code == 0
    assert h.invoke("ps:scale", h.app, "web=2").exit_code == 0  # stopped: stored only
    assert ps(h)["running"] == 0
    assert h.invoke("ps:start", h.app).exit_code == 0  # a new release with the new scale
    assert sorted(answers(h)) == ["one - web.1", "one - web.2"]
    assert h.state.current_release(h.app).description == "Start"

    assert h.invoke("resource:limit", h.app, "--memory", "256m", "--process", "web").exit_code == 0
    assert h.invoke("docker-options:add", h.app, "deploy", "--add-host", "db.internal:10.9.8.7").exit_code == 0
    second = push(h, tmp_path, "two")
    web = docker_client.containers.get(f"{h.app}.web.1")
    assert web.attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert "db.internal:10.9.8.7" in web.attrs["HostConfig"]["ExtraHosts"]
    push(h, tmp_path, "three")  # the detached retirement prunes v1's image (keep-releases 1)

    def tags() -> set[str]:  # one API call: images may vanish while we look
        return {
            t for i in docker_client.api.images(filters={"label": f"skiff.app={h.app}"}) for t in i["RepoTags"] or []
        }

    deadline = time.monotonic() + 30
    while first.image in tags() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert first.image not in tags()
    assert {second.image, h.state.current_release(h.app).image} <= tags()  # rollback target and current stay
    rebuilt = h.invoke("ps:rebuild", h.app)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert h.state.current_release(h.app).description == "Rebuild threeab"
    assert set(answers(h)) == {"three - web.1", "three - web.2"}
    pruned = h.invoke("releases:rollback", h.app, "v1")
    assert pruned.exit_code == 1 and "pruned" in pruned.stderr

    assert docker_client.networks.list(filters={"label": f"skiff.network.app={h.app}"})
    assert h.invoke("apps:destroy", h.app, "--force").exit_code == 0
    assert docker_client.containers.list(all=True, filters={"label": f"skiff.app={h.app}"}) == []
    assert docker_client.networks.list(filters={"label": f"skiff.network.app={h.app}"}) == []
    assert docker_client.images.list(filters={"label": f"skiff.app={h.app}"}) == []


def test_rename_keeps_serving(harness, proxy, tmp_path, docker_client):
    from skiff.testing.scheduler import remove_app_resources

    h = harness
    new = f"{h.app}-renamed"
    push(h, tmp_path, "named")
    wait_answer(proxy.port)
    try:
        with Load(proxy.port, threads=2, limit=120) as load:
            result = h.invoke("apps:rename", h.app, new)
            assert result.exit_code == 0, result.output
            time.sleep(2)  # the old container retires after 1 s (wait-to-retire)
        assert load.failures == [] and load.ok > 10 and load.bodies == {"named - web.1"}
        report = json.loads(h.invoke("ps:report", new, "--format", "json").stdout)
        assert [r["name"] for r in report["processes"]] == [f"{new}.web.1"]
        port = report["processes"][0]["port"]
        assert h.state.current_release(new).meta["upstreams"] == [f"127.0.0.1:{port}"]
        deadline = time.monotonic() + 30
        while docker_client.containers.list(all=True, filters={"label": f"skiff.app={h.app}"}):
            assert time.monotonic() < deadline, "the old app's containers did not retire"
            time.sleep(0.3)
        # the containers moved to the new name's own network; the old one goes after them
        assert docker_client.networks.list(filters={"label": f"skiff.network.app={new}"})
        while docker_client.networks.list(filters={"label": f"skiff.network.app={h.app}"}):
            assert time.monotonic() < deadline, "the old name's network was not removed"
            time.sleep(0.3)
    finally:
        remove_app_resources(docker_client, new)


class ProcessListWatch:
    """Samples every process's command line (``/proc/*/cmdline``) in a thread, for secrets."""

    def __init__(self, secret: str):
        import threading

        self.secret = secret.encode()
        self.samples = 0
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessListWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.samples += 1
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    data = cmdline.read_bytes()
                except OSError:
                    continue
                if self.secret in data:
                    self.seen.append(data.replace(b"\0", b" "))


DUMP_ENV = "import json, os, sys; print('ENV', sys.argv[1], json.dumps(dict(os.environ), sort_keys=True))\n"
#: what the engine or the shell sets per container, and the one key that tells the kinds apart
PER_CONTAINER = {"DYNO", "HOSTNAME"}


def test_every_kind_of_container_gets_the_same_environment(harness, proxy, tmp_path, capsys):
    """Web and worker processes, predeploy, the release task, postdeploy, ``run`` and ``enter``:
    one environment (the config, a linked database's URL, PORT, GIT_REV), each its own DYNO."""
    h = harness
    url = f"postgres://postgres:pw@skiff-postgres-{h.app}:5432/{h.app}"  # what postgres:link sets
    assert h.invoke("config:set", h.app, "GREETING=meow", f"DATABASE_URL={url}", "--no-restart").exit_code == 0
    assert h.invoke("ps:scale", h.app, "worker=1", "--skip-deploy").exit_code == 0
    src = source(
        tmp_path,
        "v1",
        app_json={
            "scripts": {
                "dokku": {
                    "predeploy": "python3 /app/dumpenv.py predeploy",
                    "postdeploy": "python3 /app/dumpenv.py postdeploy",
                }
            }
        },
    )
    (src / "dumpenv.py").write_text(DUMP_ENV)
    procfile = (
        (src / "Procfile").read_text().replace("echo release task ran for $GIT_REV", "python3 /app/dumpenv.py release")
    )
    (src / "Procfile").write_text(procfile)
    lifecycle.deploy(h.context, h.app, dir_source(src, "v1abcdef0"))
    version = h.state.current_release(h.app).version

    def dumped(text: str) -> dict[str, dict[str, str]]:
        found = {}
        for line in text.splitlines():
            _, marker, rest = line.partition("ENV ")
            if marker and not _.strip():
                kind, _, payload = rest.partition(" ")
                found[kind] = json.loads(payload)
        return found

    envs = dumped(capsys.readouterr().out)
    web_port = next(row["port"] for row in ps(h)["processes"] if row["process"] == "web")
    status, body = get(web_port, "/env")
    assert status == 200, body
    envs["web"] = json.loads(body)
    for args in [
        ("run", h.app, "python3 /app/dumpenv.py run"),
        ("enter", h.app, "web.1", "sh", "-c", "python3 /app/dumpenv.py enter"),
        ("enter", h.app, "worker.1", "sh", "-c", "python3 /app/dumpenv.py worker"),
    ]:
        result = h.invoke(*args)
        assert result.exit_code == 0, result.output
        envs.update(dumped(result.stdout))
    assert sorted(envs) == ["enter", "postdeploy", "predeploy", "release", "run", "web", "worker"]

    dynos = {kind: env["DYNO"] for kind, env in envs.items()}
    assert dynos["web"] == dynos["enter"] == "web.1" and dynos["worker"] == "worker.1"
    assert dynos["predeploy"] == dynos["release"] == dynos["postdeploy"] == f"release.{version}"
    assert re.fullmatch(r"run\.[0-9]{4}", dynos["run"]), dynos
    web = {k: v for k, v in envs["web"].items() if k not in PER_CONTAINER}
    assert web["GREETING"] == "meow" and web["DATABASE_URL"] == url and web["PORT"] == "5000"
    assert web["GIT_REV"] == "v1abcdef0"
    for kind, env in envs.items():
        assert {k: v for k, v in env.items() if k not in PER_CONTAINER} == web, kind


def test_config_values_never_reach_the_hosts_process_list(harness, proxy, tmp_path):
    """config:set K=s3cret and the deploy it starts (containers, release task, retirement): the
    value is in the containers' environment, never in a command line on the host."""
    h = harness
    push(h, tmp_path, "v1")
    secret = "s3cret-" + h.app
    with ProcessListWatch(secret) as watch:
        result = h.invoke("config:set", h.app, f"K={secret}")
        assert result.exit_code == 0, result.output
        ran = h.invoke("run", h.app, "printenv K")
        time.sleep(0.5)
    assert ran.exit_code == 0 and secret in ran.stdout  # the app does get it
    assert watch.samples > 10
    assert watch.seen == []
    assert secret not in result.output
