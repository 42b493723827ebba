"""Hook implementations a service plugin takes from the toolkit (its plugin.py holds them).

Link records live in the plugin's properties, so an app that is destroyed is unlinked
and an app that is renamed keeps its links; before any container of an app is created,
the services linked to it are put on its network (and the others taken off it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import IO, Any

import click

from skiff import PROJECT, hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, ContainerOptions, PeriodicTask
from skiff.errors import SkiffError, ValidationError
from skiff.settings import Namespace

from .kind import ServiceKind
from .record import Service, Store, service_name


class ServiceHooks:
    """``skiff_service_apps``, ``skiff_app_destroyed``, ``skiff_app_renamed``,
    ``skiff_container_options``, ``skiff_report``, ``skiff_periodic_tasks`` (scheduled
    backups), ``skiff_settings`` (``backups``: retention) and ``skiff_backup_parts`` for one kind.

    A plugin's plugin.py holds the bound methods under the hook names
    (``globals().update(HOOKS.implementations())``); pluggy finds their markers. Its own
    ``skiff_commands`` calls :meth:`add_commands`: ``commands`` names the module whose
    ``COMMANDS`` it adds (imported only when the CLI is made).
    """

    def __init__(self, kind: ServiceKind, commands: str | None = None):
        self.kind = kind
        self.store = Store(kind)
        self.commands = commands

    def implementations(self) -> dict[str, Callable[..., Any]]:
        """The hook implementations by hook name, for a plugin module to hold."""
        return {
            name: getattr(self, name)
            for name in dir(type(self))
            if name.startswith("skiff_") and hasattr(getattr(self, name), f"{PROJECT}_impl")
            if name != "skiff_upgrade" or self.kind.tls is not None  # only TLS is brought forward yet
        }

    def add_commands(self, cli: click.Group) -> None:
        """What the plugin's own ``skiff_commands`` does: add the ``COMMANDS`` of ``commands``."""
        if self.commands is not None:
            for command in importlib.import_module(self.commands).COMMANDS:
                cli.add_command(command)

    def _update_links(self, context: Context, app: str, change: Callable[[Service], None]) -> None:
        for service in self.store.all(context):
            if app not in service.links:
                continue
            with self.store.lock(context, service.name):
                fresh = self.store.load(context, service.name)
                if app in fresh.links:
                    change(fresh)
                    self.store.save(context, fresh)

    @hookimpl(trylast=True)
    def skiff_service_apps(self, context: Context, kind: str, service: str) -> list[str] | None:
        """The apps a service of this kind is linked to (for access checks); ``None``: no such service."""
        if kind != self.kind.name:
            return None
        try:
            service_name(service)
        except ValidationError:
            return None
        if not self.store.exists(context, service):
            return None
        return sorted(self.store.load(context, service).links)

    @hookimpl
    def skiff_app_destroyed(self, context: Context, app: str) -> None:
        """Forget the app's links (the core deletes its config)."""

        def unlink(service: Service) -> None:
            service.links.pop(app, None)
            context.output.info(f"Unlinked {self.kind.name} {service.name}")

        self._update_links(context, app, unlink)

    @hookimpl(tryfirst=True)
    def skiff_app_renamed(self, context: Context, old: str, new: str) -> None:
        """Keep the links: the records follow the config, and the service joins the new name's
        network before the scheduler starts the renamed containers (first)."""

        def rename(service: Service) -> None:
            service.links[new] = service.links.pop(old)

        self._update_links(context, old, rename)
        self.attach_linked(context, new)

    def attach_linked(self, context: Context, app: str, *, detach_others: bool = False) -> None:
        """Services linked to ``app`` on its network; with ``detach_others``, the others off it."""
        services = self.store.all(context)
        if not any(app in s.links for s in services) and not (detach_others and services):
            return
        from .engine import Engine, client, link_network

        engine, c = Engine(self.kind), client()
        network = link_network(context, app)
        for service in services:
            if app in service.links:
                engine.attach(c, service, app, network)
            elif detach_others:
                engine.detach(c, service, app, network)

    @hookimpl
    def skiff_container_options(self, context: Context, app: str, process: str, role: str) -> ContainerOptions | None:
        """The links are the truth, applied before any container of the app is created. Adds nothing."""
        self.attach_linked(context, app, detach_others=True)
        return None

    @hookimpl
    def skiff_upgrade(self, context: Context) -> list[str] | None:
        """Services made before their kind had TLS get their certificate: a container without it
        is recreated from the same data, password and links (a stopped or paused one is left so)."""
        kind = self.kind
        services = [s for s in self.store.all(context) if kind.tls and kind.tls.enabled(s)]
        if not services:
            return None
        from .engine import Engine, client

        engine = Engine(kind)
        try:
            c = client()
        except SkiffError as exc:
            return [
                f"{kind.name}: TLS not given to earlier services, the engine is away ({exc}); run state:migrate again"
            ]
        lines = []
        for service in services:
            with self.store.lock(context, service.name):
                line = self._give_tls(context, engine, c, service)
            if line:
                lines.append(f"{kind.name} {service.name}: {line}")
        return lines

    def _give_tls(self, context: Context, engine: Any, c: Any, service: Service) -> str | None:
        from . import tls

        container = engine.get(c, service)
        if container is None or container.labels.get(tls.LABEL) == "on":
            return None  # a missing container gets TLS when KIND:start makes it
        try:
            tls.ensure(context, c, self.kind, service, engine.labels(context))  # before anything changes
        except SkiffError as exc:
            return f"TLS not turned on, the service is as it was: {exc}"
        was = container.status
        if was == "paused":
            container.unpause()
        try:
            running = engine.recreate(context, c, service)
        except Exception as exc:
            plain = self.store.make(**{**service.as_dict(), "options": {**service.options, "tls": "false"}})
            engine.recreate(context, c, plain)
            return f"TLS not turned on, the server did not start with it ({exc}); it runs as before"
        if was == "paused":
            running.pause()
        elif was != "running":
            running.stop(timeout=self.kind.stop_timeout)
        return f"TLS on (its certificate in {tls.folder(context, self.kind, service.name)}), the container recreated"

    @hookimpl
    def skiff_report(self, context: Context, app: str) -> dict[str, dict[str, Any]] | None:
        links = {s.name: s.links[app] for s in self.store.all(context) if app in s.links}
        if not links:
            return None
        return {self.kind.name: {"links": links}}

    @hookimpl
    def skiff_periodic_tasks(self, context: Context) -> list[PeriodicTask]:
        """Each scheduled backup of this kind: ``KIND:backup NAME DEST`` (an argument list)."""
        from .backup import KEY_PREFIX

        tasks = []
        for key, value in sorted(context.state.properties(self.kind.name).items()):
            scheduled = value.get("schedule") if key.startswith(KEY_PREFIX) and isinstance(value, dict) else None
            if isinstance(scheduled, dict):
                name = key[len(KEY_PREFIX) :]
                task = PeriodicTask(
                    f"{self.kind.name}:backup:{name}",
                    str(scheduled.get("schedule")),
                    (f"{self.kind.name}:backup", name, str(scheduled.get("dest"))),
                )
                tasks.append(task)
        return tasks

    @hookimpl
    def skiff_settings(self) -> list[Namespace]:
        """``backups:set --global retention N`` (one namespace, whichever service plugin declares it)."""
        from .backup import SETTINGS

        return [SETTINGS]

    @hookimpl
    def skiff_backup_parts(self, context: Context) -> list[BackupPart]:
        """One part per service: its export (``KIND:export``) and its TLS certificate folder in
        the backup; a restore recreates the service from its record (same name, password,
        options, links, certificate) and imports the dump into it."""
        return [self.backup_part(context, s.name) for s in sorted(self.store.all(context), key=lambda s: s.name)]

    def backup_part(self, context: Context, name: str) -> BackupPart:
        def dump(out: IO[bytes]) -> None:
            self.backup_dump(context, name, out)

        def restore(data: IO[bytes] | None) -> None:
            self.backup_restore(context, name, data)

        from . import tls

        title = f"{self.kind.title} service {name} (a {self.kind.name}:export dump)"
        certificate = tls.folder(context, self.kind, name).relative_to(context.root).as_posix()
        paths = (certificate,) if self.kind.tls is not None else ()
        return BackupPart(f"{self.kind.name}:{name}", title, paths, dump=dump, restore=restore, order=200)

    def backup_dump(self, context: Context, name: str, out: IO[bytes]) -> None:
        from .commandset import Commands

        commands = Commands(self.kind)
        k = self.kind.name
        try:
            _, container = commands.running(context, name)
        except SkiffError:
            raise SkiffError(
                f"{k} {name} is not running: start it ({k}:start {name}) or leave it out (--exclude {k}:{name})"
            ) from None
        commands.export_to(container, out)

    def backup_restore(self, context: Context, name: str, dump: IO[bytes] | None) -> None:
        from .commandset import Commands
        from .engine import Engine, client

        if dump is None:
            raise SkiffError(f"the backup holds no dump of {self.kind.name} {name}")
        commands, engine = Commands(self.kind), Engine(self.kind)
        with self.store.lock(context, name):
            service = self.store.load(context, name)
            c = client()
            if engine.get(c, service) is not None:
                raise SkiffError(
                    f"a container named {self.kind.container_name(name)} already exists: remove it, "
                    f"or load the dump into it with {self.kind.name}:import"
                )
            # the data folder only: the certificate folder came back with the files
            engine.remove_path(context, c, service, self.store.data_dir(context, name) / "data")
            engine.ensure_image(context, c, service.image)
            running = engine.run(context, c, service)
            try:
                engine.wait_ready(running, service)
                commands.import_from(context, service, running, dump)
            except BaseException:
                engine.remove(c, service, graceful=False)
                raise
        context.output.info(f"{self.kind.title} {name} is running with the data of the backup")
