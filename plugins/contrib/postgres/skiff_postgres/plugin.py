"""postgres: service containers that apps link to (like dokku-postgres).

Commands are in :mod:`skiff_postgres.commands`; this module holds the hook
implementations. Link records live in the plugin's properties, so an app
that is destroyed is unlinked and an app that is renamed keeps its links.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import ContainerOptions
from skiff.errors import ValidationError

from . import service as pg_service


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


def _update_links(context: Context, app: str, change) -> None:
    for service in pg_service.all_services(context):
        if app not in service.links:
            continue
        with pg_service.service_lock(context, service.name):
            fresh = pg_service.load(context, service.name)
            if app in fresh.links:
                change(fresh)
                pg_service.save(context, fresh)


@hookimpl(trylast=True)
def skiff_service_apps(context: Context, kind: str, service: str) -> list[str] | None:
    """The apps a postgres service is linked to (for access checks); ``None``: no such service."""
    if kind != "postgres":
        return None
    try:
        pg_service.service_name(service)
    except ValidationError:
        return None
    if not pg_service.exists(context, service):
        return None
    return sorted(pg_service.load(context, service).links)


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    """Forget the app's links (the core deletes its config)."""

    def unlink(service: pg_service.Service) -> None:
        service.links.pop(app, None)
        context.output.info(f"Unlinked postgres {service.name}")

    _update_links(context, app, unlink)


@hookimpl(tryfirst=True)
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    """Keep the links: the config moved with the app, the records follow, and the service joins
    the new name's network before the scheduler starts the renamed containers (first)."""

    def rename(service: pg_service.Service) -> None:
        service.links[new] = service.links.pop(old)

    _update_links(context, old, rename)
    _attach_linked(context, new)


def _attach_linked(context: Context, app: str, *, detach_others: bool = False) -> None:
    """Services linked to ``app`` on its network; with ``detach_others``, the others off it."""
    services = pg_service.all_services(context)
    if not any(app in s.links for s in services) and not (detach_others and services):
        return
    from . import container as pg_container

    c = pg_container.client()
    for service in services:
        if app in service.links:
            pg_container.attach(c, service, app)
        elif detach_others:
            pg_container.detach(c, service, app)


@hookimpl
def skiff_container_options(context: Context, app: str, process: str, role: str) -> ContainerOptions | None:
    """The links are the truth, applied before any container of the app is created: linked services
    on the app's network (links made before apps were isolated, a container recreated), the others off
    it (an unlink made while the engine was away). Adds nothing to the container."""
    _attach_linked(context, app, detach_others=True)
    return None


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    links = {s.name: s.links[app] for s in pg_service.all_services(context) if app in s.links}
    if not links:
        return None
    return {"postgres": {"links": links}}
