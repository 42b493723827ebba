"""Unit tests of the swarm scheduler: service specs, settings, and a rollout on a recorded engine."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

import skiff_swarm.plugin as swarm_plugin
from skiff import lifecycle
from skiff.errors import DeployError, SkiffError, ValidationError
from skiff.testing import DirReceiver, StubBuilder, dir_source
from skiff_swarm import engine, rollout, settings, spec


def web_spec(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        app="cat",
        process="web",
        version=3,
        image="skiff/cat:v3",
        line="gunicorn app:app",
        config={"SECRET": "s3cr3t"},
        revision="abc1234",
        replicas=2,
        port=5000,
        app_json={},
        start_timeout=60,
    )
    kwargs.update(overrides)
    return spec.service_spec(**kwargs)


def test_a_web_service_publishes_a_dynamic_host_port_spreads_and_keeps_config_out_of_labels():
    s = web_spec()
    assert s["name"] == "skiff-cat-web-v3"
    assert s["mode"] == {"Replicated": {"Replicas": 2}}
    assert s["endpoint_spec"] == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 5000, "PublishMode": "host"}],
    }
    template = s["task_template"]
    assert template["Placement"] == {"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]}
    assert template["Networks"] == [{"Target": "skiff-swarm-cat", "Aliases": ["cat.web"]}]
    container = template["ContainerSpec"]
    assert container["Args"] == ["/bin/sh", "-c", "gunicorn app:app"]
    assert "SECRET=s3cr3t" in container["Env"] and "PORT=5000" in container["Env"]
    assert "DYNO=web.{{.Task.Slot}}" in container["Env"] and "GIT_REV=abc1234" in container["Env"]
    assert "s3cr3t" not in json.dumps([s["labels"], container["Labels"]])
    assert s["update_config"]["Order"] == "start-first" and s["update_config"]["FailureAction"] == "rollback"


def test_a_worker_publishes_nothing_and_has_no_healthcheck_without_an_app_json_check():
    s = web_spec(process="worker", line="python worker.py")
    assert s["endpoint_spec"] == {"Mode": "dnsrr"}
    assert "Healthcheck" not in s["task_template"]["ContainerSpec"]


def test_the_app_json_check_becomes_an_argv_healthcheck_that_runs():
    app_json = {"healthchecks": {"web": [{"path": "/ready'; rm -rf /", "content": "ok", "attempts": 3, "wait": 2}]}}
    check = web_spec(app_json=app_json)["task_template"]["ContainerSpec"]["Healthcheck"]
    assert check["Test"][:3] == ["CMD", "python3", "-c"]
    assert check["Test"][4:7] == ["/ready'; rm -rf /", "ok", "399"]  # arguments, never a shell line
    assert check["Retries"] == 3 and check["Interval"] == 2 * spec.SECOND
    default = web_spec()["task_template"]["ContainerSpec"]["Healthcheck"]
    assert default["Test"][4:7] == ["/", "", "499"]
    # the probe itself: nothing listens, so it gives up after its wait with a failure
    probe = subprocess.run(
        [sys.executable, "-c", spec.PROBE, "/", "", "499", "0.2"], env={"PORT": "1"}, capture_output=True
    )
    assert probe.returncode == 1


def test_upstreams_are_node_addresses_with_each_running_tasks_published_port():
    def task(node: str, port: int, state: str = "running", desired: str = "running") -> dict:
        ports = [{"PublishMode": "host", "PublishedPort": port, "TargetPort": 5000}] * 2  # IPv4 and IPv6
        return {"NodeID": node, "DesiredState": desired, "Status": {"State": state, "PortStatus": {"Ports": ports}}}

    tasks = [task("n1", 30001), task("n2", 30002), task("n1", 30003, "shutdown", "shutdown"), task("n3", 1)]
    assert spec.upstreams(tasks, {"n1": "10.0.0.1", "n2": "10.0.0.2"}) == ["10.0.0.1:30001", "10.0.0.2:30002"]
    assert spec.node_address({"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "10.0.0.9:2377"}}) == "10.0.0.9"


@pytest.mark.parametrize("value", ["unix:///run/x.sock", "tcp://10.0.0.1:2375", ""])
def test_manager_addresses_that_are_accepted(value):
    assert settings.engine_address(value) == value


@pytest.mark.parametrize("value", ["http://x", "unix://relative", "tcp://h:1;rm", "unix:///a b", "tcp://h"])
def test_manager_addresses_that_are_refused(value):
    with pytest.raises(ValidationError):
        settings.engine_address(value)


# -- a rollout on a recorded engine ----------------------------------------------------------


class FakeApi:
    """Services and tasks of a one-node swarm; ``health`` says how a new service's tasks end up."""

    def __init__(self, health: str = "running") -> None:
        self.health = health
        self.services_: dict[str, dict] = {}
        self.removed: list[str] = []
        self.networks_: list[str] = []
        self.port = 30000
        self.job_exit = 0
        self.created: list[dict] = []
        self.attached: dict[str, dict[str, dict]] = {}  # network -> {container id: its labels}

    def nodes(self):
        return [{"ID": "n1", "Status": {"State": "ready", "Addr": "10.9.0.2"}, "Description": {"Hostname": "node1"}}]

    def networks(self, names=None):
        return [
            {"Id": n, "Name": n, "Labels": {spec.LABEL_NETWORK: n[len("skiff-swarm-") :]}}
            for n in self.networks_
            if n in (names or [n])
        ]

    def create_network(self, name, **kwargs):
        self.networks_.append(name)

    def remove_network(self, ident):
        if self.attached.get(ident):
            raise RuntimeError(f"network {ident} has active endpoints")
        self.networks_.remove(ident)

    def inspect_network(self, ident):
        return {"Containers": {c: {} for c in self.attached.get(ident, {})}}

    def inspect_container(self, ident):
        labels = next(found[ident] for found in self.attached.values() if ident in found)
        return {"Config": {"Labels": labels}}

    def disconnect_container_from_network(self, ident, network, force=False):
        del self.attached[network][ident]

    def _task(self, slot: int, web: bool) -> dict:
        self.port += 1
        ports = [{"PublishMode": "host", "PublishedPort": self.port}] if web else []
        status = {"State": self.health, "PortStatus": {"Ports": ports}, "Err": "dockerexec: unhealthy container"}
        status["ContainerStatus"] = {"ContainerID": f"ct{self.port}"}
        return {"ID": f"t{self.port}", "Slot": slot, "NodeID": "n1", "DesiredState": "running", "Status": status}

    def update_service(self, ident, version, mode=None, fetch_current_spec=False):
        service = self.services_[ident]
        assert fetch_current_spec and version == service["Version"]["Index"]
        service["Version"]["Index"] += 1
        service["Spec"]["Mode"] = mode
        for task in service["tasks"]:
            task["DesiredState"] = "shutdown"
            task["Status"]["State"] = "shutdown"
        web = "Ports" in service["kwargs"]["endpoint_spec"]
        service["tasks"] += [self._task(slot, web) for slot in range(1, mode["Replicated"]["Replicas"] + 1)]

    def services(self, filters=None):
        label = (filters or {}).get("label")
        name = (filters or {}).get("name")
        return [
            s
            for s in self.services_.values()
            if (not label or f"{spec.LABEL_APP}={s['Spec']['Labels'][spec.LABEL_APP]}" == label)
            and (not name or s["Spec"]["Name"] == name)
        ]

    def create_service(self, **kwargs):
        ident = f"id-{kwargs['name']}"
        if "ReplicatedJob" in kwargs["mode"]:  # a one-off: its one task ends with job_exit
            status = {"State": "complete", "ContainerStatus": {"ExitCode": self.job_exit}}
            tasks = [{"ID": "tjob", "Slot": 1, "NodeID": "n1", "DesiredState": "complete", "Status": status}]
        else:
            web = "Ports" in kwargs.get("endpoint_spec", {})
            tasks = [self._task(slot, web) for slot in range(1, kwargs["mode"]["Replicated"]["Replicas"] + 1)]
        self.services_[ident] = {
            "ID": ident,
            "Version": {"Index": 1},
            "Spec": {"Name": kwargs["name"], "Labels": kwargs["labels"], "Mode": kwargs["mode"]},
            "tasks": tasks,
            "kwargs": kwargs,
        }
        self.created.append(kwargs)
        return {"ID": ident}

    def tasks(self, filters):
        return self.services_[filters["service"]]["tasks"]

    def remove_service(self, ident):
        self.removed.append(ident)
        del self.services_[ident]

    def service_logs(self, ident, **kwargs):
        return b"web v2 listening\nTraceback: boom\n"


@pytest.fixture
def fake_swarm(monkeypatch):
    api = FakeApi()
    client = SimpleNamespace(api=api)
    monkeypatch.setattr(engine, "client", lambda address: client)
    monkeypatch.setattr(engine, "image_for_nodes", lambda context, c, app, image, local: image)
    retired: list[list[str]] = []
    monkeypatch.setattr(
        rollout,
        "spawn_retire",
        lambda manager, services, wait, network_of=None: retired.append(
            list(services) + [f"net:{network_of}"] * bool(network_of)
        ),
    )
    api.retired = retired
    return api


@pytest.fixture
def harness(skiff, fake_swarm):
    h = skiff(("swarm", swarm_plugin), ("dir", DirReceiver()), ("builder", StubBuilder()))
    h.create_app("cat")
    assert h.invoke("scheduler:set", "cat", "selected", "swarm").exit_code == 0
    return h


def deploy(h, tmp_path, name: str):
    src = tmp_path / name
    src.mkdir()
    (src / "Procfile").write_text("web: python3 app.py\n")
    return lifecycle.deploy(h.context, "cat", dir_source(src, name * 7))


def test_a_deploy_runs_one_service_per_process_and_retires_the_previous_one(harness, fake_swarm, tmp_path):
    first = deploy(harness, tmp_path, "a")
    assert first.upstreams == ["10.9.0.2:30001"] and first.formation == {"web": 1}
    assert list(fake_swarm.services_) == ["id-skiff-cat-web-v1"]
    harness.state.set_property("docker", "formation", {"web": 3}, app="cat")  # ps:scale's property
    second = deploy(harness, tmp_path, "b")
    assert sorted(second.upstreams) == ["10.9.0.2:30002", "10.9.0.2:30003", "10.9.0.2:30004"]
    assert fake_swarm.retired == [["id-skiff-cat-web-v1"]]  # after nginx switched, in post_deploy
    assert fake_swarm.networks_ == ["skiff-swarm-cat"]


def test_a_failed_health_check_removes_the_new_service_and_keeps_the_old(harness, fake_swarm, tmp_path):
    deploy(harness, tmp_path, "a")
    fake_swarm.health = "failed"
    with pytest.raises(DeployError, match="health check failed.*v1 keeps serving"):
        deploy(harness, tmp_path, "b")
    assert list(fake_swarm.services_) == ["id-skiff-cat-web-v1"]
    assert fake_swarm.removed == ["id-skiff-cat-web-v2"] and fake_swarm.retired == []
    assert harness.state.current_release("cat").version == 1


def test_apps_of_the_docker_scheduler_are_left_to_it(harness, fake_swarm, tmp_path):
    assert harness.invoke("scheduler:set", "cat", "selected").exit_code == 0  # back to the default: docker
    with pytest.raises(DeployError, match="no scheduler"):
        deploy(harness, tmp_path, "a")
    assert fake_swarm.services_ == {}
    refused = harness.invoke("scheduler:set", "cat", "selected", "k8s")
    assert refused.exit_code != 0 and "must be one of docker, swarm" in refused.output


def test_destroy_removes_the_services_and_the_network(harness, fake_swarm, tmp_path):
    deploy(harness, tmp_path, "a")
    swarm_plugin.skiff_app_destroyed(harness.context, "cat")
    assert fake_swarm.services_ == {} and fake_swarm.networks_ == []


def test_sync_records_moved_tasks_and_rebuilds_nginx_only_when_they_moved(harness, fake_swarm, tmp_path, monkeypatch):
    from skiff_swarm import sync

    deploy(harness, tmp_path, "a")
    rebuilt: list[list[str]] = []
    monkeypatch.setattr(
        sync.subprocess, "run", lambda argv, **kw: rebuilt.append(argv[-2:]) or SimpleNamespace(returncode=0)
    )
    assert harness.invoke("swarm:sync", "cat").exit_code == 0
    assert rebuilt == []  # nothing moved
    task = fake_swarm.services_["id-skiff-cat-web-v1"]["tasks"][0]
    task["Status"]["PortStatus"]["Ports"] = [{"PublishMode": "host", "PublishedPort": 31999}]
    result = harness.invoke("swarm:sync")
    assert result.exit_code == 0 and "cat: upstreams now 10.9.0.2:31999" in result.output
    assert rebuilt == [["proxy:build-config", "cat"]]
    assert harness.state.current_release("cat").upstreams == ["10.9.0.2:31999"]
    task["Status"]["State"] = "failed"  # no running web task: nginx keeps what it has
    assert "upstreams kept" in harness.invoke("swarm:sync", "cat").output
    assert harness.state.current_release("cat").upstreams == ["10.9.0.2:31999"]


def test_sync_refuses_an_app_of_the_docker_scheduler(harness):
    harness.create_app("dog")
    refused = harness.invoke("swarm:sync", "dog")
    assert refused.exit_code != 0 and "does not run on the swarm" in refused.output


def test_the_cron_runner_syncs_only_while_an_app_runs_on_the_swarm(harness):
    assert [t.argv for t in swarm_plugin.skiff_periodic_tasks(harness.context)] == [("swarm:sync",)]
    assert harness.invoke("scheduler:set", "cat", "selected", "docker").exit_code == 0
    assert swarm_plugin.skiff_periodic_tasks(harness.context) == []


def test_a_renamed_app_runs_as_the_new_names_services_and_the_old_ones_retire(harness, fake_swarm, tmp_path):
    deploy(harness, tmp_path, "a")
    harness.state.rename_app("cat", "lion")
    swarm_plugin.skiff_app_renamed(harness.context, "cat", "lion")
    assert sorted(fake_swarm.services_) == ["id-skiff-cat-web-v1", "id-skiff-lion-web-v1"]
    assert fake_swarm.retired == [["id-skiff-cat-web-v1", "net:cat"]]
    assert harness.state.current_release("lion").upstreams == ["10.9.0.2:30002"]
    assert "skiff-swarm-lion" in fake_swarm.networks_


def test_run_is_a_one_off_job_task_whose_output_and_status_come_back(harness, fake_swarm, tmp_path):
    from skiff.contracts import OneOff

    deploy(harness, tmp_path, "a")
    created: list[dict] = []
    original = fake_swarm.create_service

    def create_job(**kwargs):
        created.append(kwargs)
        answer = original(**{**kwargs, "mode": {"Replicated": {"Replicas": 1}}, "endpoint_spec": {}})
        status = fake_swarm.services_[answer["ID"]]["tasks"][0]["Status"]
        status.update(State="complete", ContainerStatus={"ExitCode": 3})
        return answer

    fake_swarm.create_service = create_job
    lines: list[str] = []
    code = swarm_plugin.skiff_run_oneoff(harness.context, OneOff("cat", ("/bin/sh", "-c", "exit 3")), lines.append)
    assert code == 3 and lines == ["web v2 listening", "Traceback: boom"]
    job = created[0]
    assert job["mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert job["task_template"]["ContainerSpec"]["Args"] == ["/bin/sh", "-c", "exit 3"]
    assert job["task_template"]["RestartPolicy"] == {"Condition": "none"}
    assert [s for s in fake_swarm.services_ if "-run-" in s] == []  # removed once it ended
    harness.create_app("dog")
    assert swarm_plugin.skiff_run_oneoff(harness.context, OneOff("dog", ("true",)), lines.append) is None


def test_logs_prefix_each_line_with_its_process_and_slot(harness, fake_swarm, tmp_path):
    deploy(harness, tmp_path, "a")
    service = fake_swarm.services_["id-skiff-cat-web-v1"]
    service["tasks"][0]["ID"] = "t1"
    fake_swarm.service_logs = lambda ident, **kw: (
        b"2026-12-04T10:00:01Z com.docker.swarm.node.id=n1,com.docker.swarm.task.id=t1 second\n"
        b"2026-12-04T10:00:00Z com.docker.swarm.node.id=n1,com.docker.swarm.task.id=t1 first\n"
    )
    lines: list[str] = []
    hook = harness.context.hook
    assert hook.skiff_app_logs(
        context=harness.context, app="cat", process=None, num=100, follow=False, write=lines.append
    )
    assert lines == ["2026-12-04T10:00:00Z cat[web.1]: first", "2026-12-04T10:00:01Z cat[web.1]: second"]
    harness.create_app("dog")
    none = hook.skiff_app_logs(
        context=harness.context, app="dog", process=None, num=100, follow=False, write=lines.append
    )
    assert none is None


# -- linked services, ps:stop/start/report, run:detached, release tasks ---------------------------


def test_a_swarm_app_names_its_overlay_for_linked_services_and_destroy_takes_them_off_it(harness, fake_swarm):
    hook = harness.context.hook
    assert hook.skiff_link_network(context=harness.context, app="cat") == "skiff-swarm-cat"
    assert fake_swarm.networks_ == ["skiff-swarm-cat"]  # made on the manager, where services run
    harness.create_app("dog")  # the docker scheduler's: its own bridge network (no answer)
    assert hook.skiff_link_network(context=harness.context, app="dog") is None
    # a postgres container on the overlay (no swarm task): destroy takes it off, then removes the network
    fake_swarm.attached["skiff-swarm-cat"] = {"c0ffee0123456789": {"skiff.postgres": "postgres"}}
    swarm_plugin.skiff_app_destroyed(harness.context, "cat")
    assert fake_swarm.networks_ == [] and fake_swarm.attached["skiff-swarm-cat"] == {}


def test_linked_services_are_asked_for_before_the_tasks_start(harness, fake_swarm, tmp_path):
    asked: list[tuple[str, str, str]] = []

    class Links:
        @swarm_plugin.hookimpl
        def skiff_container_options(self, context, app, process, role):
            asked.append((app, process, role))
            assert not fake_swarm.services_ or role != "process"  # before the first service exists

    harness.pm.register(Links(), "links")
    deploy(harness, tmp_path, "a")
    assert asked == [("cat", "web", "process")]


def test_ps_stop_scales_to_zero_ps_start_brings_the_release_back_and_nginx_follows(
    harness, fake_swarm, tmp_path, monkeypatch
):
    from skiff_swarm import sync

    deploy(harness, tmp_path, "a")
    rebuilt: list[list[str]] = []
    monkeypatch.setattr(
        sync.subprocess, "run", lambda argv, **kw: rebuilt.append(argv[-2:]) or SimpleNamespace(returncode=0)
    )
    hook, ctx = harness.context.hook, harness.context
    assert hook.skiff_app_stop(context=ctx, app="cat") == 1
    service = fake_swarm.services_["id-skiff-cat-web-v1"]
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 0}}
    assert hook.skiff_app_status(context=ctx, app="cat") == []  # nothing should run
    assert hook.skiff_app_stop(context=ctx, app="cat") == 0  # already stopped
    started = hook.skiff_app_start(context=ctx, app="cat")
    assert started == "started 1 task(s); upstreams now 10.9.0.2:30002", started
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert rebuilt == [["proxy:build-config", "cat"]]
    assert harness.state.current_release("cat").upstreams == ["10.9.0.2:30002"]
    rows = hook.skiff_app_status(context=ctx, app="cat")
    assert [(r["name"], r["status"], r["node"], r["address"], r["restarts"]) for r in rows] == [
        ("cat.web.1", "running", "node1", "10.9.0.2:30002", 1)
    ]
    harness.state.set_property("docker", "formation", {"web": 2}, app="cat")
    deploy(harness, tmp_path, "b")  # v2 runs; v1's task retires a moment later
    rows = hook.skiff_app_status(context=ctx, app="cat")
    assert sorted((r["release"], r["status"]) for r in rows) == [(1, "retiring"), (2, "running"), (2, "running")]
    fake_swarm.remove_service("id-skiff-cat-web-v2")  # the services are gone: ps:start redeploys
    assert hook.skiff_app_start(context=ctx, app="cat") is None
    harness.create_app("dog")
    assert hook.skiff_app_stop(context=ctx, app="dog") is None and hook.skiff_app_status(context=ctx, app="dog") is None


def test_run_detached_leaves_a_job_running_and_sync_removes_it_once_it_ended(harness, fake_swarm, tmp_path):
    from skiff.contracts import OneOff

    deploy(harness, tmp_path, "a")
    lines: list[str] = []
    oneoff = OneOff("cat", ("sleep", "5"), detach=True)
    assert swarm_plugin.skiff_run_oneoff(harness.context, oneoff, lines.append) == 0
    (name,) = lines
    assert name.startswith("skiff-cat-run-") and f"id-{name}" in fake_swarm.services_
    job = fake_swarm.services_[f"id-{name}"]
    env = job["kwargs"]["task_template"]["ContainerSpec"]["Env"]
    assert f"DYNO=run.{name.rsplit('-', 1)[1]}" in env
    job["tasks"][0]["Status"]["State"] = "running"
    assert "one-off" not in harness.invoke("swarm:sync", "cat").output  # still running: kept
    job["tasks"][0]["Status"]["State"] = "complete"
    result = harness.invoke("swarm:sync", "cat")
    assert f"removed the ended one-off service(s) {name}" in result.output, result.output
    assert f"id-{name}" not in fake_swarm.services_


class ReleaseTasks:
    """A Procfile ``release:`` line and app.json predeploy / postdeploy scripts."""

    @swarm_plugin.hookimpl
    def skiff_pre_build(self, deploy):
        deploy.release_command = "python3 migrate.py"
        deploy.app_json = {"scripts": {"dokku": {"predeploy": "echo pre", "postdeploy": "echo post"}}}


def test_release_tasks_run_as_one_off_jobs_of_the_new_image_and_a_failure_keeps_the_old_release(
    harness, fake_swarm, tmp_path
):
    harness.pm.register(ReleaseTasks(), "release-tasks")
    deploy(harness, tmp_path, "a")
    jobs = [k for k in fake_swarm.created if "ReplicatedJob" in k["mode"]]
    assert [j["task_template"]["ContainerSpec"]["Args"][-1] for j in jobs] == [
        "echo pre",
        "python3 migrate.py",
        "echo post",
    ]
    assert {j["task_template"]["ContainerSpec"]["Image"] for j in jobs} == {"stub:cat-1"}
    assert [j["labels"][spec.LABEL_PROCESS] for j in jobs] == ["predeploy", "release", "postdeploy"]
    assert not any("-release-" in s or "-predeploy-" in s for s in fake_swarm.services_)  # removed once ended
    fake_swarm.created.clear()
    fake_swarm.job_exit = 2
    with pytest.raises(DeployError, match="predeploy command failed with exit status 2"):
        deploy(harness, tmp_path, "b")
    assert [k["name"] for k in fake_swarm.created if "Replicated" in k["mode"]] == []  # no new service
    assert harness.state.current_release("cat").version == 1


def test_enter_execs_in_a_task_on_the_manager_and_names_the_node_of_one_it_cannot_reach(harness, fake_swarm, tmp_path):
    harness.state.set_property("docker", "formation", {"web": 2}, app="cat")
    deploy(harness, tmp_path, "a")
    execs: list[tuple[str, list[str]]] = []
    fake_swarm.exec_create = lambda container, cmd, **kw: execs.append((container, cmd)) or {"Id": "e1"}
    fake_swarm.exec_start = lambda ident, stream=False: iter([b"hello ", b"there\n"])
    fake_swarm.exec_inspect = lambda ident: {"ExitCode": 4}
    client = engine.client("")
    client.info = lambda: {"Swarm": {"NodeID": "n1"}}  # the manager is node n1
    out: list[str] = []
    hook, ctx = harness.context.hook, harness.context
    assert hook.skiff_app_enter(context=ctx, app="cat", target="web.2", command=["env"], write=out.append) == 4
    assert execs == [("ct30002", ["env"])] and "".join(out) == "hello there\n"
    fake_swarm.services_["id-skiff-cat-web-v1"]["tasks"][0]["NodeID"] = "n2"  # web.1 on a worker
    with pytest.raises(SkiffError, match="cat.web.1 runs on n2, whose engine Skiff does not reach"):
        hook.skiff_app_enter(context=ctx, app="cat", target="web", command=["env"], write=out.append)
    with pytest.raises(SkiffError, match="no running task web.3"):
        hook.skiff_app_enter(context=ctx, app="cat", target="web.3", command=["env"], write=out.append)
    with pytest.raises(SkiffError, match="invalid process"):
        hook.skiff_app_enter(context=ctx, app="cat", target="web;rm", command=["env"], write=out.append)
    harness.create_app("dog")
    assert hook.skiff_app_enter(context=ctx, app="dog", target=None, command=["env"], write=out.append) is None
