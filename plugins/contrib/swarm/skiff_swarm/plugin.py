"""The swarm scheduler's hook implementations (entry point ``swarm``).

For an app whose ``scheduler:set APP selected`` is ``swarm``: ``skiff_deploy`` starts the
release as swarm services and waits for their health (the docker plugin's ``skiff_deploy``
is ``trylast``, so this one answers first), ``skiff_post_deploy`` (last, after nginx
switched) retires the previous release's services, ``skiff_deploy_failed`` removes the new
ones, ``skiff_app_destroyed`` removes every service and the app's overlay network,
``skiff_app_renamed`` runs the release as the new name's services and retires the old ones,
``skiff_run_oneoff`` and ``skiff_app_logs`` answer ``run`` and ``logs`` for swarm apps,
``skiff_periodic_tasks`` runs ``swarm:sync`` every minute (nginx follows moved tasks),
``skiff_link_network`` names the app's overlay network, which linked services join,
``skiff_release`` runs release tasks as one-off job tasks, ``skiff_app_stop`` /
``skiff_app_start`` / ``skiff_app_status`` / ``skiff_app_enter`` answer ``ps:stop`` /
``ps:start`` / ``ps:report`` / ``enter``.
Settings: ``scheduler:*`` and ``swarm:*`` (:mod:`skiff_swarm.settings`). docs/swarm.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import OneOff, PeriodicTask
from skiff.deploy import Deploy
from skiff.settings import Namespace

from . import settings


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_periodic_tasks(context: Context) -> list[PeriodicTask]:
    """``swarm:sync`` every minute while any app runs on the swarm: nginx follows moved tasks."""
    from . import sync

    return [PeriodicTask("swarm:sync", "* * * * *", ("swarm:sync",))] if sync.swarm_apps(context) else []


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [settings.SCHEDULER, settings.SWARM]


@hookimpl
def skiff_deploy(deploy: Deploy) -> bool | None:
    if not settings.is_swarm_app(deploy.state, deploy.app):
        return None
    from . import rollout

    return rollout.deploy(deploy)


@hookimpl
def skiff_release(deploy: Deploy) -> None:
    """A swarm app's ``release:`` and app.json ``predeploy``: one-off job tasks on the cluster."""
    if not settings.is_swarm_app(deploy.state, deploy.app):
        return
    from . import processes

    processes.release_tasks(deploy)


@hookimpl(trylast=True)
def skiff_post_deploy(deploy: Deploy) -> None:
    from . import processes, rollout

    if settings.is_swarm_app(deploy.state, deploy.app) and rollout.rollout_of(deploy) is not None:
        processes.postdeploy(deploy)  # nginx serves the new tasks; the old ones still run
    rollout.retire(deploy)


@hookimpl
def skiff_deploy_failed(deploy: Deploy, phase: str, error: BaseException) -> None:
    from . import rollout

    rollout.failed(deploy)


def _services_of(context: Context, app: str) -> bool:
    """Whether ``app`` may have services on the swarm (it is a swarm app, or a manager is set)."""
    return settings.is_swarm_app(context.state, app) or bool(settings.manager(context.state))


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    if not _services_of(context, app):
        return
    from skiff.errors import SkiffError

    from . import engine

    try:
        c = engine.client(settings.manager(context.state))
    except SkiffError as exc:
        if settings.is_swarm_app(context.state, app):
            context.output.warn(f"swarm: {exc}; the services of {app} were not removed")
        return
    found = engine.services(c, app, role=None)
    for service in found:
        engine.remove_service(c, service["ID"])
    if found:
        context.output.info(f"removed {len(found)} swarm service(s)")
    if not engine.remove_network(c, app):
        context.output.warn(f"swarm: the network of {app} is still in use; it was not removed")


@hookimpl
def skiff_run_oneoff(context: Context, oneoff: OneOff, write: Callable[[str], None]) -> int | None:
    """A one-off task of a swarm app's current release (``run``, cron jobs); others: ``None``."""
    if not settings.is_swarm_app(context.state, oneoff.app):
        return None
    from . import oneoff as tasks

    return tasks.run(context, oneoff, write)


@hookimpl
def skiff_app_logs(
    context: Context, app: str, process: str | None, num: int, follow: bool, write: Callable[[str], None]
) -> bool | None:
    """The logs of a swarm app's services (``logs APP``); others: ``None``."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import oneoff

    oneoff.logs(context, app, process, num, follow, write)
    return True


@hookimpl
def skiff_app_stop(context: Context, app: str) -> int | None:
    """``ps:stop`` of a swarm app: its services go to 0 replicas."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import processes

    return processes.stop(context, app)


@hookimpl
def skiff_app_start(context: Context, app: str) -> str | None:
    """``ps:start`` of a swarm app: the current release's services back to its formation."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import processes

    return processes.start(context, app)


@hookimpl
def skiff_app_status(context: Context, app: str) -> list[dict[str, Any]] | None:
    """``ps:report`` of a swarm app: its tasks on every node."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import processes

    return processes.status(context, app)


@hookimpl
def skiff_app_enter(
    context: Context, app: str, target: str | None, command: list[str], write: Callable[[str], None]
) -> int | None:
    """``enter`` of a swarm app: ``docker exec`` in a task on the manager."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import processes

    return processes.enter(context, app, target, command, write)


@hookimpl
def skiff_link_network(context: Context, app: str) -> str | None:
    """A swarm app's attachable overlay network (made on the manager when missing): services
    linked to the app (postgres, redis) join it there, and its tasks on every node reach them."""
    if not settings.is_swarm_app(context.state, app):
        return None
    from . import engine

    return engine.ensure_network(engine.client(settings.manager(context.state)), app)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    from . import rollout

    rollout.renamed(context, old, new)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    fields: dict[str, Any] = {"selected": settings.selected(context.state, app)}
    if fields["selected"] == "swarm":
        from . import status

        fields.update(status.summary(context, app))
    return {"scheduler": fields}
