"""The service containers, through the Docker SDK (imported lazily).

Secrets reach the container through the API (its environment), never
through a command line, so they do not show in ``ps`` on the host.
"""

from __future__ import annotations

import io
import ipaddress
import os
import tarfile
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from skiff import contracts
from skiff.context import Context
from skiff.errors import SkiffError

from .service import (
    DATA_MOUNT,
    LABEL,
    LOCAL_IMAGE,
    NAME_LABEL,
    PORT,
    REGISTRY_IMAGE,
    ROOT_LABEL,
    Service,
    data_dir,
)

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from docker.models.containers import Container

READY_TIMEOUT_ENV = "SKIFF_POSTGRES_TIMEOUT"
STACK_DEFAULT = contracts.DEFAULT_STACK_IMAGE
STACK_FALLBACK = "skiff/stack-base:trixie"


DOCKER_TIMEOUT = 300  # seconds per API call: pg_dump / pg_restore streams


def client() -> docker.DockerClient:
    from skiff import dockerclient

    return dockerclient.client(DOCKER_TIMEOUT)


def image_exists(c: docker.DockerClient, ref: str) -> bool:
    import docker

    try:
        c.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def default_image(context: Context, c: docker.DockerClient) -> str:
    """The ``postgres`` property ``image``, else the official image if present, else the local one."""
    configured = context.state.get_property("postgres", "image")
    if configured:
        return configured
    if image_exists(c, REGISTRY_IMAGE):
        return REGISTRY_IMAGE
    return LOCAL_IMAGE


def stack_image(context: Context, c: docker.DockerClient) -> str:
    """The stack image to build FROM (``contracts.stack_image``), else, if only it exists, the raw base."""
    configured = contracts.stack_image(context.state)
    if configured != STACK_DEFAULT or image_exists(c, configured) or not image_exists(c, STACK_FALLBACK):
        return configured
    return STACK_FALLBACK


def build_image(context: Context, c: docker.DockerClient, tag: str = LOCAL_IMAGE, base: str | None = None) -> str:
    """Build the local postgres image FROM the stack image; stream the build's output."""
    base = base or stack_image(context, c)
    if not image_exists(c, base):
        raise SkiffError(f"the base image {base} does not exist; build the stack image first (stack:build)")
    out = context.output
    out.step(f"Building {tag} from {base} with Debian's postgresql")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("Dockerfile", "entrypoint.sh"):
            data = resources.files("skiff_postgres").joinpath("image").joinpath(name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image_id = None
    for chunk in c.api.build(
        fileobj=buf,
        custom_context=True,
        tag=tag,
        buildargs={"BASE": base},
        labels={LABEL: "postgres"},
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "error" in chunk:
            raise SkiffError(f"building {tag} failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "").rstrip()
        if text.startswith("Step "):
            out.info(text)
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    if not image_exists(c, tag):
        raise SkiffError(f"building {tag} failed: no image was produced")
    out.info(f"Built {tag} ({(image_id or '')[:19]})")
    return tag


def ensure_image(context: Context, c: docker.DockerClient, image: str) -> None:
    if image_exists(c, image):
        return
    if image == LOCAL_IMAGE:
        build_image(context, c)
        return
    context.output.step(f"Pulling {image}")
    try:
        c.images.pull(image)
    except Exception as exc:
        raise SkiffError(
            f"image {image} is not here and cannot be pulled ({exc}); "
            f"run postgres:build-image and use the default {LOCAL_IMAGE}"
        ) from exc


def ensure_network(context: Context, c: docker.DockerClient, service: Service) -> None:
    """The service's own network (:func:`skiff_postgres.service.network`)."""
    from skiff import dockerclient

    try:
        dockerclient.ensure_network(c, service.network, {LABEL: "postgres", ROOT_LABEL: str(context.root)})
    except Exception as exc:
        raise SkiffError(f"cannot create the docker network {service.network}: {exc}") from exc


def attach(c: docker.DockerClient, service: Service, app: str) -> bool:
    """Put the service on ``app``'s own network (alias ``skiff-postgres-NAME``): the link's way in.

    Idempotent; ``False`` when the service has no container (``postgres:start`` attaches it then).
    """
    from skiff import dockerclient

    container = get(c, service)
    if container is None:
        return False
    name = contracts.app_network(app)
    if name in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}):
        return True
    dockerclient.ensure_network(c, name, {contracts.APP_NETWORK_LABEL: app})
    c.api.connect_container_to_network(container.id, name, aliases=[service.host])
    return True


def detach(c: docker.DockerClient, service: Service, app: str) -> None:
    """Take the service off ``app``'s network (an unlink): the app no longer reaches it."""
    import docker

    container = get(c, service)
    name = contracts.app_network(app)
    if container is None or name not in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}):
        return
    try:
        c.api.disconnect_container_from_network(container.id, name, force=True)
    except (docker.errors.NotFound, docker.errors.APIError):
        pass  # not on it (or the network is gone)


def remove_network(c: docker.DockerClient, service: Service) -> None:
    import docker

    try:
        c.api.remove_network(service.network)
    except (docker.errors.NotFound, docker.errors.APIError):
        pass


def get(c: docker.DockerClient, service: Service) -> Container | None:
    import docker

    try:
        return c.containers.get(service.container)
    except docker.errors.NotFound:
        return None


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def expose_address(context: Context, service: Service) -> str:
    """The address to publish on, checked now: a non-loopback one only when root stored it."""
    address = str((service.expose or {}).get("host") or "127.0.0.1")
    if is_loopback(address) or (service.expose or {}).get("root") is True:
        return address
    context.output.warn(
        f"postgres {service.name}: exposing on {address} is not applied (127.0.0.1 instead): "
        "a non-loopback address needs root's confirmation (postgres:expose from a root shell)"
    )
    return "127.0.0.1"


def run(context: Context, c: docker.DockerClient, service: Service) -> Container:
    """Start the service's container (data dir, restart always) on its own network, and on the
    networks of the apps linked to it, with the alias ``skiff-postgres-NAME``."""
    ensure_network(context, c, service)
    data = data_dir(context, service.name) / "data"
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data.parent, 0o700)
    ports: dict[str, Any] = {}
    if service.expose:
        ports[f"{PORT}/tcp"] = (expose_address(context, service), service.expose.get("port"))
    container = c.containers.create(
        service.image,
        name=service.container,
        environment={
            "POSTGRES_PASSWORD": service.password,
            "POSTGRES_USER": service.user,
            "POSTGRES_DB": service.database,
            "PGDATA": DATA_MOUNT,
        },
        volumes={str(data): {"bind": DATA_MOUNT, "mode": "rw"}},
        labels={LABEL: "postgres", NAME_LABEL: service.name, ROOT_LABEL: str(context.root)},
        restart_policy={"Name": "always"},
        network=service.network,
        networking_config={service.network: c.api.create_endpoint_config(aliases=[service.host])},
        ports=ports,
        shm_size="128m",
    )
    try:
        for app in sorted(service.links):
            if context.state.app_exists(app):
                attach(c, service, app)
        container.start()
    except BaseException:
        container.remove(force=True)
        raise
    container.reload()
    return container


def remove(c: docker.DockerClient, service: Service, graceful: bool = True) -> None:
    """Remove the container; a running server gets a clean (fast) shutdown first."""
    container = get(c, service)
    if container is None:
        return
    if graceful and container.status == "running":
        container.stop(timeout=30)
    container.remove(force=True)


def exec_output(container: Container, argv: list[str]) -> tuple[int, str]:
    code, output = container.exec_run(argv, user="postgres")
    return code, output.decode("utf-8", "replace").strip()


def wait_ready(container: Container, service: Service, timeout: float | None = None) -> None:
    """Wait until the server accepts TCP connections (pg_isready), or fail with its log."""
    timeout = timeout or float(os.environ.get(READY_TIMEOUT_ENV, "90"))
    deadline = time.monotonic() + timeout
    argv = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(PORT), "-U", service.user, "-d", service.database]
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            raise SkiffError(f"postgres {service.name} stopped while starting: {last_log(container)}")
        if container.status == "running":
            code, _ = exec_output(container, argv)
            if code == 0:
                return
        if time.monotonic() > deadline:
            raise SkiffError(
                f"postgres {service.name} did not accept connections within {timeout:g}s: {last_log(container)}"
            )
        time.sleep(0.2)


def last_log(container: Container) -> str:
    lines = container.logs(tail=3).decode("utf-8", "replace").strip().splitlines()
    return " | ".join(lines) or "(no log)"


def host_port(container: Container) -> tuple[str, int] | None:
    container.reload()
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return binding.get("HostIp") or "0.0.0.0", int(binding["HostPort"])
    return None


def internal_ip(container: Container, service: Service) -> str:
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    return (networks.get(service.network) or {}).get("IPAddress", "")


def server_version(container: Container, service: Service) -> str:
    code, out = exec_output(
        container, ["psql", "-X", "-tA", "-U", service.user, "-d", service.database, "-c", "SHOW server_version"]
    )
    return out if code == 0 else ""
