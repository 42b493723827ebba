"""The swarm manager's engine: a client, the image on the nodes, the app's network, listings."""

from __future__ import annotations

from typing import Any

from skiff.errors import SkiffError

from . import spec

CLIENT_TIMEOUT = 120


def client(address: str) -> Any:
    """A client of the manager at ``address`` (empty: the local engine) that must be a swarm manager."""
    from skiff import dockerclient

    c = dockerclient.client(CLIENT_TIMEOUT, base_url=address or None)
    swarm = (c.info() or {}).get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        where = address or "the local engine"
        raise SkiffError(
            f"{where} is not a swarm manager: run 'docker swarm init' there, or swarm:set --global manager"
        )
    return c


def nodes(c: Any) -> dict[str, str]:
    """``{node id: address}`` of the ready nodes."""
    result = {}
    for node in c.api.nodes():
        if (node.get("Status") or {}).get("State") != "ready":
            continue
        address = spec.node_address(node)
        if address:
            result[node["ID"]] = address
    return result


def ensure_network(c: Any, app: str) -> str:
    """The app's attachable overlay network, created when missing."""
    name = spec.network_name(app)
    if not c.api.networks(names=[name]):
        c.api.create_network(
            name, driver="overlay", attachable=True, labels={spec.LABEL_NETWORK: app}, check_duplicate=True
        )
    return name


def remove_network(c: Any, app: str, wait: float = 30.0) -> bool:
    """Remove the app's overlay network; ``False`` when it is still there after ``wait`` seconds.

    Swarm accepts the removal while the tasks of just-removed services still hold the network
    and removes it once they let go, so this waits until the network is gone."""
    import time

    from docker.errors import APIError, NotFound

    name = spec.network_name(app)
    deadline = time.monotonic() + wait
    while True:
        mine = [n for n in c.api.networks(names=[name]) if (n.get("Labels") or {}).get(spec.LABEL_NETWORK) == app]
        if not mine:
            return True
        for net in mine:
            disconnect_others(c, net["Id"])
            try:
                c.api.remove_network(net["Id"])
            except (NotFound, APIError):
                pass  # in use a moment longer
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def disconnect_others(c: Any, network: str) -> None:
    """Take the containers that are no swarm task (linked services: postgres, redis) off the network."""
    from docker.errors import APIError, NotFound

    try:
        attached = (c.api.inspect_network(network) or {}).get("Containers") or {}
    except (NotFound, APIError):
        return
    for ident in attached:
        if ident.startswith("lb-") or len(ident) < 12:
            continue  # the overlay's own load-balancer endpoint
        try:
            labels = (c.api.inspect_container(ident).get("Config") or {}).get("Labels") or {}
            if "com.docker.swarm.task.id" not in labels:
                c.api.disconnect_container_from_network(ident, network, force=True)
        except (NotFound, APIError):
            pass


def services(c: Any, app: str, role: str | None = "process") -> list[dict[str, Any]]:
    """The app's services of ``role`` (``process``: its process types; ``None``: one-offs too)."""
    found = c.api.services(filters={"label": f"{spec.LABEL_APP}={app}"})
    return [s for s in found if role is None or (s["Spec"].get("Labels") or {}).get(spec.LABEL_ROLE) == role]


def tasks(c: Any, service_id: str) -> list[dict[str, Any]]:
    return list(c.api.tasks(filters={"service": service_id}))


def remove_service(c: Any, ident: str) -> None:
    from docker.errors import NotFound

    try:
        c.api.remove_service(ident)
    except NotFound:
        pass


def send_registry_credentials(context: Any, c: Any) -> None:
    """Make ``c`` send the registry credentials of ``registry:login`` with the services it creates,
    so that every node can pull the image (:func:`skiff.contracts.registry_config_dir`)."""
    from docker import auth

    from skiff import contracts

    path = contracts.registry_config_dir(context.root) / "config.json"
    if path.exists():
        c.api._auth_configs = auth.load_config(config_path=str(path))


def image_for_nodes(context: Any, c: Any, app: str, image: str, local: bool) -> str:
    """The reference the nodes run for ``image``.

    A registry plugin answers ``skiff_image_for_nodes`` (it pushes and returns what nodes pull).
    Without one, the manager must hold the image: it is the local engine, or the image is
    copied to it (``docker save`` | ``docker load``, only when it lacks it); a swarm of more
    than one node then cannot run it, which is said in one line.
    """
    ref = context.hook.skiff_image_for_nodes(context=context, app=app, image=image)
    if ref:
        send_registry_credentials(context, c)
        return str(ref)
    if len(nodes(c)) > 1:
        raise SkiffError(
            f"the swarm has {len(nodes(c))} nodes and no registry plugin pushes {app}'s image: "
            "set up a registry (registry:set) so that every node can pull it"
        )
    if local:
        return image
    from skiff import dockerclient

    here = dockerclient.shared()
    ident = here.api.inspect_image(image)["Id"]
    try:
        if c.api.inspect_image(image)["Id"] == ident:
            return image
    except Exception:  # not there (or an older image under that tag)
        pass
    for message in c.api.load_image(here.api.get_image(image), quiet=True):
        if isinstance(message, dict) and message.get("error"):
            raise SkiffError(f"the swarm manager could not load {image}: {message['error']}")
    return image
