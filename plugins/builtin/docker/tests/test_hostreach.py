"""The host-reaching classifier (pure): every rule, every spelling."""

from __future__ import annotations

import pytest

from skiff_docker.hostreach import host_reaching_reason, split_tokens

HOST_REACHING = [
    # host paths and the docker socket, in every spelling
    ["--volume=/:/host"],
    ["--volume", "/:/host"],
    ["-v", "/:/host"],
    ["-v/:/host"],
    ["-v=/:/host"],
    ["--volume=/etc:/etc:ro"],
    ["-v", "./data:/data"],
    ["-v", "~/x:/x"],
    ["--volume=/var/run/docker.sock:/s"],
    ["'--volume=/:/host'"],
    ['"-v" "/:/host"'],
    ["-v '/:/host'"],
    ["--mount=type=bind,source=/,target=/host"],
    ["--mount", "type=bind,src=/etc,dst=/etc"],
    ["--mount=source=/srv,target=/srv"],  # a path source: a bind whatever the type says
    ["--mount=type=volume,source=x,target=/x,volume-driver=local"],
    ["--mount=type=volume,source=cat,target=/x,volume-opt=device=/dev/sda"],
    ["--mount=type=npipe,source=a,target=/b"],
    ["--env=X=/var/run/docker.sock"],
    # named volumes of another app or service
    ["--volume=postgres-db:/data"],
    ["-v", "catmeow_data:/data"],
    ["-v", "cat-data:/data"],
    ["--mount=type=volume,source=other_data,target=/data"],
    # privileges, devices, capabilities
    ["--privileged"],
    ["--cap-add=ALL"],
    ["--cap-add", "SYS_ADMIN"],
    ["--cap-add=NET_ADMIN"],
    ["--device=/dev/sda"],
    ["--device", "/dev/kvm:/dev/kvm"],
    ["--device-cgroup-rule=a *:* rwm"],
    ["--gpus=all"],
    ["--sysctl=kernel.shmmax=1"],
    ["--sysctl", "net.ipv4.ip_forward=1"],
    ["--cgroup-parent=/"],
    ["--runtime=runc"],
    ["--oom-kill-disable"],
    ["--volumes-from=db"],
    ["--security-opt=seccomp=unconfined"],
    ["--security-opt", "apparmor=unconfined"],
    ["--security-opt=label=disable"],
    # root
    ["--user=0"],
    ["--user", "root"],
    ["-u", "0"],
    ["-u0"],
    ["--user=0:0"],
    ["--user=0:1000"],
    ["--user=root:staff"],
    ["--user=00"],
    ["--user=1000:0"],
    ["--user=1000:root"],
    ["--user=:1000"],
    # host groups
    ["--group-add=docker"],
    ["--group-add", "root"],
    ["--group-add=0"],
    ["--group-add=999"],
    ["--group-add=sudo"],
    ["--group-add=disk"],
    # host (or another container's) namespaces
    ["--network=host"],
    ["--net=host"],
    ["--network", "container:db"],
    ["--net", "host"],
    ["--pid=host"],
    ["--pid=container:db"],
    ["--ipc=host"],
    ["--ipc=container:db"],
    ["--uts=host"],
    # another app's network (isolation): only network:set attaches an app to a shared network
    ["--network=skiff"],
    ["--network=bridge"],
    ["--network=skiff-app-dog"],
    ["--net", "shared"],
    ["--userns=host"],
    ["--cgroupns=host"],
    # ports on the host, host files read or written by the client
    ["--publish=80:5000"],
    ["-p", "127.0.0.1:22:22"],
    ["-P"],
    ["--publish-all"],
    ["--env-file=/etc/shadow"],
    ["--label-file=/etc/shadow"],
    ["--cidfile=/etc/passwd"],
    # what cannot be read is not declared safe
    ["--volume=/:/host", "--privileged"],
    ["'--volume=/:/host"],
    ["volume=/:/host"],
    [],
    ["-itv", "/:/host"],
]

APP_SCOPED = [
    ["--add-host=db:10.0.0.2"],
    ["--dns=1.1.1.1"],
    ["--cap-drop=ALL"],
    ["--cap-drop", "NET_RAW"],
    ["--shm-size=64m"],
    ["--ulimit=nofile=1024:2048"],
    ["--tmpfs=/tmp:size=64m"],
    ["--read-only"],
    ["--label=team=cats"],
    ["--log-driver=json-file"],
    ["--log-opt=max-size=10m"],
    ["--workdir=/app"],
    ["-w", "/app"],
    ["--hostname=web"],
    ["--build-arg=VERSION=1"],
    ["--user=1000"],
    ["--user=1000:1000"],
    ["-u", "app"],
    ["--user=nobody:nogroup"],
    ["--user=10"],
    ["--group-add=1000"],
    ["--group-add=audio-app"],
    ["--volume=/data"],  # an anonymous volume
    ["--volume=cat:/data"],
    ["-v", "cat_data:/data:ro"],
    ["--volume=cat.cache:/cache"],
    ["--mount=type=volume,source=cat_data,target=/data"],
    ["--mount=type=volume,target=/data"],
    ["--mount=type=tmpfs,target=/tmp"],
    ["--network=none"],
    ["--ipc=private"],
    ["--ipc=shareable"],
    ["--pid="],
    ["--security-opt=no-new-privileges"],
    ["--security-opt", "no-new-privileges:true"],
    ["'--add-host=db:10.0.0.2'"],
    ['"--user" "1000"'],
]


@pytest.mark.parametrize("tokens", HOST_REACHING, ids=lambda t: " ".join(t) or "(empty)")
def test_host_reaching(tokens):
    reason = host_reaching_reason(tokens, app="cat")
    assert reason and "\n" not in reason


@pytest.mark.parametrize("tokens", APP_SCOPED, ids=lambda t: " ".join(t))
def test_app_scoped(tokens):
    assert host_reaching_reason(tokens, app="cat") is None


def test_named_volumes_need_the_app_and_its_own_prefix():
    assert host_reaching_reason(["--volume=cat_data:/data"], app="cat") is None
    assert host_reaching_reason(["--volume=cat_data:/data"], app="dog") is not None
    assert host_reaching_reason(["--volume=cat_data:/data"]) is not None  # no app: nobody's own
    assert host_reaching_reason(["--volume=cat-meow_data:/data"], app="cat-meow") is None
    assert host_reaching_reason(["--volume=cat-meow_data:/data"], app="cat") is not None
    assert host_reaching_reason(["--volume=ca:/data"], app="cat") is not None


def test_reasons_say_what_reaches_the_host():
    assert "host path /" in host_reaching_reason(["-v", "/:/host"], app="cat")
    assert "docker socket" in host_reaching_reason(["--mount=type=volume,source=docker.sock,target=/s"], app="cat")
    assert "uid 0" in host_reaching_reason(["-u", "0:0"], app="cat")
    assert "pid namespace" in host_reaching_reason(["--pid=host"], app="cat")
    assert "not the app's own" in host_reaching_reason(["-v", "dog_data:/d"], app="cat")


def test_split_tokens_forms():
    assert split_tokens(["--volume=/a:/b"]) == ("--volume", "/a:/b")
    assert split_tokens(["--volume", "/a:/b"]) == ("--volume", "/a:/b")
    assert split_tokens(["-v", "/a:/b"]) == ("--volume", "/a:/b")
    assert split_tokens(["-v/a:/b"]) == ("--volume", "/a:/b")
    assert split_tokens(["-u", "0"]) == ("--user", "0")
    assert split_tokens(["--net=host"]) == ("--network", "host")
    assert split_tokens(["'--user=0'"]) == ("--user", "0")
    assert split_tokens(["--privileged"]) == ("--privileged", "")
    for bad in ([], ["value"], ["--dns=1", "--dns=2"], ["'--user=0"], ["--privileged", "x"]):
        with pytest.raises(ValueError):
            split_tokens(bad)
