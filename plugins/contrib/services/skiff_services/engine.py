"""The service containers, through the Docker SDK (imported lazily).

Secrets reach the container through the API (its environment), never through a
command line, so they do not show in ``ps`` on the host.
"""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import tarfile
import time
from typing import TYPE_CHECKING, Any

from skiff import contracts
from skiff.context import Context
from skiff.errors import SkiffError

from .kind import ServiceKind
from .record import ROOT_LABEL, Service, Store

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from docker.models.containers import Container

DOCKER_TIMEOUT = 300  # seconds per API call: dump streams
STACK_FALLBACK = "skiff/stack-base:trixie"
UPGRADE_DIR = "upgrade"  # KIND:upgrade imports into SKIFF_ROOT/services/KIND/NAME/upgrade first


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


def ensure_stack(context: Context, image: str) -> None:
    """Let the stack plugin build a missing ``skiff/stack:SUITE`` (hook ``skiff_stack_ensure``).

    An empty engine (a new server, a whole-server restore) has no stack yet; the stack plugin
    builds it as a push would (once, under its per-suite lock), or says in one line how to when
    ``build-on-push`` is off. Without the stack plugin, or for an image it does not make,
    nothing happens and the caller names the missing image.
    """
    hook = getattr(context.hook, "skiff_stack_ensure", None)
    if hook is not None:
        hook(context=context, image=image, output=context.output)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Engine:
    """Containers, networks, images and data of one kind of service."""

    def __init__(self, kind: ServiceKind):
        self.kind = kind
        self.store = Store(kind)

    def timeout(self) -> float:
        return float(os.environ.get(f"SKIFF_{self.kind.name.upper()}_TIMEOUT", "90"))

    def labels(self, context: Context, service: Service | None = None) -> dict[str, str]:
        labels = {self.kind.label: self.kind.name, ROOT_LABEL: str(context.root)}
        if service is not None:
            labels[self.kind.name_label] = service.name
        return labels

    # -- images -------------------------------------------------------------------

    def stack_image(self, context: Context, c: docker.DockerClient) -> str:
        """The stack image to build FROM (``contracts.stack_image``), else, if only it exists, the raw base."""
        configured = contracts.stack_image(context.state)
        if (
            configured != contracts.DEFAULT_STACK_IMAGE
            or image_exists(c, configured)
            or not image_exists(c, STACK_FALLBACK)
        ):
            return configured
        return STACK_FALLBACK

    def build_image(
        self, context: Context, c: docker.DockerClient, base: str | None = None, tag: str | None = None
    ) -> str:
        """Build the kind's local image (or ``tag``) FROM the stack image (or ``base``); stream the steps."""
        tag = tag or self.kind.local_image
        base = base or self.stack_image(context, c)
        if not image_exists(c, base):
            ensure_stack(context, base)
        if not image_exists(c, base):
            raise SkiffError(f"the base image {base} does not exist; build the stack image first (stack:build)")
        context.output.step(f"Building {tag} from {base} with {self.kind.packages}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(self.kind.image_files().items()):
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
            labels={self.kind.label: self.kind.name},
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                raise SkiffError(f"building {tag} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").rstrip()
            if text.startswith("Step "):
                context.output.info(text)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        if not image_exists(c, tag):
            raise SkiffError(f"building {tag} failed: no image was produced")
        context.output.info(f"Built {tag} ({(image_id or '')[:19]})")
        return tag

    def default_image(self, context: Context, c: docker.DockerClient | None = None) -> str:
        """The plugin's ``image`` property, else the kind's registry image if it is here, else the local one."""
        configured = context.state.get_property(self.kind.name, "image")
        if configured:
            return str(configured)
        registry = self.kind.registry_image
        if registry and c is not None and image_exists(c, registry):
            return registry
        return self.kind.local_image

    def ensure_image(self, context: Context, c: docker.DockerClient, image: str) -> None:
        kind = self.kind
        if image_exists(c, image):
            return
        if image == kind.local_image:
            self.build_image(context, c)
            return
        if not kind.pull:
            raise SkiffError(
                f"image {image} is not here; build it, or use the default {kind.local_image} ({kind.name}:build-image)"
            )
        context.output.step(f"Pulling {image}")
        try:
            c.images.pull(image)
        except Exception as exc:
            raise SkiffError(
                f"image {image} is not here and cannot be pulled ({exc}); "
                f"run {kind.name}:build-image and use the default {kind.local_image}"
            ) from exc

    # -- networks -----------------------------------------------------------------

    def ensure_network(self, context: Context, c: docker.DockerClient, service: Service) -> None:
        from skiff import dockerclient

        try:
            dockerclient.ensure_network(c, self.kind.network(service.name), self.labels(context))
        except Exception as exc:
            raise SkiffError(f"cannot create the docker network {self.kind.network(service.name)}: {exc}") from exc

    def networks_of(self, container: Container) -> dict[str, Any]:
        return container.attrs.get("NetworkSettings", {}).get("Networks") or {}

    def attach(self, c: docker.DockerClient, service: Service, app: str, network: str | None = None) -> bool:
        """Put the service on ``app``'s network with its alias: the link's way in.

        ``network``: the one a scheduler named for the app (``skiff_link_network``: the swarm's
        attachable overlay, which must exist on this engine); ``None``: the app's own bridge
        network, created when missing. Idempotent; ``False`` when the service has no container
        (it joins when it is created).
        """
        from skiff import dockerclient

        container = self.get(c, service)
        if container is None:
            return False
        own = contracts.app_network(app)
        name = network or own
        if name in self.networks_of(container):
            return True
        if name == own:
            dockerclient.ensure_network(c, name, {contracts.APP_NETWORK_LABEL: app})
        elif not any(n.get("Name") == name for n in c.api.networks(names=[name])):
            raise SkiffError(
                f"the network {name} of {app} is not on the engine {self.kind.name} runs on: "
                "services of a swarm app run on the swarm manager (the engine Skiff uses, DOCKER_HOST)"
            )
        c.api.connect_container_to_network(container.id, name, aliases=[self.kind.hostname(service.name)])
        return True

    def attach_or_warn(self, context: Context, c: docker.DockerClient, service: Service, app: str) -> None:
        """:meth:`attach` to the network the app's scheduler names; when that cannot be (a swarm
        app whose manager is another engine, or away), say so: the service runs all the same."""
        try:
            self.attach(c, service, app, link_network(context, app))
        except SkiffError as exc:
            context.output.warn(f"{self.kind.name} {service.name}: not on the network of {app} ({exc})")

    def detach(self, c: docker.DockerClient, service: Service, app: str, network: str | None = None) -> None:
        """Take the service off ``app``'s network (an unlink): the app no longer reaches it."""
        import docker

        container = self.get(c, service)
        name = network or contracts.app_network(app)
        if container is None or name not in self.networks_of(container):
            return
        try:
            c.api.disconnect_container_from_network(container.id, name, force=True)
        except (docker.errors.NotFound, docker.errors.APIError):
            pass  # not on it (or the network is gone)

    def remove_network(self, c: docker.DockerClient, service: Service) -> None:
        import docker

        try:
            c.api.remove_network(self.kind.network(service.name))
        except (docker.errors.NotFound, docker.errors.APIError):
            pass

    # -- containers ---------------------------------------------------------------

    def get(self, c: docker.DockerClient, service: Service) -> Container | None:
        import docker

        try:
            return c.containers.get(self.kind.container_name(service.name))
        except docker.errors.NotFound:
            return None

    def expose_address(self, context: Context, service: Service) -> str:
        """The address to publish on, checked now: a non-loopback one only when root stored it."""
        address = str((service.expose or {}).get("host") or "127.0.0.1")
        if is_loopback(address) or (service.expose or {}).get("root") is True:
            return address
        context.output.warn(
            f"{self.kind.name} {service.name}: exposing on {address} is not applied (127.0.0.1 instead): "
            f"a non-loopback address needs root's confirmation ({self.kind.name}:expose from a root shell)"
        )
        return "127.0.0.1"

    def run(self, context: Context, c: docker.DockerClient, service: Service, *, trial: bool = False) -> Container:
        """Start the service's container (data volume, restart always) on its own network, and
        on the networks of the apps linked to it, with the alias ``skiff-KIND-NAME``.

        ``trial``: a second container of the service (``KIND:upgrade`` imports into it) named
        ``skiff.KIND.NAME.upgrade`` on the data directory ``upgrade/``, on the service's own
        network without the alias, on no app's network and published nowhere: nothing reaches it.
        """
        kind = self.kind
        self.ensure_network(context, c, service)
        data = self.store.data_dir(context, service.name) / (UPGRADE_DIR if trial else "data")
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data.parent, 0o700)
        ports: dict[str, Any] = {}
        if service.expose and not trial:
            ports[f"{kind.port}/tcp"] = (self.expose_address(context, service), service.expose.get("port"))
        network = kind.network(service.name)
        aliases = [] if trial else [kind.hostname(service.name)]
        extra: dict[str, Any] = {"shm_size": kind.shm_size} if kind.shm_size else {}
        volumes = {str(data): {"bind": kind.data_mount, "mode": "rw"}}
        labels = self.labels(context, service)
        if kind.tls and kind.tls.enabled(service):
            from . import tls

            volumes[str(tls.ensure(context, c, kind, service, self.labels(context)))] = {
                "bind": kind.tls.mount,
                "mode": "ro",
            }
            labels[tls.LABEL] = "on"
        container = c.containers.create(
            service.image,
            command=kind.command(service),
            name=self.trial_name(service) if trial else kind.container_name(service.name),
            environment=kind.environment(service),
            volumes=volumes,
            labels=labels,
            restart_policy={"Name": "no" if trial else "always"},
            network=network,
            networking_config={network: c.api.create_endpoint_config(aliases=aliases)},
            ports=ports,
            **extra,
        )
        try:
            for app in sorted(service.links) if not trial else []:
                if context.state.app_exists(app):
                    self.attach_or_warn(context, c, service, app)
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        container.reload()
        return container

    def trial_name(self, service: Service) -> str:
        return self.kind.container_name(service.name) + ".upgrade"

    def remove(self, c: docker.DockerClient, service: Service, graceful: bool = True) -> None:
        """Remove the container; a running server gets a clean shutdown first."""
        container = self.get(c, service)
        if container is None:
            return
        if graceful and container.status == "running":
            container.stop(timeout=self.kind.stop_timeout)
        container.remove(force=True)

    def recreate(self, context: Context, c: docker.DockerClient, service: Service) -> Container:
        """Replace the container (same data, same password) with one built from ``service``."""
        self.remove(c, service)
        running = self.run(context, c, service)
        self.wait_ready(running, service)
        return running

    def remove_data(self, context: Context, c: docker.DockerClient, service: Service) -> None:
        """Delete the service's data directory (the server's files may belong to its uid)."""
        self.remove_path(context, c, service, self.store.data_dir(context, service.name))

    def remove_path(self, context: Context, c: docker.DockerClient, service: Service, path: Any) -> None:
        """Delete ``path`` (the data directory or one of its folders), through a container of the
        service's image when the server's uid owns files the service account may not remove."""
        if not path.exists():
            return
        try:
            shutil.rmtree(path)
            return
        except PermissionError:
            pass
        c.containers.run(
            service.image,
            entrypoint=["rm", "-rf", "--one-file-system", f"/service/{path.name}"],
            volumes={str(path.parent): {"bind": "/service", "mode": "rw"}},
            remove=True,
            user="0",
            labels=self.labels(context),
        )
        shutil.rmtree(path, ignore_errors=True)

    def exec_output(self, container: Container, argv: list[str]) -> tuple[int, str]:
        code, out = container.exec_run(argv, demux=False, user=self.kind.exec_user or "")
        return code, (out or b"").decode("utf-8", "replace").strip()

    def wait_ready(self, container: Container, service: Service, timeout: float | None = None) -> None:
        """Wait until the kind's ready check passes in the container, or fail with its log."""
        timeout = timeout or self.timeout()
        deadline = time.monotonic() + timeout
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                raise SkiffError(f"{self.kind.name} {service.name} stopped while starting: {last_log(container)}")
            if container.status == "running":
                code, _ = self.exec_output(container, self.kind.ready)
                if code == 0:
                    return
            if time.monotonic() > deadline:
                raise SkiffError(
                    f"{self.kind.name} {service.name} did not accept connections within {timeout:g}s: "
                    f"{last_log(container)}"
                )
            time.sleep(0.2)

    def host_port(self, container: Container) -> tuple[str, int] | None:
        container.reload()
        ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        for binding in ports.get(f"{self.kind.port}/tcp") or []:
            if binding.get("HostPort"):
                return binding.get("HostIp") or "0.0.0.0", int(binding["HostPort"])
        return None

    def internal_ip(self, container: Container, service: Service) -> str:
        return (self.networks_of(container).get(self.kind.network(service.name)) or {}).get("IPAddress", "")

    def server_version(self, container: Container) -> str:
        if not self.kind.version:
            return ""
        code, out = self.exec_output(container, self.kind.version)
        return out if code == 0 else ""


def link_network(context: Context, app: str) -> str | None:
    """The network a scheduler names for services linked to ``app`` (``skiff_link_network``:
    the swarm's attachable overlay for a swarm app); ``None``: the app's own bridge network."""
    answer = context.hook.skiff_link_network(context=context, app=app)
    return str(answer) if answer else None


def last_log(container: Container) -> str:
    lines = container.logs(tail=3).decode("utf-8", "replace").strip().splitlines()
    return " | ".join(lines) or "(no log)"
