"""The ``cluster:*`` commands: a swarm formed and changed through the engines' own API.

Every command talks to the manager's engine: the local one (``DOCKER_HOST``, as every Skiff
command) or ``--manager ENGINE``. ``cluster:add`` also talks to the new node's engine (its
``unix://`` socket or ``tcp://HOST:PORT``) and makes it join with the manager's token, which is
never printed. Engine addresses reach the host: root on the server only.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import Any

import click

from skiff import access, dockerclient
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

SWARM_PORT = 2377
JOIN_TIMEOUT = 60.0
ENGINE = re.compile(r"unix:///[A-Za-z0-9._/-]{1,200}|tcp://[A-Za-z0-9.-]{1,253}:[0-9]{1,5}")
NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def engine_address(value: str) -> str:
    """``unix:///PATH`` or ``tcp://HOST:PORT`` (full match; no ``..`` in a path)."""
    if not ENGINE.fullmatch(value) or "/../" in value + "/":
        raise ValidationError(f"invalid engine address {value[:80]!r}: expected unix:///PATH or tcp://HOST:PORT")
    return value


def advertise_address(value: str) -> str:
    """An IP address the other nodes reach this one at (no loopback: it means another machine there)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(f"invalid address {value[:80]!r}: expected the node's IP address") from None
    if address.is_loopback or address.is_unspecified:
        raise ValidationError(f"{value}: a loopback address means each node itself; give one they all reach")
    return str(address)


def _one_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return " ".join(str(explanation or exc).split())


def os_reason(exc: BaseException) -> str | None:
    """The operating system's word for why a connection failed ("No route to host", "Connection
    refused"), found among the exceptions that caused ``exc``; ``None`` when there is none."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return str(current.strerror)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [e for e in linked if isinstance(e, BaseException)]
    return None


def _engine(address: str | None, what: str) -> Any:
    try:
        return dockerclient.client(60, base_url=address) if address else dockerclient.client(60)
    except SkiffError as exc:
        reason = os_reason(exc) or str(exc)
        raise SkiffError(f"cannot reach the {what} engine{' at ' + address if address else ''}: {reason}") from None


def _swarm(client: Any) -> dict[str, Any]:
    return (client.info() or {}).get("Swarm") or {}


def _manager(address: str | None) -> Any:
    client = _engine(address, "manager")
    swarm = _swarm(client)
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise SkiffError(f"{address or 'the local engine'} is not a swarm manager: run cluster:init first")
    return client


manager_option = click.option(
    "--manager", "manager", callback=lambda _c, _p, v: engine_address(v) if v else v, help="the manager's engine"
)


@access.root_command
@click.command("cluster:init")
@click.argument("advertise")
@manager_option
@pass_context
def cluster_init(context: Context, advertise: str, manager: str | None) -> None:
    """Make the manager's engine a swarm manager that nodes reach at ADVERTISE (its IP address)."""
    import docker.errors

    advertise = advertise_address(advertise)
    client = _engine(manager, "manager")
    if _swarm(client).get("LocalNodeState") == "active":
        raise SkiffError(f"{manager or 'the local engine'} is already in a swarm (cluster:list shows it)")
    try:
        client.swarm.init(advertise_addr=advertise, listen_addr=f"{advertise}:{SWARM_PORT}")
    except docker.errors.APIError as exc:
        raise SkiffError(f"the swarm could not start on {advertise}: {_one_line(exc)}") from None
    context.output.step(f"Swarm manager listening on {advertise}:{SWARM_PORT}")


@access.root_command
@click.command("cluster:add")
@click.argument("engine", callback=lambda _c, _p, v: engine_address(v))
@click.option("--advertise", help="the node's IP address (default: what its engine reports)")
@click.option("--role", type=click.Choice(["worker", "manager"]), default="worker")
@manager_option
@pass_context
def cluster_add(context: Context, engine: str, advertise: str | None, role: str, manager: str | None) -> None:
    """Join the node whose engine answers at ENGINE (unix:///PATH or tcp://HOST:PORT) to the swarm."""
    import docker.errors

    if advertise:
        advertise = advertise_address(advertise)
    boss = _manager(manager)
    node = _engine(engine, "node")
    state = _swarm(node)
    if state.get("LocalNodeState") == "active":
        raise SkiffError(f"the node at {engine} is already in a swarm ({state.get('NodeID', '')[:12]})")
    managers = [entry["Addr"] for entry in _swarm(boss).get("RemoteManagers") or []]
    token = boss.swarm.attrs["JoinTokens"]["Manager" if role == "manager" else "Worker"]
    options: dict[str, Any] = {"remote_addrs": managers, "join_token": token}
    if advertise:
        options.update(advertise_addr=advertise, listen_addr=f"{advertise}:{SWARM_PORT}")
    try:
        node.swarm.join(**options)
    except docker.errors.APIError as exc:
        raise SkiffError(f"the node at {engine} could not join the swarm: {_one_line(exc)}") from None
    ident = _swarm(node).get("NodeID", "")
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        found = [n for n in boss.nodes.list() if n.id == ident]
        if found and found[0].attrs["Status"]["State"] == "ready":
            break
        if time.monotonic() > deadline:
            raise SkiffError(f"the node at {engine} joined but did not become ready in {JOIN_TIMEOUT:.0f}s")
        time.sleep(0.3)
    description = found[0].attrs["Description"]
    context.output.step(f"Node {description['Hostname']} ({ident[:12]}) joined as a {role}")


def _find(client: Any, name: str) -> Any:
    if not NODE.fullmatch(name):
        raise ValidationError(f"invalid node {name[:80]!r}: a node id or hostname")
    nodes = client.nodes.list()
    matches = [n for n in nodes if n.id == name or n.attrs["Description"]["Hostname"] == name]
    if not matches:
        matches = [n for n in nodes if n.id.startswith(name)]
    if len(matches) != 1:
        raise SkiffError(f"no single node {name!r} in the swarm (cluster:list shows them)")
    return matches[0]


@access.root_command
@click.command("cluster:remove")
@click.argument("node")
@manager_option
@pass_context
def cluster_remove(context: Context, node: str, manager: str | None) -> None:
    """Drain NODE (an id or hostname), so its tasks move to the others, then remove it from the swarm."""
    import docker.errors

    client = _manager(manager)
    found = _find(client, node)
    if found.attrs["Spec"].get("Role") == "manager":
        raise SkiffError(f"{node} is a manager: demote it first (docker node demote), the swarm needs its quorum")
    spec = dict(found.attrs["Spec"], Availability="drain")
    found.update(spec)
    deadline = time.monotonic() + 60
    while any(
        t["Status"]["State"] == "running"
        for t in client.api.tasks(filters={"node": found.id, "desired-state": "running"})
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    try:
        client.api.remove_node(found.id, force=True)
    except docker.errors.APIError as exc:
        raise SkiffError(f"the swarm could not remove {node}: {_one_line(exc)}") from None
    context.output.step(f"Node {found.attrs['Description']['Hostname']} ({found.id[:12]}) drained and removed")


def node_rows(client: Any) -> list[dict[str, Any]]:
    rows = []
    for n in client.nodes.list():
        attrs = n.attrs
        rows.append(
            {
                "id": n.id,
                "hostname": attrs["Description"]["Hostname"],
                "role": attrs["Spec"].get("Role", ""),
                "availability": attrs["Spec"].get("Availability", ""),
                "state": attrs["Status"].get("State", ""),
                "address": attrs["Status"].get("Addr", ""),
                "leader": bool((attrs.get("ManagerStatus") or {}).get("Leader")),
            }
        )
    return sorted(rows, key=lambda row: (row["role"] != "manager", row["hostname"]))


@access.root_command
@click.command("cluster:list")
@manager_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def cluster_list(context: Context, manager: str | None, fmt: str) -> None:
    """List the swarm's nodes: hostname, role, state, availability, address."""
    rows = node_rows(_manager(manager))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'HOSTNAME':<24} {'ROLE':<8} {'STATE':<8} {'AVAILABILITY':<12} {'ADDRESS':<16} ID")
    for row in rows:
        role = row["role"] + ("*" if row["leader"] else "")
        click.echo(
            f"{row['hostname']:<24} {role:<8} {row['state']:<8} {row['availability']:<12} {row['address']:<16} "
            f"{row['id'][:12]}"
        )


COMMANDS = (cluster_init, cluster_add, cluster_remove, cluster_list)
