"""The ``KIND:*`` click commands, with their access declarations, made from a ServiceKind.

``command_set(kind, module)`` returns Dokku's service command set for ``kind``; the plugin's
``commands.py`` holds each under its own name (``redis:create`` -> ``redis_create``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from skiff import access, lifecycle
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError

from .backup import Backups, check_passphrase, checked_text, destination
from .engine import Engine, client, link_network
from .kind import ServiceKind
from .record import Service, alias_key, check_password, new_password, service_name

#: an image reference as docker takes it: [registry/]name[:tag][@digest], no option-looking value
IMAGE_RE = re.compile(r"[a-z0-9][A-Za-z0-9._/:@-]{0,254}")

INFO_FIELDS = (
    "dsn",
    "status",
    "version",
    "image",
    "id",
    "data-dir",
    "internal-ip",
    "hostname",
    "exposed-ports",
    "links",
)


def holder(command: click.Command) -> str:
    """The name a plugin's commands module holds a command by: ``redis:app-links`` -> ``redis_app_links``."""
    return str(command.name).replace(":", "_").replace("-", "_")


def parse_bind(target: str | None) -> tuple[str, int | None]:
    """``None`` / ``PORT`` / ``ADDR:PORT`` / ``[ADDR6]:PORT`` -> (address, port or None)."""
    if not target:
        return "127.0.0.1", None
    host, sep, port_text = target.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValidationError(f"invalid address {host!r}: give an IP address such as 127.0.0.1") from None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValidationError(f"invalid port {port_text!r}: give a number from 1 to 65535")
    return host, int(port_text)


def binary(stream: IO[Any], what: str) -> IO[bytes]:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        raise SkiffError(f"{what} needs a binary stream")
    return buffer


class Commands:
    """The command bodies for one kind (the click commands call these)."""

    def __init__(self, kind: ServiceKind):
        self.kind = kind
        self.engine = Engine(kind)
        self.store = self.engine.store
        self.backups = Backups(kind, self)

    # -- helpers ------------------------------------------------------------------

    def status(self, container: Any) -> str:
        return container.status if container is not None else "missing"

    def exposed(self, service: Service) -> str:
        if not service.expose:
            return "-"
        host, port = service.expose["host"], service.expose.get("port")
        return f"{host}:{port}->{self.kind.port}" if ":" not in host else f"[{host}]:{port}->{self.kind.port}"

    def running(self, context: Context, name: str) -> tuple[Service, Any]:
        service = self.store.load(context, name)
        container = self.engine.get(client(), service)
        if container is None or container.status != "running":
            raise SkiffError(f"{self.kind.name} {name} is not running; start it with {self.kind.name}:start {name}")
        return service, container

    def refuse_if_linked(self, context: Context, service: Service) -> None:
        live = [app for app in sorted(service.links) if context.state.app_exists(app)]
        if live:
            raise SkiffError(f"{self.kind.name} {service.name} is linked to {', '.join(live)}; unlink it first")

    def docker_exec(self, container: Any, argv: list[str], *, interactive: bool = False) -> list[str]:
        tty = ["-t"] if interactive and sys.stdin.isatty() and sys.stdout.isatty() else []
        return ["docker", "exec", "-i", *tty, container.id, *argv]

    # -- create / destroy ---------------------------------------------------------

    def create(self, context: Context, name: str, image: str | None, password: str | None) -> Service:
        """Create the service (its container ready) or leave nothing behind."""
        kind, engine = self.kind, self.engine
        service_name(name)
        password = check_password(kind, password) if password else new_password()
        if image is not None and (not image.strip() or image.startswith("-")):
            raise ValidationError(f"invalid image {image!r}")
        with self.store.lock(context, name):
            if self.store.exists(context, name):
                raise SkiffError(f"{kind.name} service {name} already exists")
            c = client()
            service = self.store.make(name=name, image=image or engine.default_image(context, c), password=password)
            if engine.get(c, service) is not None:
                raise SkiffError(f"a container named {kind.container_name(name)} already exists; remove it first")
            path = self.store.data_dir(context, name)
            if path.exists() and any(path.iterdir()):
                raise SkiffError(f"{path} already holds data; remove it or pick another name")
            engine.ensure_image(context, c, service.image)
            context.output.step(f"Starting {kind.name} {name} ({service.image})")
            try:
                running = engine.run(context, c, service)
                context.output.info("Waiting for the server to accept connections")
                engine.wait_ready(running, service)
            except BaseException:
                engine.remove(c, service, graceful=False)
                engine.remove_data(context, c, service)
                raise
            self.store.save(context, service)
        context.output.banner(f"{kind.title} service created: {name}")
        context.output.info(f"Link it to an app with: {kind.name}:link {name} APP")
        return service

    def destroy(self, context: Context, name: str, force: bool) -> None:
        kind = self.kind
        self.refuse_if_linked(context, self.store.load(context, name))
        if not force:
            if context.via_ssh and not sys.stdin.isatty():
                raise SkiffError("destroying needs confirmation: pass --force, or run it with a terminal (ssh -t)")
            context.output.warn(f"This will destroy {kind.name} {name} and all of its data.")
            answer = click.prompt("To proceed, type the service name", default="", show_default=False)
            if answer.strip() != name:
                raise SkiffError("confirmation did not match the service name; nothing was destroyed")
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            self.refuse_if_linked(context, service)
            c = client()
            context.output.step(f"Destroying {kind.name} {name}")
            self.engine.remove(c, service, graceful=False)
            self.engine.remove_network(c, service)
            self.engine.remove_data(context, c, service)
            self.store.delete(context, name)
            self.backups.forget(context, name)
        context.output.step(f"Destroyed {kind.name} {name}")

    # -- looking ------------------------------------------------------------------

    def list(self, context: Context, fmt: str) -> None:
        services = sorted(self.store.all(context), key=lambda s: s.name)
        c = client() if services else None
        rows = [
            {
                "name": s.name,
                "image": s.image,
                "status": self.status(self.engine.get(c, s)),
                "exposed": self.exposed(s),
                "links": sorted(s.links),
            }
            for s in services
        ]
        if fmt == "json":
            click.echo(json.dumps(rows, indent=2))
            return
        context.output.banner(f"{self.kind.title} services")
        click.echo(f"{'NAME':<20} {'IMAGE':<24} {'STATUS':<10} {'EXPOSED':<24} LINKS")
        for r in rows:
            links = ", ".join(r["links"]) or "-"
            click.echo(f"{r['name']:<20} {r['image']:<24} {r['status']:<10} {r['exposed']:<24} {links}")

    def info(self, context: Context, name: str, field: str | None) -> None:
        service = self.store.load(context, name)
        if field == "dsn":
            click.echo(self.store.url(service))
            return
        container = self.engine.get(client(), service)
        running = container is not None and container.status == "running"
        info = {
            "status": self.status(container),
            "version": self.engine.server_version(container) if running else "",
            "image": service.image,
            "id": container.id if container is not None else "",
            "data-dir": str(self.store.data_dir(context, name) / "data"),
            "internal-ip": self.engine.internal_ip(container, service) if container is not None else "",
            "hostname": self.kind.hostname(name),
            "exposed-ports": self.exposed(service),
            "links": " ".join(f"{app}:{key}" for app, key in sorted(service.links.items())) or "-",
            "dsn": self.store.url(service, masked=True),
        }
        if field:
            click.echo(info[field])
            return
        fields = {key: info[key] for key in INFO_FIELDS}
        fields.update({f"option {key}": value for key, value in sorted(service.options.items())})
        fields.update(self.backups.summary(context, name))
        context.output.fields(f"{name} {self.kind.name} service information", fields)

    # -- links ----------------------------------------------------------------------

    def refuse_locked(self, context: Context, app: str, no_restart: bool) -> None:
        """A link change that would redeploy a locked app (apps:lock) is refused before it is stored."""
        if not no_restart and context.state.current_release(app) is not None:
            lifecycle.refuse_if_locked(context, app)

    def redeploy(self, context: Context, app: str, description: str, no_restart: bool) -> None:
        if no_restart:
            context.output.info("The change applies on the app's next release (--no-restart)")
        elif context.state.current_release(app) is not None:
            lifecycle.redeploy(context, app, description)

    def on_network(self, context: Context, service: Service, app: str, change: Callable[..., Any]) -> None:
        """Attach the service to (or detach it from) the app's network; with the engine away, say when."""
        try:
            change(client(), service, app, link_network(context, app))
        except SkiffError as exc:
            context.output.warn(
                f"{self.kind.name} {service.name}: the network of {app} is not changed yet ({exc}); "
                f"it is at {app}'s next deploy"
            )

    def link(self, context: Context, name: str, app: str, alias: str | None, no_restart: bool) -> None:
        kind = self.kind
        self.store.load(context, name)
        context.state.require_app(app)
        self.refuse_locked(context, app, no_restart)
        # lock order: the app, then the service (as apps:destroy and apps:rename do)
        with lifecycle.app_lock(context, app), self.store.lock(context, name):
            service = self.store.load(context, name)
            if app in service.links:
                raise SkiffError(f"{kind.name} {name} is already linked to {app} as {service.links[app]}")
            key = self.store.pick_key(service, context.state.get_config(app), alias)
            context.state.set_config(app, {key: self.store.url(service)})
            service.links[app] = key
            self.store.save(context, service)
            self.on_network(context, service, app, self.engine.attach)
        context.output.step(f"Linked {kind.name} {name} to {app} as {key}")
        self.redeploy(context, app, f"Link {kind.name} {name}", no_restart)

    @contextmanager
    def linked_service(self, context: Context, name: str, app: str, no_restart: bool) -> Iterator[Service]:
        """NAME's record, linked to APP, under the app's lock and then the service's (the order
        apps:destroy and apps:rename use); a change that would redeploy a locked app is refused first."""
        context.state.require_app(app)
        self.refuse_locked(context, app, no_restart)
        with lifecycle.app_lock(context, app), self.store.lock(context, name):
            service = self.store.load(context, name)
            if app not in service.links:
                raise NotFound(f"{self.kind.name} {name} is not linked to {app}")
            yield service

    def unlink(self, context: Context, name: str, app: str, no_restart: bool) -> None:
        kind = self.kind
        service = self.store.load(context, name)
        if app in service.links and not context.state.app_exists(app):
            with self.store.lock(context, name):  # a link left by an app destroyed while the plugin was off
                service = self.store.load(context, name)
                service.links.pop(app, None)
                self.store.save(context, service)
            context.output.step(f"Removed the stale link of {kind.name} {name} to {app} (the app no longer exists)")
            return
        with self.linked_service(context, name, app, no_restart) as service:
            key = service.links.pop(app)
            context.state.unset_config(app, [key])
            self.store.save(context, service)
            self.on_network(context, service, app, self.engine.detach)
        context.output.step(f"Unlinked {kind.name} {name} from {app} ({key} removed)")
        self.redeploy(context, app, f"Unlink {kind.name} {name}", no_restart)

    def promote(self, context: Context, name: str, app: str, no_restart: bool) -> None:
        """Make NAME's URL the app's main key (``url_key``); what held it stays under an alias."""
        kind, main = self.kind, self.kind.url_key
        self.store.load(context, name)
        with self.linked_service(context, name, app, no_restart) as service:
            was = service.links[app]
            if was == main:
                raise SkiffError(f"{kind.name} {name} is already {main} of {app}")
            config = context.state.get_config(app)
            holder = next((s for s in self.store.linked_to(context, app) if s.links[app] == main), None)
            moved = None
            if main in config:  # another link's URL, or one set by hand: kept under an alias
                moved = self.store.pick_key(holder, config, None) if holder else alias_key("PREVIOUS_" + main)
                if moved in config:
                    raise SkiffError(f"{moved} is already set on {app}; unset it first")
            values = {main: self.store.url(service), **({moved: config[main]} if moved else {})}
            context.state.set_config(app, values)
            context.state.unset_config(app, [was])
            service.links[app] = main
            self.store.save(context, service)
            if holder is not None and moved:
                with self.store.lock(context, holder.name):
                    fresh = self.store.load(context, holder.name)
                    fresh.links[app] = moved
                    self.store.save(context, fresh)
        context.output.step(f"Promoted {kind.name} {name} to {main} on {app} ({was} removed)")
        if moved:
            context.output.info(f"The previous {main} is now {moved}")
        self.redeploy(context, app, f"Promote {kind.name} {name}", no_restart)

    # -- data ---------------------------------------------------------------------------

    def export_to(self, container: Any, out: IO[bytes]) -> None:
        proc = subprocess.Popen(
            ["docker", "exec", container.id, *self.kind.export], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        shutil.copyfileobj(proc.stdout, out, 64 * 1024)
        out.flush()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            last = err.splitlines()[-1] if err else f"exit {proc.returncode}"
            raise SkiffError(f"{self.kind.dump_tools[0]} failed: {last}")

    def import_from(self, context: Context, service: Service, container: Any, source: IO[bytes]) -> None:
        proc = subprocess.Popen(
            ["docker", "exec", "-i", container.id, *self.kind.import_],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stderr is not None
        try:
            shutil.copyfileobj(source, proc.stdin, 64 * 1024)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            detail = next((line for line in err.splitlines() if "error" in line.lower()), err[-200:])
            tool = self.kind.dump_tools[1]
            raise SkiffError(f"{tool} failed, nothing was imported: {detail or 'exit ' + str(proc.returncode)}")
        if self.kind.restart_after_import:
            context.output.info(f"Restarting {self.kind.name} {service.name} to load the import")
            container.restart(timeout=self.kind.stop_timeout)
            self.engine.wait_ready(container, service)

    def export(self, context: Context, name: str) -> None:
        _, container = self.running(context, name)
        if sys.stdout.isatty():
            raise SkiffError(f"the dump is binary: redirect stdout to a file ({self.kind.name}:export NAME > FILE)")
        self.export_to(container, binary(sys.stdout, "export"))

    def import_(self, context: Context, name: str) -> None:
        if sys.stdin.isatty():
            raise SkiffError(f"pipe a dump into {self.kind.name}:import ({self.kind.name}:import NAME < FILE)")
        with self.store.lock(context, name):
            service, container = self.running(context, name)
            self.import_from(context, service, container, binary(sys.stdin, "import"))
        context.output.step(f"Imported the dump into {self.kind.name} {name}")

    def clone(self, context: Context, source: str, new: str, image: str | None) -> None:
        """A new service with a copy of SOURCE's data (through an export and an import)."""
        service, container = self.running(context, source)
        service_name(new)
        if self.store.exists(context, new):
            raise SkiffError(f"{self.kind.name} service {new} already exists")
        scratch = context.path("tmp")
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=scratch) as dump:
            context.output.step(f"Exporting {self.kind.name} {source}")
            self.export_to(container, dump)  # type: ignore[arg-type]
            dump.seek(0)
            if self.kind.dump_magic and not dump.read(len(self.kind.dump_magic)).startswith(self.kind.dump_magic):
                raise SkiffError(f"the export of {source} is not a {self.kind.title} dump; nothing was cloned")
            clone = self.create(context, new, image or service.image, None)
            try:
                dump.seek(0)
                with self.store.lock(context, new):
                    copy = self.engine.get(client(), clone)
                    self.import_from(context, clone, copy, dump)  # type: ignore[arg-type]
            except BaseException:
                context.output.warn(f"the import into {new} failed; {new} is removed")
                self.destroy(context, new, force=True)
                raise
        context.output.step(f"Cloned {self.kind.name} {source} to {new}")

    def upgrade(self, context: Context, name: str, image: str | None, no_restart: bool) -> None:
        """Move NAME onto ``image`` through an export and an import; the old container serves
        until the new one holds the data, and serves again if the new one does not start."""
        kind, engine = self.kind, self.engine
        if image is not None and (not image.strip() or image.startswith("-")):
            raise ValidationError(f"invalid image {image!r}")
        with self.store.lock(context, name):
            service, container = self.running(context, name)
            target = image or engine.default_image(context)
            if target == service.image:
                raise SkiffError(f"{kind.name} {name} already runs {target}; give the new one with --image")
            c = client()
            engine.ensure_image(context, c, target)
            new = self.store.make(**{**service.as_dict(), "image": target})
            before = engine.server_version(container) or service.image
            scratch = context.path("tmp")
            scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=scratch) as dump:
                context.output.step(f"Exporting {kind.name} {name} ({before})")
                self.export_to(container, dump)  # type: ignore[arg-type]
                self.give_certificate(context, c, new)
                try:
                    self.trial_import(context, c, new, dump)  # type: ignore[arg-type]
                    self.switch(context, c, service, new)
                except BaseException:
                    self.give_certificate(context, c, service)
                    raise
            self.store.save(context, new)
        after = engine.server_version(engine.get(c, new)) or target
        context.output.step(f"{kind.title} {name} upgraded: {before} -> {after}")
        for app in sorted(new.links):
            if context.state.app_exists(app):
                self.redeploy(context, app, f"Upgrade {kind.name} {name}", no_restart)

    def give_certificate(self, context: Context, c: Any, service: Service) -> None:
        """The service's TLS certificate to the server's user of ``service.image`` (if it has one)."""
        from . import tls

        path = tls.folder(context, self.kind, service.name)
        if tls.wanted(self.kind, service) and (path / tls.KEY).is_file():
            tls.give(c, self.kind, service, path, self.engine.labels(context))

    def trial_import(self, context: Context, c: Any, new: Service, dump: IO[bytes]) -> None:
        """Import the dump into a container of the new image that nothing reaches; remove it after."""
        engine = self.engine
        trial_dir = self.store.data_dir(context, new.name) / "upgrade"
        stale = c.containers.list(all=True, filters={"name": f"^{engine.trial_name(new)}$"})
        for leftover in stale:  # a killed upgrade's
            leftover.remove(force=True)
        engine.remove_path(context, c, new, trial_dir)
        context.output.step(f"Importing into a new container on {new.image}")
        trial = None
        try:
            trial = engine.run(context, c, new, trial=True)
            engine.wait_ready(trial, new)
            dump.seek(0)
            self.import_from(context, new, trial, dump)
            trial.stop(timeout=self.kind.stop_timeout)  # the server writes everything out
            trial.remove(force=True)
        except Exception as exc:
            context.output.warn(f"the upgrade stopped; {self.kind.name} {new.name} keeps serving on its old image")
            if trial is not None:
                with contextlib.suppress(Exception):
                    trial.remove(force=True)
            engine.remove_path(context, c, new, trial_dir)
            if isinstance(exc, SkiffError):
                raise
            detail = getattr(exc, "explanation", None) or exc
            raise SkiffError(f"{self.kind.name} {new.name} does not start on {new.image}: {detail}") from exc

    def switch(self, context: Context, c: Any, old: Service, new: Service) -> None:
        """Stop the old container, put the imported data in place, start the new image on it;
        if it does not come up, the old data and image serve again."""
        engine = self.engine
        base = self.store.data_dir(context, old.name)
        data, trial, previous = base / "data", base / "upgrade", base / "previous"
        context.output.step(f"Switching {self.kind.name} {old.name} to {new.image}")
        engine.remove_path(context, c, old, previous)
        engine.remove(c, old)
        os.replace(data, previous)
        os.replace(trial, data)
        try:
            engine.wait_ready(engine.run(context, c, new), new)
        except Exception as exc:
            engine.remove(c, new, graceful=False)
            os.replace(data, trial)
            os.replace(previous, data)
            engine.wait_ready(engine.run(context, c, old), old)
            engine.remove_path(context, c, new, trial)
            detail = getattr(exc, "explanation", None) or exc
            raise SkiffError(
                f"{self.kind.name} {old.name} did not start on {new.image} ({detail}); it serves on {old.image} again"
            ) from exc
        engine.remove_path(context, c, old, previous)

    # -- running --------------------------------------------------------------------------

    def start(self, context: Context, name: str) -> None:
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            c = client()
            container = self.engine.get(c, service)
            if container is None:
                context.output.step(f"Recreating the container of {self.kind.name} {name}")
                self.engine.ensure_image(context, c, service.image)
                container = self.engine.run(context, c, service)
            elif container.status == "paused":
                container.unpause()
            elif container.status != "running":
                container.start()
            self.engine.wait_ready(container, service)
        context.output.step(f"{self.kind.title} {name} is running")

    def stop(self, context: Context, name: str, pause: bool = False) -> None:
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            container = self.engine.get(client(), service)
            if container is not None and pause:
                if container.status != "running":
                    raise SkiffError(f"{self.kind.name} {name} is not running")
                container.pause()
            elif container is not None:
                if container.status == "paused":
                    container.unpause()
                container.stop(timeout=self.kind.stop_timeout)
        context.output.step(f"{self.kind.title} {name} {'paused' if pause else 'stopped'}")

    def restart(self, context: Context, name: str) -> None:
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            container = self.engine.get(client(), service)
            if container is None:
                raise SkiffError(
                    f"{self.kind.name} {name} has no container; start it with {self.kind.name}:start {name}"
                )
            context.output.step(f"Restarting {self.kind.name} {name}")
            if container.status == "paused":
                container.unpause()
            container.restart(timeout=self.kind.stop_timeout)
            self.engine.wait_ready(container, service)
        context.output.step(f"{self.kind.title} {name} is running")

    def change(self, context: Context, name: str, edit: Callable[[Service], None]) -> Service:
        """Edit the record and recreate the container from it; a failure puts the old one back."""
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            before = self.store.make(**service.as_dict())
            edit(service)
            c = client()
            try:
                running = self.engine.recreate(context, c, service)
            except Exception:
                self.engine.recreate(context, c, before)
                raise
            bound = self.engine.host_port(running)
            if service.expose and bound:
                service.expose["port"] = bound[1]
            self.store.save(context, service)
        return service

    def expose(self, context: Context, name: str, target: str | None) -> None:
        host, port = parse_bind(target)
        from .engine import is_loopback

        if not is_loopback(host) and not context.from_root_shell:
            raise SkiffError(
                f"{host} is not a loopback address and reaches the host's network: only root on the server "
                f"may expose a service on it ({self.kind.name}:expose from a root shell)"
            )

        def edit(service: Service) -> None:
            service.expose = {"host": host, "port": port}
            if not is_loopback(host):
                service.expose["root"] = True  # root stored it: applied at container creation

        context.output.step(f"Exposing {self.kind.name} {name} on {host}:{port or '(any free port)'}")
        service = self.change(context, name, edit)
        context.output.info(f"Exposed on {self.exposed(service)}")

    def unexpose(self, context: Context, name: str) -> None:
        if not self.store.load(context, name).expose:
            raise SkiffError(f"{self.kind.name} {name} is not exposed")
        self.change(context, name, lambda service: setattr(service, "expose", None))
        context.output.step(f"{self.kind.title} {name} is no longer exposed")

    def set(self, context: Context, name: str, key: str, value: str | None) -> None:
        option = self.kind.settable.get(key)
        if option is None:
            known = ", ".join(sorted(self.kind.settable)) or "none"
            raise ValidationError(f"unknown key {key!r} for {self.kind.name}:set (keys: {known})")
        if value is not None:
            option.check(key, value)

        def edit(service: Service) -> None:
            if value is None:
                service.options.pop(key, None)
            else:
                service.options[key] = value

        self.change(context, name, edit)
        context.output.step(f"{self.kind.name} {name}: {key} {'unset' if value is None else 'set to ' + value}")


def image_help(kind: ServiceKind) -> str:
    if kind.registry_image:
        return (
            f"Image with the interface of {kind.registry_image} (default: {kind.registry_image} "
            f"if present, else the local {kind.local_image})."
        )
    return f"Image with the interface of {kind.local_image} (default: that one)."


def command_set(kind: ServiceKind, module: str) -> list[click.Command]:  # noqa: C901 - one command each
    """Dokku's service commands for ``kind``; their callbacks say they live in ``module``."""
    impl = Commands(kind)
    k = kind.name
    service_cmd = access.service_command(service="name", kind=k)
    linking_cmd = access.service_command(service="name", kind=k, app="app")
    no_restart = click.option("--no-restart", is_flag=True, help="Change the config without a new release.")
    commands: list[click.Command] = []

    def add(*decorators: Callable[[Any], Any]) -> Callable[[Callable[..., None]], None]:
        def wrap(f: Callable[..., None]) -> None:
            f.__module__ = module
            command = pass_context(f)
            for decorator in reversed(decorators):
                command = decorator(command)
            commands.append(command)  # type: ignore[arg-type]

        return wrap

    @add(
        access.admin_command,
        click.command(f"{k}:create"),
        click.argument("name"),
        click.option("--image", help=image_help(kind)),
        click.option("--password", help="Use this password (visible in ps while skiff runs; prefer --password-stdin)."),
        click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin."),
    )
    def create(context: Context, name: str, image: str | None, password: str | None, password_stdin: bool) -> None:
        """Create a service NAME and wait until it accepts connections."""
        service_name(name)
        if password and password_stdin:
            raise click.UsageError("give --password or --password-stdin, not both")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif password:
            check_password(kind, password)
            context.output.warn("--password is visible in process listings; --password-stdin is safer")
        impl.create(context, name, image, password)

    @add(
        access.admin_command,
        click.command(f"{k}:destroy"),
        click.argument("name"),
        click.option("--force", "-f", is_flag=True, help="Do not ask for the service name."),
    )
    def destroy(context: Context, name: str, force: bool) -> None:
        """Destroy service NAME and its data (refused while apps are linked)."""
        impl.destroy(context, name, force)

    @add(
        access.admin_command,
        click.command(f"{k}:list"),
        click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table"),
    )
    def list_(context: Context, fmt: str) -> None:
        """List the services (never their passwords)."""
        impl.list(context, fmt)

    @add(service_cmd, click.command(f"{k}:exists"), click.argument("name"))
    def exists(context: Context, name: str) -> None:
        """Exit 0 if service NAME exists, 1 if not."""
        impl.store.load(context, name)
        click.echo(f"{k} service {name} exists")

    def info_options(f: Any) -> Any:
        for field in reversed(INFO_FIELDS):
            extra = " (with the password)." if field == "dsn" else "."
            f = click.option(f"--{field}", "field", flag_value=field, help=f"Print only the {field}{extra}")(f)
        return f

    @add(service_cmd, click.command(f"{k}:info"), click.argument("name"), info_options)
    def info(context: Context, name: str, field: str | None) -> None:
        """Show service NAME: status, version, data dir, links. The password only with --dsn."""
        impl.info(context, name, field)

    @add(
        linking_cmd,
        click.command(f"{k}:link"),
        click.argument("name"),
        click.argument("app"),
        click.option("--alias", "-a", help=f"Set <ALIAS>_URL instead of {kind.url_key}."),
        no_restart,
    )
    def link(context: Context, name: str, app: str, alias: str | None, no_restart: bool) -> None:
        """Link service NAME to APP: set its URL variable and release."""
        impl.link(context, name, app, alias, no_restart)

    @add(linking_cmd, click.command(f"{k}:unlink"), click.argument("name"), click.argument("app"), no_restart)
    def unlink(context: Context, name: str, app: str, no_restart: bool) -> None:
        """Unlink service NAME from APP: unset its URL and release."""
        impl.unlink(context, name, app, no_restart)

    @add(linking_cmd, click.command(f"{k}:promote"), click.argument("name"), click.argument("app"), no_restart)
    def promote(context: Context, name: str, app: str, no_restart: bool) -> None:
        """Make NAME the APP's {url_key} (the previous one is kept under an alias) and release."""
        impl.promote(context, name, app, no_restart)

    @add(service_cmd, click.command(f"{k}:links"), click.argument("name"))
    def links(context: Context, name: str) -> None:
        """List the apps linked to service NAME (and the key each one has)."""
        for app, key in sorted(impl.store.load(context, name).links.items()):
            click.echo(f"{app} {key}")

    @add(access.app_command(app="app"), click.command(f"{k}:app-links"), click.argument("app"))
    def app_links(context: Context, app: str) -> None:
        """List the services APP is linked to."""
        context.state.require_app(app)
        for service in impl.store.linked_to(context, app):
            click.echo(service.name)

    @add(linking_cmd, click.command(f"{k}:linked"), click.argument("name"), click.argument("app"))
    def linked(context: Context, name: str, app: str) -> None:
        """Exit 0 if service NAME is linked to APP, 1 if not."""
        if app not in impl.store.load(context, name).links:
            raise NotFound(f"{k} {name} is not linked to {app}")
        click.echo(f"{k} {name} is linked to {app}")

    @add(service_cmd, click.command(f"{k}:connect"), click.argument("name"))
    def connect(context: Context, name: str) -> None:
        """Open the service's client in its container (interactive with a terminal)."""
        _, container = impl.running(context, name)
        code = subprocess.call(impl.docker_exec(container, kind.connect, interactive=True))
        if code:
            raise click.exceptions.Exit(code)

    @add(access.admin_command, click.command(f"{k}:enter"), click.argument("name"))
    def enter(context: Context, name: str) -> None:
        """Open a shell in the service's container (admin: a shell on the engine)."""
        _, container = impl.running(context, name)
        code = subprocess.call(impl.docker_exec(container, ["sh"], interactive=True))
        if code:
            raise click.exceptions.Exit(code)

    @add(service_cmd, click.command(f"{k}:export"), click.argument("name"))
    def export(context: Context, name: str) -> None:
        """Write a dump of NAME to stdout: KIND:export NAME > dump."""
        impl.export(context, name)

    @add(service_cmd, click.command(f"{k}:import"), click.argument("name"))
    def import_(context: Context, name: str) -> None:
        """Load a dump from stdin into NAME: KIND:import NAME < dump (a bad dump changes nothing)."""
        impl.import_(context, name)

    @add(
        access.admin_command,
        click.command(f"{k}:clone"),
        click.argument("name"),
        click.argument("new"),
        click.option("--image", help="The new service's image (default: NAME's)."),
    )
    def clone(context: Context, name: str, new: str, image: str | None) -> None:
        """Create service NEW with a copy of NAME's data."""
        impl.clone(context, name, new, image)

    @add(
        access.admin_command,
        click.command(f"{k}:upgrade"),
        click.argument("name"),
        click.option("--image", help=f"The new image (default: the {k} plugin's image, {kind.local_image})."),
        no_restart,
    )
    def upgrade(context: Context, name: str, image: str | None, no_restart: bool) -> None:
        """Move NAME to a new image (a new major version): export, import into a new container,
        switch, then redeploy the linked apps. On a failure the old container keeps serving."""
        impl.upgrade(context, name, image, no_restart)

    @add(
        service_cmd,
        click.command(f"{k}:logs"),
        click.argument("name"),
        click.option("--tail", "-t", "follow", is_flag=True, help="Keep following the log."),
        click.option("--num", "-n", type=click.IntRange(min=0), default=100, show_default=True, help="Lines (0: all)."),
    )
    def logs(context: Context, name: str, follow: bool, num: int) -> None:
        """Show the server's log."""
        container = impl.engine.get(client(), impl.store.load(context, name))
        if container is None:
            raise SkiffError(f"{k} {name} has no container; start it with {k}:start {name}")
        if follow:
            code = subprocess.call(["docker", "logs", "--follow", "--tail", str(num) if num else "all", container.id])
            if code:
                raise click.exceptions.Exit(code)
            return
        click.echo(container.logs(tail=num or "all").decode("utf-8", "replace"), nl=False)

    @add(service_cmd, click.command(f"{k}:start"), click.argument("name"))
    def start(context: Context, name: str) -> None:
        """Start service NAME (recreating its container from the data dir if it is gone)."""
        impl.start(context, name)

    @add(service_cmd, click.command(f"{k}:stop"), click.argument("name"))
    def stop(context: Context, name: str) -> None:
        """Stop service NAME (linked apps lose it until it starts)."""
        impl.stop(context, name)

    @add(service_cmd, click.command(f"{k}:pause"), click.argument("name"))
    def pause(context: Context, name: str) -> None:
        """Freeze service NAME's processes (KIND:start resumes them)."""
        impl.stop(context, name, pause=True)

    @add(service_cmd, click.command(f"{k}:restart"), click.argument("name"))
    def restart(context: Context, name: str) -> None:
        """Restart service NAME and wait until it accepts connections."""
        impl.restart(context, name)

    @add(
        access.admin_command,
        click.command(f"{k}:expose"),
        click.argument("name"),
        click.argument("target", required=False, metavar="[[ADDR:]PORT]"),
    )
    def expose(context: Context, name: str, target: str | None) -> None:
        """Publish NAME's port on the host: on 127.0.0.1 unless an address is given (root only)."""
        impl.expose(context, name, target)

    @add(access.admin_command, click.command(f"{k}:unexpose"), click.argument("name"))
    def unexpose(context: Context, name: str) -> None:
        """Stop publishing NAME's port on the host."""
        impl.unexpose(context, name)

    @add(
        access.admin_command,
        click.command(f"{k}:set"),
        click.argument("name"),
        click.argument("key"),
        click.argument("value", required=False),
    )
    def set_(context: Context, name: str, key: str, value: str | None) -> None:
        """Set (or, without VALUE, unset) a setting of NAME and recreate its container."""
        impl.set(context, name, key, value)

    @add(
        local_only,
        click.command(f"{k}:build-image"),
        click.option("--base", help="Image to build FROM (default: the stack image)."),
        click.option("--tag", help=f"Tag the image with this name (default: {kind.local_image}).", metavar="IMAGE"),
    )
    def build_image(context: Context, base: str | None, tag: str | None) -> None:
        """Build the local image from the stack image and Debian's packages.

        An image of another Debian suite (another major version, for KIND:upgrade):
        KIND:build-image --base skiff/stack-base:SUITE --tag skiff/KIND:SUITE
        """
        for value in (base, tag):
            if value is not None and not IMAGE_RE.fullmatch(value):
                raise ValidationError(f"invalid image {value!r}")
        impl.engine.build_image(context, client(), base=base, tag=tag)

    backup_commands(kind, impl, add)
    for command in commands:
        command.help = (command.help or "").replace("KIND", k).replace("{url_key}", kind.url_key)
    return commands


def read_secret_line(what: str) -> str:
    """The first line of stdin (a passphrase): never from the command line."""
    if sys.stdin.isatty():
        return click.prompt(what, hide_input=True, default="", show_default=False)
    return sys.stdin.readline().rstrip("\r\n")


def backup_commands(kind: ServiceKind, impl: Commands, add: Callable[..., Any]) -> None:
    """Add ``KIND:backup*`` (dokku-postgres's names) and ``KIND:backup-restore`` through ``add``: admin commands."""
    k = kind.name
    backups = impl.backups

    @add(access.admin_command, click.command(f"{k}:backup"), click.argument("name"), click.argument("dest"))
    def backup(context: Context, name: str, dest: str) -> None:
        """Back up NAME to DEST: a directory (over SSH under SKIFF_ROOT/backups) or s3://BUCKET/PREFIX."""
        backups.backup(context, name, dest)

    @add(
        access.admin_command,
        click.command(f"{k}:backup-restore"),
        click.argument("name"),
        click.argument("source"),
        click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase of an encrypted backup from stdin."),
    )
    def backup_restore(context: Context, name: str, source: str, passphrase_stdin: bool) -> None:
        """Load backup SOURCE (a file or s3://BUCKET/KEY) into NAME; a bad one changes nothing."""
        passphrase = check_passphrase(read_secret_line("Passphrase")) if passphrase_stdin else None
        backups.restore(context, name, source, passphrase)

    @add(
        access.admin_command,
        click.command(f"{k}:backup-auth"),
        click.argument("name"),
        click.argument("access_key"),
        click.argument("secret"),
        click.argument("region", required=False),
        click.argument("signature_version", required=False),
        click.argument("endpoint_url", required=False),
    )
    def backup_auth(
        context: Context,
        name: str,
        access_key: str,
        secret: str,
        region: str | None,
        signature_version: str | None,
        endpoint_url: str | None,
    ) -> None:
        """Store S3 credentials for NAME's backups (kept 0600 in the state store, never printed).

        An ENDPOINT_URL (an S3-compatible server) only from a root shell: it reaches the network."""
        from .backup import KEY_RE, REGION_RE, SIGNATURES

        if not KEY_RE.fullmatch(access_key) or not KEY_RE.fullmatch(secret):
            raise ValidationError("invalid S3 credentials: printable characters without spaces")
        if region and not REGION_RE.fullmatch(region):
            raise ValidationError(f"invalid region {region!r}: e.g. us-east-1")
        if signature_version and signature_version not in SIGNATURES:
            raise ValidationError(f"invalid signature version {signature_version!r}: one of {', '.join(SIGNATURES)}")
        auth = {"access_key": access_key, "secret": secret}
        if region:
            auth["region"] = region
        if signature_version:
            auth["signature"] = signature_version
        if endpoint_url:
            if not context.from_root_shell:
                raise SkiffError(
                    "an S3 endpoint URL reaches the server's network: only root on the server may set it "
                    f"({k}:backup-auth from a root shell)"
                )
            if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(?::[0-9]{1,5})?/?", endpoint_url):
                raise ValidationError(f"invalid endpoint URL {endpoint_url!r}: give http(s)://HOST[:PORT]")
            auth["endpoint"] = endpoint_url
        backups.update(context, name, auth=auth)
        context.output.step(f"Stored the S3 credentials of {k} {name}")
        if not context.via_ssh:
            context.output.warn("the secret was visible in process listings while this ran (over SSH it is not)")

    @add(access.admin_command, click.command(f"{k}:backup-deauth"), click.argument("name"))
    def backup_deauth(context: Context, name: str) -> None:
        """Forget NAME's S3 credentials."""
        backups.update(context, name, auth=None)
        context.output.step(f"Removed the S3 credentials of {k} {name}")

    @add(
        access.admin_command,
        click.command(f"{k}:backup-schedule"),
        click.argument("name"),
        click.argument("schedule"),
        click.argument("dest"),
    )
    def backup_schedule(context: Context, name: str, schedule: str, dest: str) -> None:
        """Back up NAME to DEST on SCHEDULE (cron syntax, e.g. "0 3 * * *" or @daily), by the cron runner."""
        from skiff import validate

        validate.cron_schedule(schedule)
        checked_text("destination", dest)
        destination(context, dest)  # the path rules, checked now for the caller
        backups.update(context, name, schedule={"schedule": schedule, "dest": dest})
        context.output.step(f"Scheduled backups of {k} {name}: {schedule} to {dest}")

    @add(access.admin_command, click.command(f"{k}:backup-schedule-cat"), click.argument("name"))
    def backup_schedule_cat(context: Context, name: str) -> None:
        """Print NAME's backup schedule and the command the cron runner starts."""
        impl.store.load(context, name)
        scheduled = backups.config(context, name).get("schedule")
        if not scheduled:
            raise NotFound(f"{k} {name} has no backup schedule")
        click.echo(f"{scheduled['schedule']} skiff {k}:backup {name} {scheduled['dest']}")

    @add(access.admin_command, click.command(f"{k}:backup-unschedule"), click.argument("name"))
    def backup_unschedule(context: Context, name: str) -> None:
        """Stop NAME's scheduled backups."""
        backups.update(context, name, schedule=None)
        context.output.step(f"Unscheduled the backups of {k} {name}")

    @add(access.admin_command, click.command(f"{k}:backup-set-encryption"), click.argument("name"))
    def backup_set_encryption(context: Context, name: str) -> None:
        """Encrypt NAME's backups (gpg, AES256) with a passphrase read from stdin."""
        impl.store.load(context, name)
        passphrase = check_passphrase(read_secret_line("Passphrase"))
        backups.update(context, name, passphrase=passphrase)
        context.output.step(f"Backups of {k} {name} are encrypted from now on")

    @add(access.admin_command, click.command(f"{k}:backup-unset-encryption"), click.argument("name"))
    def backup_unset_encryption(context: Context, name: str) -> None:
        """Stop encrypting NAME's backups."""
        backups.update(context, name, passphrase=None)
        context.output.step(f"Backups of {k} {name} are no longer encrypted")
