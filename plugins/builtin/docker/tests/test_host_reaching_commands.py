"""docker-options over SSH vs from a root shell, and the check again at container creation."""

from __future__ import annotations

import shlex

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
import skiff_ssh_keys.plugin as ssh_keys_plugin  # answers skiff_key_role: a key without a stored role is an admin
from skiff.deploy import Deploy
from skiff.output import Output
from skiff_docker import engine, scheduler, settings

#: (phases, option as typed, stored form): every host-reaching option the allow-list knows
HOST_REACHING = [
    ("run", "--volume=/:/host", "--volume=/:/host"),
    (
        "deploy,run",
        "-v /var/run/docker.sock:/var/run/docker.sock",
        "--volume=/var/run/docker.sock:/var/run/docker.sock",
    ),
    ("deploy", "--volume=dog_data:/data", "--volume=dog_data:/data"),
    ("run", "--mount=type=bind,source=/,target=/host", "--mount=type=bind,source=/,target=/host"),
    ("run", "--user=0:0", "--user=0:0"),
    ("run", "-u root", "--user=root"),
    ("deploy", "--cap-add=ALL", "--cap-add=ALL"),
    ("deploy", "--privileged", "--privileged"),
    ("deploy", "--device=/dev/kvm", "--device=/dev/kvm"),
    ("deploy", "--network=host", "--network=host"),
    ("deploy", "--net=container:db", "--network=container:db"),
    ("deploy", "--pid=host", "--pid=host"),
    ("deploy", "--ipc=host", "--ipc=host"),
    ("deploy", "--uts=host", "--uts=host"),
    ("deploy", "--userns=host", "--userns=host"),
    ("deploy", "--cgroupns=host", "--cgroupns=host"),
    ("deploy", "--security-opt=seccomp=unconfined", "--security-opt=seccomp=unconfined"),
    ("deploy", "--sysctl=net.ipv4.ip_forward=1", "--sysctl=net.ipv4.ip_forward=1"),
    ("run", "--group-add=docker", "--group-add=docker"),
]


@pytest.fixture
def h(skiff):
    harness = skiff(("apps", apps_plugin), ("docker", docker_plugin), ("ssh-keys", ssh_keys_plugin))
    harness.create_app("cat")
    harness.create_app("dog")
    return harness


def over_ssh(h, monkeypatch, command: str):
    return h.ssh(command, key="admin")


def warnings_of(h, phase: str, app: str = "cat") -> tuple[list[str], list[str]]:
    warned: list[str] = []
    return settings.applied_docker_options(h.state, app, phase, warned.append), warned


@pytest.mark.parametrize(("phases", "typed", "stored"), HOST_REACHING, ids=[t for _, t, _ in HOST_REACHING])
def test_refused_over_ssh_with_one_line_and_nothing_stored(h, monkeypatch, phases, typed, stored):
    r = over_ssh(h, monkeypatch, f"docker-options:add cat {phases} {typed}")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [r.stderr.rstrip("\n")] and r.stderr.startswith(f"!     {stored} reaches the host")
    assert "only root on the server may set it (docker-options:add from a root shell)" in r.stderr
    assert h.state.get_property("docker", "docker-options", app="cat") is None
    assert h.state.get_property("docker", "docker-options-root", app="cat") is None


@pytest.mark.parametrize(("phases", "typed", "stored"), HOST_REACHING, ids=[t for _, t, _ in HOST_REACHING])
def test_accepted_from_a_root_shell_and_applied(h, phases, typed, stored):
    r = h.invoke("docker-options:add", "cat", phases, *shlex.split(typed))
    assert r.exit_code == 0, r.stderr
    for phase in phases.split(","):
        assert settings.docker_options(h.state, "cat")[phase] == [stored]
        assert warnings_of(h, phase) == ([stored], [])


def test_app_scoped_options_still_work_over_ssh(h, monkeypatch):
    for typed in ("--add-host=db:10.0.0.2", "--volume=cat_data:/data", "--user=1000:1000", "--cap-drop=ALL"):
        r = over_ssh(h, monkeypatch, f"docker-options:add cat deploy {typed}")
        assert r.exit_code == 0, r.stderr
    assert warnings_of(h, "deploy") == (
        ["--add-host=db:10.0.0.2", "--volume=cat_data:/data", "--user=1000:1000", "--cap-drop=ALL"],
        [],
    )


def test_a_non_root_local_shell_is_refused(h, monkeypatch):
    monkeypatch.setattr(h.context, "started_as_root", False)
    r = h.invoke("docker-options:add", "cat", "run", "--privileged")
    assert r.exit_code == 1 and "only root on the server" in r.stderr
    assert h.state.get_property("docker", "docker-options", app="cat") is None


def test_one_bad_phase_stores_nothing(h):
    r = h.invoke("docker-options:add", "cat", "run,build", "--privileged")
    assert r.exit_code == 1 and "not allowed in the build phase" in r.stderr
    assert h.state.get_property("docker", "docker-options", app="cat") is None


def test_old_stored_values_are_not_applied_until_root_confirms(h, monkeypatch):
    # the way the code before this change stored docker-options (git show 2329b4f:.../commands_settings.py):
    # state.set_property("docker", "docker-options", {phase: ["--flag=value", ...]}, app=app)
    h.state.set_property(
        "docker", "docker-options", {"run": ["--volume=/:/host", "--user=0:0", "--add-host=db:10.0.0.2"]}, app="cat"
    )
    applied, warned = warnings_of(h, "run")
    assert applied == ["--add-host=db:10.0.0.2"]
    assert warned == [
        f"docker-options: {o} is not applied: host-reaching options need root's confirmation "
        "(docker-options:add from a root shell)"
        for o in ("--volume=/:/host", "--user=0:0")
    ]
    assert (
        "--volume=/:/host (not applied: needs root's confirmation)" in h.invoke("docker-options:report", "cat").stdout
    )

    refused = over_ssh(h, monkeypatch, "docker-options:confirm cat run")
    assert refused.exit_code == 1 and "only root on the server" in refused.stderr
    assert warnings_of(h, "run")[0] == ["--add-host=db:10.0.0.2"]

    assert h.invoke("docker-options:confirm", "cat", "run").exit_code == 0
    assert warnings_of(h, "run") == (["--volume=/:/host", "--user=0:0", "--add-host=db:10.0.0.2"], [])
    assert "not applied" not in h.invoke("docker-options:report", "cat").stdout

    assert h.invoke("docker-options:remove", "cat", "run", "--volume=/:/host").exit_code == 0
    h.state.set_property("docker", "docker-options", {"run": ["--volume=/:/host"]}, app="cat")  # written again
    assert warnings_of(h, "run")[0] == []  # removing dropped the confirmation too


def test_a_confirmation_for_another_app_does_not_count(h):
    """A clone of an app (or any copy of its properties) does not carry root's confirmation."""
    assert h.invoke("docker-options:add", "dog", "run", "--volume=/srv/dog:/data").exit_code == 0
    for key in ("docker-options", "docker-options-root"):
        h.state.set_property("docker", key, h.state.get_property("docker", key, app="dog"), app="cat")
    assert warnings_of(h, "run", "dog")[0] == ["--volume=/srv/dog:/data"]
    applied, warned = warnings_of(h, "run", "cat")
    assert applied == [] and "--volume=/srv/dog:/data is not applied" in warned[0]


def test_forged_values_that_fail_the_allow_list_are_not_applied(h):
    h.state.set_property(
        "docker",
        "docker-options",
        {"deploy": ["--volume=/a:/b;rm -rf /", {"x": 1}, "--pid-limit=5"], "build": ["--network=host"]},
        app="cat",
    )
    applied, warned = warnings_of(h, "deploy")
    assert applied == [] and len(warned) == 3
    assert warnings_of(h, "build")[0] == []


class FakeAPI:
    def create_endpoint_config(self, **kwargs):
        return kwargs


class FakeClient:
    api = FakeAPI()


def test_release_tasks_and_containers_get_only_checked_options(h, monkeypatch):
    h.state.set_property("docker", "docker-options", {"deploy": ["--volume=/:/host", "--label=team=cats"]}, app="cat")
    seen: list[dict] = []
    monkeypatch.setattr(engine, "client", lambda: FakeClient())
    monkeypatch.setattr(engine, "ensure_app_network", lambda c, app: None)
    monkeypatch.setattr(scheduler, "run_oneoff", lambda c, kwargs, write: seen.append(kwargs) or 0)
    out = Output(quiet=True)
    warned: list[str] = []
    monkeypatch.setattr(out, "warn", warned.append)
    d = Deploy(context=h.context, app="cat", kind="deploy", description="", output=out)
    d.image = "stub:cat-1"
    scheduler.run_task(d, "release", "true")
    assert "volumes" not in seen[0] and seen[0]["labels"]["team"] == "cats"
    assert warned == [
        (
            "docker-options: --volume=/:/host is not applied: host-reaching options need root's "
            "confirmation (docker-options:add from a root shell)"
        )
    ]

    assert h.invoke("docker-options:confirm", "cat", "deploy").exit_code == 0
    scheduler.run_task(d, "release", "true")
    assert seen[1]["volumes"] == {"/": {"bind": "/host", "mode": "rw"}}


def test_root_network_replaces_the_apps_own_network():
    from skiff_docker import options

    kwargs = scheduler.create_kwargs(
        FakeClient(),
        app="cat",
        image="i",
        name="cat.web.1",
        process="web",
        index=1,
        release=1,
        command=None,
        env={},
        port=5000,
        host_port=None,
        limits={},
        extra=["--network=host", "--privileged", "--pid=host"],
    )
    assert kwargs["network_mode"] == "host" and "network" not in kwargs and kwargs["privileged"]
    assert kwargs["pid_mode"] == "host"
    plain = scheduler.create_kwargs(
        FakeClient(),
        app="cat",
        image="i",
        name="cat.web.1",
        process="web",
        index=1,
        release=1,
        command=None,
        env={},
        port=5000,
        host_port=None,
        limits={},
        extra=[],
    )
    assert plain["network"] == "skiff-app-cat" and "network_mode" not in plain
    mount = options.run_kwargs(["--mount=type=bind,source=/srv,target=/data,readonly"])["mounts"][0]
    assert mount["Source"] == "/srv" and mount["Target"] == "/data" and mount["ReadOnly"] is True
