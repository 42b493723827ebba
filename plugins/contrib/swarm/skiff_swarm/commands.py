"""``swarm:sync [APP]``: nginx follows the tasks that swarm moved (:mod:`skiff_swarm.sync`)."""

from __future__ import annotations

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context


@access.app_command()
@click.command("swarm:sync")
@click.argument("app", required=False)
@pass_context
def swarm_sync(context: Context, app: str | None) -> None:
    """Point nginx at the running web tasks of APP (or of every swarm app) where swarm moved them."""
    from . import settings, sync

    if app:
        context.state.require_app(app)
        if not settings.is_swarm_app(context.state, app):
            from skiff.errors import SkiffError

            raise SkiffError(f"{app} does not run on the swarm (scheduler:set {app} selected swarm)")
    apps = [app] if app else sync.swarm_apps(context)
    for name, result in sync.sync(context, apps).items():
        context.output.step(f"{name}: {result}")


COMMANDS: list[click.Command] = [swarm_sync]
