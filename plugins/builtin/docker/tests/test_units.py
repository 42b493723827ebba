"""Unit tests of the docker scheduler's pieces that need no engine."""

from __future__ import annotations

import http.server
import threading

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
from skiff import contracts, hookimpl
from skiff.errors import ValidationError
from skiff.state import State
from skiff_docker import checks, options, scheduler, settings


def test_options_allow_list_and_normalisation():
    assert options.normalise("deploy", ["--add-host", "db:10.0.0.2"]) == "--add-host=db:10.0.0.2"
    assert options.normalise("run", ["-v", "/srv/data:/data:ro"]) == "--volume=/srv/data:/data:ro"
    assert options.normalise("build", ["--build-arg=FOO=bar"]) == "--build-arg=FOO=bar"
    assert options.normalise("deploy", ["--read-only"]) == "--read-only"
    for phase, words in [
        ("deploy", ["--privileged=yes"]),
        ("build", ["--privileged"]),
        ("deploy", ["--mount=type=bind,source=/a,target=/b/../../etc"]),
        ("deploy", ["--add-host=db:1.2.3.4; rm -rf /"]),
        ("deploy", ["--volume=/a:/b/../../etc"]),
        ("deploy", ["--label=skiff.app=other"]),
        ("deploy", ["--cap-add=sys_admin;"]),
        ("build", ["--volume=/a:/b"]),
        ("nope", ["--dns=1.1.1.1"]),
        ("deploy", ["--dns=1.1.1.1", "--dns=8.8.8.8"]),
        ("deploy", ["--shm-size=64m\n"]),
    ]:
        with pytest.raises(ValidationError):
            options.normalise(phase, words)
    kwargs = options.run_kwargs(
        ["--add-host=db:10.0.0.2", "--volume=/srv:/data:ro", "--cap-drop=NET_RAW", "--label=team=a", "--read-only"]
    )
    assert kwargs["extra_hosts"] == {"db": "10.0.0.2"}
    assert kwargs["volumes"] == {"/srv": {"bind": "/data", "mode": "ro"}}
    assert kwargs["cap_drop"] == ["NET_RAW"] and kwargs["labels"] == {"team": "a"} and kwargs["read_only"]


def test_formation_defaults_app_json_and_scale(tmp_path):
    state = State(tmp_path)
    state.create_app("cat")
    table = {"web": "x", "worker": "y", "clock": "z"}
    assert settings.formation(state, "cat", table, {}) == {"web": 1, "worker": 0, "clock": 0}
    app_json = {"formation": {"worker": {"quantity": 2}}}
    assert settings.formation(state, "cat", table, app_json) == {"web": 1, "worker": 2, "clock": 0}
    settings.set_scale(state, "cat", {"web": 3, "worker": 0})
    assert settings.formation(state, "cat", table, app_json) == {"web": 3, "worker": 0, "clock": 0}
    state.close()


def test_process_table_and_env():
    assert scheduler.process_table({}) == {"web": ""}
    for bad in ("we b", "web\n", "-web", "a" * 31):
        with pytest.raises(ValidationError):
            scheduler.process_table({bad: "x"})
    env = scheduler.process_env({"A": "1", "PORT": "9"}, "web", 2, 5000, "abc")
    assert env["PORT"] == "5000" and env["A"] == "1" and env["DYNO"] == "web.2" and env["GIT_REV"] == "abc"
    assert scheduler.container_port({"exposed_ports": [8080]}) == 8080
    assert scheduler.container_port({}) == 5000
    assert scheduler.command_of("gunicorn app:app") == ["/bin/sh", "-c", "gunicorn app:app"]
    assert scheduler.command_of("") is None


def test_every_container_kind_gets_the_same_environment_but_dyno():
    """Process containers, release tasks and app.json scripts, ``run`` and cron one-offs:
    one environment (config with the linked services' URLs, PORT, GIT_REV), their own DYNO."""
    import re

    from skiff.deploy import Deploy
    from skiff.output import Output
    from skiff.state import Release

    config = {"DATABASE_URL": "postgres://postgres:pw@skiff-postgres-db:5432/db", "A": "1", "PORT": "9"}
    meta = {"exposed_ports": [8080]}
    release = Release("cat", 7, "succeeded", "", "stub:cat-7", "abc", dict(config), {}, meta=dict(meta))
    d = Deploy(context=None, app="cat", kind="deploy", description="", output=Output(quiet=True))  # type: ignore[arg-type]
    d.config, d.meta, d.revision, d.release = dict(config), dict(meta), "abc", release
    web = scheduler.process_env(config, "web", 1, scheduler.container_port(meta), "abc")
    kinds = {
        "web.1": web,
        "worker.2": scheduler.process_env(config, "worker", 2, scheduler.container_port(meta), "abc"),
        "release.7": scheduler.release_env(d),
        "run": scheduler.release_env_of(release),
        "scheduler": scheduler.release_env_of(release, "scheduler"),
    }
    for name, env in kinds.items():
        dyno = env.pop("DYNO")
        assert dyno == name or re.fullmatch(rf"{name}\.[0-9]{{4}}", dyno), dyno
        assert env == {k: v for k, v in web.items() if k != "DYNO"}
    assert web["PORT"] == "8080" and web["GIT_REV"] == "abc" and web["DATABASE_URL"] == config["DATABASE_URL"]
    d.release = None  # a task run outside a release (tests): still a release.<n>
    assert re.fullmatch(r"release\.[0-9]{4}", scheduler.release_env(d)["DYNO"])
    assert scheduler.oneoff_dyno("release", 3) == "release.3"


def test_checks_from_app_json():
    app_json = {
        "healthchecks": {
            "web": [
                {"type": "startup", "path": "/health", "content": "ok", "attempts": 2, "wait": 0, "initialDelay": 0}
            ]
        }
    }
    (check,) = checks.checks_for(app_json, "web", settings.CHECK_DEFAULTS)
    assert (check.path, check.content, check.attempts, check.max_status) == ("/health", "ok", 2, 399)
    (default,) = checks.checks_for({}, "web", settings.CHECK_DEFAULTS)
    assert default.path == "/" and default.max_status == 499
    (worker,) = checks.checks_for({}, "worker", {"uptime": 3})
    assert worker.path is None and worker.uptime == 3


@pytest.fixture
def http_app():
    answers = {"/health": (200, "all ok"), "/broken": (500, "oops"), "/": (404, "nope")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answers.get(self.path, (404, ""))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_run_check_against_http(http_app):
    def alive() -> None:
        pass

    checks.run_check(checks.Check("ok", path="/health", content="ok"), http_app, alive, 2)
    checks.run_check(checks.Check("default", path="/", max_status=499), http_app, alive, 2)  # 404 < 500
    with pytest.raises(checks.CheckFailed, match="HTTP 500"):
        checks.run_check(checks.Check("broken", path="/broken", attempts=2, wait=0), http_app, alive, 2)
    with pytest.raises(checks.CheckFailed, match="lacks"):
        checks.run_check(checks.Check("content", path="/health", content="nope", attempts=1), http_app, alive, 2)


def test_run_check_fails_fast_when_the_container_exits():
    with pytest.raises(checks.CheckFailed, match="exited"):
        checks.run_check(checks.Check("dead", path="/"), 1, lambda: "the container exited with status 1", 30)
    with pytest.raises(checks.CheckFailed, match="within"):
        checks.run_check(checks.Check("up", uptime=0.3), None, lambda: "the container exited", 1)


def test_settings_commands_validate_input(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    assert h.invoke("checks:set", "cat", "wait-to-retire", "3").exit_code == 0
    assert settings.checks(h.state, "cat")["wait-to-retire"] == 3
    bad = h.invoke("checks:set", "cat", "bogus", "3")
    assert bad.exit_code == 1 and bad.stderr.startswith("!     unknown check setting")
    assert h.invoke("checks:set", "cat", "timeout", "soon").exit_code == 1
    assert h.invoke("checks:skip", "cat", "worker").exit_code == 0
    assert settings.check_mode(settings.checks(h.state, "cat"), "worker") == "skipped"
    assert h.invoke("checks:enable", "cat").exit_code == 0
    assert settings.check_mode(settings.checks(h.state, "cat"), "worker") == "enabled"

    assert h.invoke("resource:limit", "cat", "--memory", "256m", "--cpu", "0.5").exit_code == 0
    assert settings.resources_for(h.state, "cat", "web") == {"memory": "256m", "cpu": "0.5"}
    assert h.invoke("resource:limit", "cat", "--memory", "lots").exit_code == 1

    assert h.invoke("docker-options:add", "cat", "deploy,run", "--add-host=db:10.0.0.2").exit_code == 0
    assert settings.docker_options(h.state, "cat") == {
        "deploy": ["--add-host=db:10.0.0.2"],
        "run": ["--add-host=db:10.0.0.2"],
    }
    refused = h.invoke("docker-options:add", "cat", "deploy", "--pid-limit=5")
    assert refused.exit_code == 1 and "not allowed" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert h.invoke("docker-options:clear", "cat").exit_code == 0
    assert settings.docker_options(h.state, "cat") == {}

    scale = h.invoke("ps:scale", "cat", "web=two")
    assert scale.exit_code == 1 and "PROCESS=QUANTITY" in scale.stderr
    assert h.invoke("ps:scale", "cat", "web=2", "worker=1").exit_code == 0  # stored before the first deploy
    assert settings.scale_overrides(h.state, "cat") == {"web": 2, "worker": 1}
    assert h.invoke("ps:set", "--global", "keep-releases", "3").exit_code == 0
    assert settings.keep_releases(h.state, "cat") == 3
    assert h.invoke("releases:rollback", "cat").exit_code == 1
    assert h.invoke("ps:rebuild", "cat").stderr.startswith("!     no source recorded")


def test_build_options_are_published_typed_and_checked(skiff):
    from skiff.deploy import Deploy
    from skiff.output import Output

    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    h.state.set_property(
        "docker",
        "docker-options",
        {
            "build": ["--build-arg=V=1", "--shm-size=2k", "--ulimit=nofile=10:20", "--privileged"],
            "run": ["--label=a=b"],
        },
        app="cat",
    )
    out = Output(quiet=True)
    warned: list[str] = []
    out.warn = warned.append  # type: ignore[method-assign]
    deploy = Deploy(context=h.context, app="cat", kind="deploy", description="", output=out)
    docker_plugin.skiff_pre_build(deploy)
    assert deploy.build_options == {"buildargs": {"V": "1"}, "shmsize": 2048, "ulimits": {"nofile": (10, 20)}}
    assert len(warned) == 1 and "--privileged is not applied" in warned[0]
    assert options.build_options([]) == {}


def test_checks_and_ps_settings_are_declared_with_a_global_default(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    h.create_app("dog")
    assert h.invoke("checks:set", "--global", "wait-to-retire", "30").exit_code == 0
    assert h.invoke("checks:set", "dog", "wait-to-retire", "2").exit_code == 0
    assert settings.checks(h.state, "cat")["wait-to-retire"] == 30
    assert settings.checks(h.state, "dog")["wait-to-retire"] == 2
    assert h.invoke("checks:set", "dog", "wait-to-retire").exit_code == 0  # reset: the global value again
    assert settings.checks(h.state, "dog")["wait-to-retire"] == 30
    assert h.invoke("ps:set", "cat", "keep-releases", "7").exit_code == 0
    assert h.invoke("ps:set", "--global", "keep-releases", "2").exit_code == 0
    assert (settings.keep_releases(h.state, "cat"), settings.keep_releases(h.state, "dog")) == (7, 2)
    bad = h.invoke("ps:set", "cat", "restart-policy", "always")
    assert bad.exit_code == 1 and "unknown ps property 'restart-policy'" in bad.stderr


def test_check_values_of_the_old_single_property_move_to_the_declared_settings(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    h.state.set_property("docker", "checks", {"timeout": 30.0, "disabled": ["worker"], "skipped": []}, app="cat")
    assert settings.move_check_values(h.state) == 1
    assert h.state.get_property("docker", "checks", app="cat") == {"disabled": ["worker"], "skipped": []}
    assert settings.checks(h.state, "cat")["timeout"] == 30.0
    assert settings.check_mode(settings.checks(h.state, "cat"), "worker") == "disabled"
    assert settings.move_check_values(h.state) == 0  # a second upgrade changes nothing


class _Mounts:
    """A plugin adding a bind, a network and log options to the containers of ``cat``."""

    @hookimpl
    def skiff_container_options(self, context, app, process, role):
        if app != "cat":
            return None
        return {"binds": [f"/srv/{app}:/data"], "networks": ["shared"], "labels": {"x": role}}


class _Logs:
    @hookimpl
    def skiff_container_options(self, context, app, process, role):
        return {"binds": ["/srv/cat:/data"], "log_config": {"type": "json-file", "config": {"max-size": "1m"}}}


class _FakeApi:
    def __init__(self):
        self.calls = []

    def create_endpoint_config(self, aliases=None):
        return {"Aliases": aliases}

    def connect_container_to_network(self, container, net, aliases=None):
        self.calls.append(("connect", container, net, aliases))
        if net == "missing":
            raise RuntimeError("network missing not found")

    def remove_container(self, ident, force=False, v=False):
        self.calls.append(("remove", ident))


class _FakeContainers:
    def __init__(self, api):
        self.api = api

    def create(self, **kwargs):
        self.api.calls.append(("create", kwargs["network"]))
        return type("C", (), {"id": "c1"})()


class _FakeClient:
    def __init__(self):
        self.api = _FakeApi()
        self.containers = _FakeContainers(self.api)


def test_create_container_joins_the_other_networks_before_the_start_and_removes_it_on_failure():
    c = _FakeClient()
    kwargs = {"network": "skiff-app-cat", scheduler.CONNECT: [("shared", ["cat.web"])]}
    assert scheduler.create_container(c, dict(kwargs)).id == "c1"
    assert c.api.calls == [("create", "skiff-app-cat"), ("connect", "c1", "shared", ["cat.web"])]
    c.api.calls.clear()
    with pytest.raises(RuntimeError, match="missing"):
        scheduler.create_container(c, {"network": "skiff-app-cat", scheduler.CONNECT: [("missing", None)]})
    assert c.api.calls[-1] == ("remove", "c1")  # no half-made container is left


def test_skiff_container_options_reach_process_and_oneoff_containers(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin), ("mounts", _Mounts()), ("logs", _Logs()))
    merged = scheduler.container_options(h.context, "cat", "web", "process")
    assert merged == {
        "binds": ["/srv/cat:/data"],
        "networks": ["shared"],
        "labels": {"x": "process"},
        "log_config": {"type": "json-file", "config": {"max-size": "1m"}},
    }
    kwargs = scheduler.create_kwargs(
        _FakeClient(),
        app="cat",
        image="img",
        name="cat.web.1",
        process="web",
        index=1,
        release=3,
        command=None,
        env={},
        port=5000,
        host_port=None,
        limits={},
        extra=["--volume=/srv/cat-app:/x"],
        plugin_options=merged,
    )
    assert kwargs["volumes"][-1] == "/srv/cat:/data" and len(kwargs["volumes"]) == 2
    # the app's own network first (isolation), the plugin's joined after the create with the alias
    assert kwargs["network"] == "skiff-app-cat" and kwargs["networking_config"] == {
        "skiff-app-cat": {"Aliases": ["cat.web"]}
    }
    assert kwargs[scheduler.CONNECT] == [("shared", ["cat.web"])]
    assert kwargs["log_config"]["config"] == {"max-size": "1m"}
    assert kwargs["labels"]["x"] == "process" and kwargs["labels"]["skiff.app"] == "cat"
    oneoff = scheduler.oneoff_kwargs(
        _FakeClient(),
        app="cat",
        image="img",
        command=["true"],
        env={},
        role_process="run",
        release=3,
        extra=["--network=host"],
        limits={},
        plugin_options=scheduler.container_options(h.context, "cat", "run", "run"),
    )
    assert oneoff["volumes"] == ["/srv/cat:/data"] and "networking_config" not in oneoff  # root's --network wins
    assert scheduler.CONNECT not in oneoff
    initial = scheduler.oneoff_kwargs(
        _FakeClient(),
        app="cat",
        image="img",
        command=["true"],
        env={},
        role_process="run",
        release=3,
        extra=[],
        limits={},
        plugin_options={"network": "shared", "networks": ["other", "shared"]},
    )
    # a plugin's primary network (initial-network) replaces the app's own as primary; the app's own is still joined
    assert initial["network"] == "shared" and initial["networking_config"] == {"shared": {"Aliases": None}}
    assert initial[scheduler.CONNECT] == [("other", None), ("skiff-app-cat", None)]
    assert scheduler.container_options(h.context, "dog", "web", "process") == {
        "binds": ["/srv/cat:/data"],
        "log_config": {"type": "json-file", "config": {"max-size": "1m"}},
    }
    with pytest.raises(ValueError, match="unknown container option"):
        contracts.merge_container_options([{"volume": "x"}])  # type: ignore[typeddict-unknown-key]


def test_ps_rebuild_all_rebuilds_every_pushed_app_and_names_the_failures(skiff, monkeypatch):
    from skiff import lifecycle
    from skiff.errors import SkiffError

    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    for app in ("a", "b", "c"):
        h.create_app(app)
    source = {"kind": "git", "location": "/repo", "revision": "1234567890", "ref": "refs/heads/main"}
    h.state.set_property("docker", "source", source, app="a")
    h.state.set_property("docker", "source", source, app="c")
    rebuilt = []

    def deploy(context, app, src, description=""):
        rebuilt.append((app, src.revision, description))
        if app == "c":
            raise SkiffError("build failed")

    monkeypatch.setattr(lifecycle, "deploy", deploy)
    r = h.invoke("ps:rebuild", "--all")
    assert rebuilt == [("a", "1234567890", "Rebuild 1234567"), ("c", "1234567890", "Rebuild 1234567")]
    assert r.exit_code == 1 and r.stderr.strip().splitlines()[-1] == "!     rebuild failed for c"
    assert "a: rebuilt" in r.stdout and "b: never pushed, skipped" in r.stdout
    assert "c: rebuild failed (build failed); its running release is unchanged" in r.stderr + r.stdout
    for args in ((), ("a", "--all")):
        refused = h.invoke("ps:rebuild", *args)
        assert refused.exit_code == 1 and refused.stderr.strip() == "!     name one app, or --all for every app"
    assert len(rebuilt) == 2


def test_run_stop_takes_only_a_run_container_name_of_the_app(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    for name in ("cat.web.1", "other;rm", "../x", "cat.run.12a"):
        result = h.invoke("run:stop", "cat", name)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"!     invalid run container name {name!r}: use the name run:list shows (APP.run.NNNN)"
        ]
    result = h.invoke("run:detached", "cat", "sleep 1")
    assert result.stderr.splitlines() == ["!     app cat has not been deployed yet: push it first"]


class _RunApi(_FakeApi):
    """Just enough of the engine API for one one-off container."""

    def __init__(self, existing: dict | None = None):
        self.existing = existing
        self.removed: list[str] = []

    def inspect_network(self, name):
        return {"Name": name}

    def networks(self, names=None):
        return [{"Name": name, "Id": f"id-{name}"} for name in names or []]

    def inspect_container(self, name):
        from docker.errors import NotFound

        if self.existing is None:
            raise NotFound("no such container")
        return self.existing

    def remove_container(self, ident, force=False, v=False):
        self.removed.append(ident)

    def logs(self, ident, **kwargs):
        return iter([b"hello\nwor", b"ld\n"])


class _RunContainer:
    id = "new-container"

    def start(self):
        pass

    def wait(self):
        return {"StatusCode": 7}


class _RunClient:
    def __init__(self, existing=None):
        self.api = _RunApi(existing)
        self.created: list[dict] = []
        client = self

        class Containers:
            def create(self, **kwargs):
                client.created.append(kwargs)
                return _RunContainer()

        self.containers = Containers()


def test_skiff_run_oneoff_runs_the_current_release_with_bounded_logs(skiff, monkeypatch):
    from skiff.contracts import OneOff
    from skiff.errors import SkiffError
    from skiff_docker import engine

    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    oneoff = OneOff("cat", ("/bin/sh", "-c", "echo hi | cat"), role="scheduler", name="cat.scheduler.abc", tag="abc")
    with pytest.raises(SkiffError, match="has not been deployed yet"):
        h.context.hook.skiff_run_oneoff(context=h.context, oneoff=oneoff, write=print)
    r = h.state.create_release(
        "cat", description="d", image="img:1", revision="abc1234", config={"A": "1"}, processes={}, meta={}
    )
    h.state.finish_release(r, "succeeded", {})
    client = _RunClient()
    monkeypatch.setattr(engine, "client", lambda: client)
    lines: list[str] = []
    assert h.context.hook.skiff_run_oneoff(context=h.context, oneoff=oneoff, write=lines.append) == 7
    assert lines == ["hello", "world"]
    created = client.created[0]
    assert created["image"] == "img:1" and created["command"] == ["/bin/sh", "-c", "echo hi | cat"]
    assert created["name"] == "cat.scheduler.abc"
    assert created["environment"]["A"] == "1" and created["environment"]["DYNO"].startswith("scheduler.")
    assert created["labels"]["skiff.job"] == "abc" and created["labels"]["skiff.process"] == "scheduler"
    assert created["log_config"] == {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}
    assert client.api.removed == []  # a tagged one-off stays (its log) until the next run
    # logs:set bounds the logs of the app's containers; the next run replaces the exited one
    assert h.invoke("logs:set", "cat", "max-size", "100k").exit_code == 0
    assert h.invoke("logs:set", "--global", "max-file", "2").exit_code == 0
    bad = h.invoke("logs:set", "cat", "max-size", "10 m")
    assert bad.exit_code != 0 and "max-size must be a size" in bad.stderr
    client = _RunClient(existing={"Id": "old-run", "State": {"Running": False}})
    monkeypatch.setattr(engine, "client", lambda: client)
    untagged = OneOff("cat", ("true",))
    assert h.context.hook.skiff_run_oneoff(context=h.context, oneoff=untagged, write=lines.append) == 7
    assert client.created[0]["log_config"]["config"] == {"max-size": "100k", "max-file": "2"}
    assert client.created[0]["environment"]["DYNO"].startswith("run.") and "name" not in client.created[0]
    assert client.api.removed == ["new-container"]  # untagged: removed after the run
    assert h.context.hook.skiff_run_oneoff(context=h.context, oneoff=oneoff, write=lines.append) == 7
    assert client.api.removed[-1] == "old-run"
    client.api.existing = {"Id": "busy", "State": {"Running": True}}
    with pytest.raises(SkiffError, match="cat.scheduler.abc is still running"):
        h.context.hook.skiff_run_oneoff(context=h.context, oneoff=oneoff, write=lines.append)
    # an app's own --log-opt (docker-options) wins over the logs settings
    kwargs = scheduler.oneoff_kwargs(
        _FakeClient(),
        app="cat",
        image="img",
        command=None,
        env={},
        role_process="run",
        release=1,
        extra=["--log-opt=max-size=1k"],
        limits={},
        plugin_options=scheduler.container_options(h.context, "cat", "run", "run"),
    )
    assert kwargs["log_config"]["Config"] == {"max-size": "1k"}
    unlimited = h.invoke("logs:set", "cat", "max-size", "unlimited")
    assert unlimited.exit_code == 0 and settings.log_config(h.state, "cat") == {"type": "json-file", "config": {}}


def test_cleanup_is_a_periodic_task_on_its_schedule(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    tasks = [t for answer in h.context.hook.skiff_periodic_tasks(context=h.context) for t in answer or []]
    assert tasks == [contracts.PeriodicTask("docker:cleanup", "@daily", ("cleanup",))]
    assert h.invoke("cleanup:set", "--global", "schedule", "30 4 * * sun").exit_code == 0
    tasks = [t for answer in h.context.hook.skiff_periodic_tasks(context=h.context) for t in answer or []]
    assert tasks[0].schedule == "30 4 * * sun"
    bad = h.invoke("cleanup:set", "--global", "schedule", "30 4 * *")
    assert bad.exit_code != 0 and "invalid cron schedule" in bad.stderr
    assert h.invoke("cleanup:set", "--global", "schedule", "off").exit_code == 0
    assert h.context.hook.skiff_periodic_tasks(context=h.context) == [[]]


class _CleanupApi:
    def __init__(self):
        self.removed_images: list[str] = []

    def df(self):
        return {
            "Containers": [{"Id": "c-run", "SizeRw": 5_000_000}, {"Id": "c-old", "SizeRw": 1000}],
            "Images": [
                {"Id": "sha256:dangling000000", "Size": 9_000_000, "SharedSize": 1_000_000},
                {"Id": "sha256:deps-old000000", "Size": 3_000_000, "SharedSize": 0},
            ],
        }

    def containers(self, all=False, filters=None):
        label = filters["label"]
        if label == "skiff.app=cat":
            common = {"Labels": {"skiff.app": "cat", "skiff.role": "oneoff"}, "State": "exited"}
            return [
                {**common, "Id": "c-run", "Names": ["/x"], "Created": 1},
                {
                    **common,
                    "Id": "c-job-1",
                    "Names": ["/cat.scheduler.j"],
                    "Created": 1,
                    "Labels": {**common["Labels"], "skiff.job": "j"},
                },
                {
                    **common,
                    "Id": "c-job-2",
                    "Names": ["/cat.scheduler.j"],
                    "Created": 2,
                    "Labels": {**common["Labels"], "skiff.job": "j"},
                },
                {
                    "Id": "c-stopped",
                    "Names": ["/cat.web.1"],
                    "State": "exited",
                    "Labels": {"skiff.app": "cat", "skiff.role": "process"},
                },
                {
                    "Id": "c-old",
                    "Names": ["/cat.web.1.old-abc1"],
                    "State": "exited",
                    "Labels": {"skiff.app": "cat", "skiff.role": "process"},
                },
                {
                    "Id": "c-live",
                    "Names": ["/cat.web.1.v3"],
                    "State": "running",
                    "Labels": {"skiff.app": "cat", "skiff.role": "process"},
                },
            ]
        return []

    def images(self, filters=None):
        if filters.get("dangling"):
            return [{"Id": "sha256:dangling000000"}]
        if filters["label"] == "skiff.deps=cat":
            return [{"Id": "sha256:deps-old000000", "RepoTags": ["skiff/cat:deps-1"]}, {"Id": "sha256:deps-used"}]
        return []

    def remove_image(self, ident, force=False):
        self.removed_images.append(ident)


def test_cleanup_plans_exited_one_offs_leftovers_dangling_images_and_stale_layers(skiff):
    from skiff_docker.commands import cleanup

    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    r = h.state.create_release(
        "cat",
        description="d",
        image="i",
        revision=None,
        config={},
        processes={},
        meta={"deps_image": "sha256:deps-used"},
    )
    h.state.finish_release(r, "succeeded", {})

    class Client:
        api = _CleanupApi()

    found = cleanup.plan(h.context, Client(), ["cat"])
    assert [(i["id"], i["size"]) for i in found["containers"]] == [
        ("c-run", 5_000_000),
        ("c-job-1", 0),
        ("c-old", 1000),
    ]
    assert [(i["id"], i["size"]) for i in found["images"]] == [("sha256:dangling000000", 8_000_000)]
    assert [(i["name"], i["size"]) for i in found["caches"]] == [("skiff/cat:deps-1", 3_000_000)]
    assert cleanup.human(8_000_000) == "8.0 MB" and cleanup.human(512) == "512 B"


class _RemovingElsewhere:
    """An engine where another process is removing the container: gone after three inspects."""

    def __init__(self):
        self.inspects = 0

    def remove_container(self, ident, force=False, v=False):
        from docker.errors import APIError

        raise APIError("409 Conflict", explanation=f"removal of container {ident} is already in progress")

    def inspect_container(self, ident):
        from docker.errors import NotFound

        self.inspects += 1
        if self.inspects >= 3:
            raise NotFound("No such container")
        return {"Id": ident}


def test_remove_container_returns_once_a_removal_someone_else_started_is_done():
    from skiff_docker import engine

    api = _RemovingElsewhere()
    engine.remove_container(type("C", (), {"api": api})(), "abc")
    assert api.inspects == 3
