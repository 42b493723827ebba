"""What Skiff asks the swarm for: service names, labels, networks and specs (pure functions).

One service per process type and release: ``skiff-APP-PROCESS-vN``, labelled with the app,
process and release (never with config values). Its tasks get the release's config as
environment, the app.json check of the process as a Docker healthcheck (the probe is argv,
never a shell line), a host-mode published port picked by the engine (web), a spread over
``node.id``, and an attachable overlay network of the app's own (``skiff-swarm-APP``).
"""

from __future__ import annotations

import re
from typing import Any

from skiff import contracts

LABEL_APP = "skiff.app"
LABEL_PROCESS = "skiff.process"
LABEL_RELEASE = "skiff.release"
LABEL_ROLE = "skiff.role"
LABEL_NETWORK = "skiff.swarm.network"
PROCESS_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,29}\Z")
SECOND = 1_000_000_000  # the engine's durations are nanoseconds

#: The in-container probe of a healthcheck: GET PATH on $PORT; healthy when the status is at most
#: MAX and the body holds CONTENT. While nothing listens yet it waits (up to WAIT seconds), so a
#: slow start uses no attempt, as the docker scheduler's checks do.
PROBE = """\
import os, sys, time, urllib.error, urllib.request
path, content, top, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
url = "http://127.0.0.1:" + os.environ["PORT"] + path
deadline = time.monotonic() + wait
while True:
    try:
        answer = urllib.request.urlopen(url, timeout=5)
        status, body = answer.status, answer.read(1 << 20).decode("utf-8", "replace")
        break
    except urllib.error.HTTPError as exc:
        status, body = exc.code, ""
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.1)
sys.exit(0 if status <= top and content in body else 1)
"""


def service_name(app: str, process: str, version: int) -> str:
    return f"skiff-{app}-{process}-v{version}"


def network_name(app: str) -> str:
    """The app's own attachable overlay network: ``skiff-swarm-APP``."""
    return f"skiff-swarm-{app}"


def labels(app: str, process: str, version: int) -> dict[str, str]:
    return {LABEL_APP: app, LABEL_PROCESS: process, LABEL_RELEASE: str(version), LABEL_ROLE: "process"}


def env_list(config: dict[str, str], *, process: str, port: int, revision: str | None) -> list[str]:
    """The tasks' environment: the release's config, ``PORT``, ``DYNO`` and ``GIT_REV`` (as the docker scheduler)."""
    env = dict(config)
    env["PORT"] = str(port)
    env["DYNO"] = f"{process}.{{{{.Task.Slot}}}}"  # a template the engine fills per task: web.1, web.2 ...
    if revision:
        env.setdefault("GIT_REV", revision)
    return [f"{key}={value}" for key, value in env.items()]


def _number(entry: dict[str, Any], key: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return default
    return float(value)


def healthcheck(app_json: dict[str, Any], process: str, *, start_timeout: float, attempts: int = 5) -> dict | None:
    """The Docker healthcheck of ``process``: its first app.json check with a ``path``, else
    ``GET /`` below 500 for ``web``; ``None`` (no healthcheck) for other processes without one."""
    entries = ((app_json or {}).get("healthchecks") or {}).get(process) if isinstance(app_json, dict) else None
    check = None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("type") != "liveness":
            path = entry.get("path")
            if isinstance(path, str) and path.startswith("/") and "\n" not in path:
                check = entry
                break
    if check is None and process != "web":
        return None
    entry = check or {}
    path = entry.get("path", "/")
    content = entry.get("content") if isinstance(entry.get("content"), str) else ""
    top = 399 if check is not None else 499
    tries = max(1, int(_number(entry, "attempts", attempts)))
    wait = _number(entry, "wait", 1.0)
    timeout = _number(entry, "timeout", 5.0)
    return {
        "Test": ["CMD", "python3", "-c", PROBE, path, content, str(top), f"{start_timeout:g}"],
        "Interval": int(max(wait, 0.5) * SECOND),
        "Timeout": int((start_timeout + timeout + 1) * SECOND),
        "Retries": tries,
        "StartPeriod": int(_number(entry, "initialDelay", 0.0) * SECOND),
    }


def service_spec(
    *,
    app: str,
    process: str,
    version: int,
    image: str,
    line: str,
    config: dict[str, str],
    revision: str | None,
    replicas: int,
    port: int,
    app_json: dict[str, Any],
    start_timeout: float,
    stop_grace: float = 10.0,
) -> dict[str, Any]:
    """The keyword arguments of ``APIClient.create_service`` for one process type of a release."""
    container: dict[str, Any] = {
        "Image": image,
        "Env": env_list(config, process=process, port=port, revision=revision),
        "Labels": labels(app, process, version),
        "Init": True,
        "StopGracePeriod": int(stop_grace * SECOND),
    }
    if line and line.strip():
        container["Args"] = ["/bin/sh", "-c", line]  # after the image's ENTRYPOINT, as the docker scheduler
    check = healthcheck(app_json, process, start_timeout=start_timeout)
    if check is not None:
        container["Healthcheck"] = check
    task_template = {
        "ContainerSpec": container,
        "RestartPolicy": {"Condition": "any", "Delay": SECOND, "MaxAttempts": 0},
        "Placement": {"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]},
        "Networks": [{"Target": network_name(app), "Aliases": [f"{app}.{process}"]}],
    }
    update = {"Parallelism": 1, "Order": "start-first", "FailureAction": "rollback", "Monitor": 5 * SECOND}
    rollback = {"Parallelism": 1, "Order": "start-first", "FailureAction": "pause"}
    endpoint: dict[str, Any] = {"Mode": "dnsrr"}  # no virtual IP: the routing mesh is not used
    if process == "web":
        endpoint["Ports"] = [{"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"}]
    return {
        "task_template": task_template,
        "name": service_name(app, process, version),
        "labels": labels(app, process, version),
        "mode": {"Replicated": {"Replicas": replicas}},
        "update_config": update,
        "rollback_config": rollback,
        "endpoint_spec": endpoint,
    }


def task_ports(task: dict[str, Any]) -> list[int]:
    """The host-mode published ports of a task, as its status reports them (each once)."""
    ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
    found: list[int] = []
    for entry in ports:
        number = entry.get("PublishedPort")
        if entry.get("PublishMode") == "host" and isinstance(number, int) and number not in found:
            found.append(number)
    return found


def node_address(node: dict[str, Any]) -> str | None:
    """The address other hosts reach a node at: ``Status.Addr``, else the manager's own address."""
    addr = (node.get("Status") or {}).get("Addr") or ""
    if addr and addr != "0.0.0.0":
        return str(addr)
    manager = (node.get("ManagerStatus") or {}).get("Addr") or ""
    return str(manager).rpartition(":")[0] or None


def upstreams(tasks: list[dict[str, Any]], nodes: dict[str, str]) -> list[str]:
    """``NODE_ADDRESS:PUBLISHED_PORT`` of every running task (sorted), for nginx."""
    found = []
    for task in tasks:
        if (task.get("Status") or {}).get("State") != "running" or task.get("DesiredState") != "running":
            continue
        address = nodes.get(task.get("NodeID") or "")
        for port in task_ports(task)[:1]:
            if address:
                found.append(f"{address}:{port}")
    return sorted(found)


def container_port(meta: contracts.ReleaseMeta) -> int:
    return contracts.container_port(meta.get("exposed_ports"), meta.get("container_port"))
