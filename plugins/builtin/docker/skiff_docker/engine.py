"""Thin helpers over the docker SDK (imported lazily): client, network, listing, ports."""

from __future__ import annotations

import random
import socket
import time
from typing import Any

from skiff.errors import SkiffError

LABEL_APP = "skiff.app"
LABEL_PROCESS = "skiff.process"
LABEL_RELEASE = "skiff.release"
LABEL_INDEX = "skiff.index"
LABEL_PORT = "skiff.port"
LABEL_ROLE = "skiff.role"  # "process" for long-running containers, "oneoff" for run/release tasks
LABEL_JOB = "skiff.job"  # a scheduled job's id on its kept one-off container (the job's last run)
PORT_RANGE = (20000, 30000)

CLIENT_TIMEOUT = 120  # seconds per API call


def client():
    """A docker client for the local engine (one per process, :func:`skiff.dockerclient.shared`)."""
    from skiff import dockerclient

    return dockerclient.shared(CLIENT_TIMEOUT)


def reset_client() -> None:
    """Forget the cached client (after the engine restarted)."""
    from skiff import dockerclient

    dockerclient.reset()


def ensure_app_network(c, app: str) -> str:
    """Create the app's own network ``skiff-app-APP`` (:func:`skiff.contracts.app_network`) when missing."""
    from skiff import contracts, dockerclient

    return dockerclient.ensure_network(c, contracts.app_network(app), {contracts.APP_NETWORK_LABEL: app})


def remove_app_network(c, app: str) -> bool:
    """Remove the app's own network; what is still attached to it (a linked service) is disconnected.

    ``False`` when containers of the app still use it (they retire later) or it is not there.
    """
    from docker.errors import APIError, NotFound

    from skiff import contracts

    name = contracts.app_network(app)
    try:
        info = c.api.inspect_network(name)
    except NotFound:
        return False
    if info.get("Name") != name or (info.get("Labels") or {}).get(contracts.APP_NETWORK_LABEL) != app:
        return False
    for ident in info.get("Containers") or {}:
        try:
            labels = c.api.inspect_container(ident)["Config"].get("Labels") or {}
        except (NotFound, APIError):
            continue
        if labels.get(LABEL_APP) == app:
            return False  # still running: the retirement removes the network after it
        try:
            c.api.disconnect_container_from_network(ident, info["Id"], force=True)
        except (NotFound, APIError):
            pass
    try:
        c.api.remove_network(info["Id"])
    except NotFound:
        return False
    except APIError:  # a container joined meanwhile
        return False
    return True


def list_containers(c, app: str | None = None, role: str | None = "process", all: bool = True) -> list[dict[str, Any]]:
    """Containers Skiff started (list entries: Id, Names, Labels, State, Status, Ports)."""
    filters = [f"{LABEL_APP}={app}" if app else LABEL_APP]
    if role:
        filters.append(f"{LABEL_ROLE}={role}")
    return c.api.containers(all=all, filters={"label": filters})


def name_of(entry: dict[str, Any]) -> str:
    names = entry.get("Names") or ["/?"]
    return names[0].lstrip("/")


def container_name(app: str, process: str, index: int) -> str:
    return f"{app}.{process}.{index}"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def allocate_ports(c, count: int) -> list[int]:
    """``count`` free loopback ports in PORT_RANGE, not used by any Skiff container.

    Explicit host ports (not Docker's ephemeral ones) keep a container's port
    the same across engine restarts, so the proxy's upstreams stay right.
    """
    taken = set()
    for entry in list_containers(c, role=None):
        label = (entry.get("Labels") or {}).get(LABEL_PORT)
        if label and label.isdigit():
            taken.add(int(label))
    ports: list[int] = []
    low, high = PORT_RANGE
    candidate = random.randrange(low, high)
    for _ in range(high - low):
        candidate = low + (candidate + 1 - low) % (high - low)
        if candidate in taken or candidate in ports or port_in_use(candidate):
            continue
        ports.append(candidate)
        if len(ports) == count:
            return ports
    raise SkiffError("no free port left for web containers")


REMOVAL_WAIT = 30.0  # seconds to wait for a removal someone else started


def remove_container(c, ident: str) -> None:
    """Remove the container; when another process is removing it already, return once it is gone."""
    from docker.errors import APIError, NotFound

    try:
        c.api.remove_container(ident, force=True, v=True)
    except NotFound:
        pass
    except APIError as exc:
        if "already in progress" in str(exc):
            wait_until_gone(c, ident)
        elif "No such container" not in str(exc):
            raise


def wait_until_gone(c, ident: str, timeout: float = REMOVAL_WAIT) -> None:
    from docker.errors import NotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c.api.inspect_container(ident)
        except NotFound:
            return
        time.sleep(0.05)


def tail_logs(c, ident: str, lines: int = 20) -> list[str]:
    try:
        raw = c.api.logs(ident, stdout=True, stderr=True, tail=lines)
    except Exception:
        return []
    return raw.decode("utf-8", "replace").splitlines()
