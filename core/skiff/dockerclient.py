"""The one way plugins get a Docker SDK client for the local engine.

Core does not depend on the ``docker`` package: it is imported here only when
a client is asked for, and every plugin that calls this module declares
``docker>=7`` in its own ``install_requires`` (docs/plugins.md, "Talking to the
Docker engine"). The engine is found as the docker CLI finds it
(``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``).

- :func:`client` makes a new client and checks the engine answers;
- :func:`shared` keeps one client per timeout for the whole process (the
  scheduler's many short calls), :func:`reset` forgets them (after the
  engine restarted).

Both fail with one :class:`~skiff.errors.SkiffError` line when the package is
missing or no engine answers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import SkiffError

if TYPE_CHECKING:  # pragma: no cover
    import docker

DEFAULT_TIMEOUT = 120  # seconds per API call

_shared: dict[int, docker.DockerClient] = {}
_lock = threading.Lock()
#: the local engine as this process last reached it: (DOCKER_HOST, API version), after one ping
_reached: tuple[str, str] | None = None


def client(timeout: int = DEFAULT_TIMEOUT, *, ping: bool = True, base_url: str | None = None) -> docker.DockerClient:
    """A new client whose API calls time out after ``timeout`` seconds.

    The SDK asks the engine its API version when it connects; ``ping`` asks
    once more that it answers (``False`` saves that round trip). For the
    local engine they happen once per process: a later client (a push makes
    several: builder, stack, scheduler) reuses the version the first one
    got, and the engine having answered it stands for the ping
    (:func:`reset` forgets it). ``base_url``
    (``unix:///PATH``, ``tcp://HOST:PORT``) names another engine than the
    local one (a swarm manager).
    """
    global _reached
    try:
        import docker
    except ImportError:
        raise SkiffError("the docker Python package is not installed (pip install 'docker>=7')") from None
    host = os.environ.get("DOCKER_HOST", "")
    known = _reached[1] if _reached is not None and _reached[0] == host and not base_url else None
    try:
        if base_url:
            c = docker.DockerClient(base_url=base_url, timeout=timeout)
        elif known:
            c = docker.from_env(timeout=timeout, version=known)
        else:
            c = docker.from_env(timeout=timeout)  # asks the engine's version: it answered
        if ping and not known:
            c.ping()
        if not base_url:
            _reached = (host, str(c.api.api_version))
    except Exception as exc:
        if base_url:
            raise SkiffError(f"cannot reach the Docker engine at {base_url} ({_one_line(exc)})") from exc
        raise SkiffError(f"cannot reach the Docker engine ({_one_line(exc)}); is dockerd running?") from exc
    return c


def shared(timeout: int = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """The process's client for ``timeout``, made (and pinged) on first use."""
    with _lock:
        found = _shared.get(timeout)
        if found is None:
            found = _shared[timeout] = client(timeout)
        return found


def reset() -> None:
    """Forget the shared clients and the engine's version: the next client connects and pings again."""
    global _reached
    with _lock:
        _shared.clear()
        _reached = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def has_image(client: docker.DockerClient, ref: str) -> bool:
    """Whether the engine has the image ``ref`` (a tag, a digest reference or an id)."""
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


#: where Skiff's networks (one per app, per service, the shared ones) take their /24 subnets from:
#: outside Docker's default pools (172.17-31.x, 192.168.x), which other networks of the engine use
NETWORK_POOL = "10.208.0.0/13"
ROUTES = "/proc/net/route"
NETWORK_POOL_ENV = "SKIFF_NETWORK_POOL"
SUBNET_PREFIX = 24


def network_pool() -> str:
    """The address range of Skiff's networks: ``SKIFF_NETWORK_POOL``, else :data:`NETWORK_POOL`."""
    return os.environ.get(NETWORK_POOL_ENV) or NETWORK_POOL


def host_routes(path: str | None = None) -> list[str]:
    """The host's IPv4 routes other than the default one (``10.0.0.0/24``, ...), from the kernel's
    table: a LAN, a VPN or a VPC the host reaches must not be taken for a container network."""
    import ipaddress
    import socket
    import struct

    routes = []
    try:
        with open(path or ROUTES, encoding="ascii") as table:
            lines = table.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            mask = bin(int(fields[7], 16)).count("1")
            if mask:
                routes.append(str(ipaddress.ip_network(f"{destination}/{mask}", strict=False)))
        except (ValueError, struct.error):
            continue
    return routes


def free_subnets(client: docker.DockerClient, pool: str | None = None) -> Iterator[str]:
    """The ``/24`` subnets of the pool that no network of the engine and no route of the host
    overlaps, in order.

    Docker's own default pools hold about 30 networks; one network per app needs more,
    so Skiff gives each of its networks a /24 of its own pool (2048 of them by default).
    """
    import ipaddress

    network = ipaddress.ip_network(pool or network_pool(), strict=False)
    used = [ipaddress.ip_network(route) for route in host_routes()]
    for net in client.api.networks():
        for config in (net.get("IPAM") or {}).get("Config") or []:
            try:
                used.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    for subnet in network.subnets(new_prefix=max(SUBNET_PREFIX, network.prefixlen)):
        if not any(subnet.overlaps(other) for other in used if other.version == subnet.version):
            yield str(subnet)


def ensure_network(client: docker.DockerClient, name: str, labels: dict[str, str] | None = None) -> str:
    """Create the bridge network ``name`` when no network has exactly that name; return its id.

    The network gets a free /24 of :func:`network_pool`. Idempotent and safe against a
    concurrent create (the engine's name filter matches substrings, so the name is compared
    exactly; a subnet taken meanwhile is skipped).
    """
    import docker.errors
    import docker.types

    def find() -> str | None:
        for net in client.api.networks(names=[name]):
            if net.get("Name") == name:
                return str(net["Id"])
        return None

    found = find()
    if found:
        return found
    for attempt, subnet in enumerate(free_subnets(client)):
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            created = client.api.create_network(
                name, driver="bridge", check_duplicate=True, labels=labels or {}, ipam=ipam
            )
            return str(created["Id"])
        except docker.errors.APIError as exc:
            found = find()  # created meanwhile by another process
            if found:
                return found
            if "overlap" not in str(exc).lower() or attempt >= 50:
                raise SkiffError(f"cannot create the docker network {name}: {_one_line(exc)}") from exc
    raise SkiffError(
        f"cannot create the docker network {name}: no free /{SUBNET_PREFIX} left in {network_pool()} "
        f"(set {NETWORK_POOL_ENV} to a larger private range)"
    )


def pull(client: docker.DockerClient, ref: str) -> str | None:
    """Pull ``ref``; ``None`` when the engine then has it, else a few words why not (:func:`pull_reason`)."""
    import docker.errors

    error = ""
    try:
        for chunk in client.api.pull(ref, stream=True, decode=True):
            if isinstance(chunk, dict) and chunk.get("error"):
                error = str(chunk["error"])
    except docker.errors.APIError as exc:
        error = str(exc.explanation or exc)
    except OSError as exc:  # requests' errors are OSErrors
        error = f"lost the connection to the Docker engine ({type(exc).__name__})"
    if not error and has_image(client, ref):
        return None
    return pull_reason(error or "the engine did not store it")


UNREACHABLE = ("connection refused", "dial tcp", "no such host", "i/o timeout", "network is unreachable", "tls:")
MISSING = ("not found", "manifest unknown", "does not exist", "pull access denied")


def pull_reason(error: str) -> str:
    """A few words for the engine's pull error: unreachable registry, unknown image, or its first line."""
    lowered = error.lower()
    if any(word in lowered for word in UNREACHABLE) or "http response to https client" in lowered:
        return "registry unreachable"
    if any(word in lowered for word in MISSING):
        return "the registry does not have it"
    if "unauthorized" in lowered or "denied" in lowered:
        return "the registry refused access"
    first = error.strip().splitlines()[0].strip() if error.strip() else "unknown error"
    return first if len(first) <= 120 else first[:117] + "..."
