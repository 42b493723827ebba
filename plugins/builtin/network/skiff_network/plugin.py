"""network: networks apps share on purpose, Dokku's ``network:*``.

Isolation is the scheduler's default, not this plugin's: every container of an
app is on the app's own network ``skiff-app-APP`` and nothing else is (a
linked service joins it). This plugin adds the shared networks: an app whose
settings name one joins it with the alias ``APP.PROCESS``, so apps on a shared
network reach each other as ``api.web``, as on Dokku.

- ``initial-network`` and ``attach-post-create``: answered through
  ``skiff_container_options`` (every container of the app: processes, release
  tasks, ``run``), joined before the container starts;
- ``attach-post-deploy``: ``skiff_post_deploy`` connects the new release's
  process containers once they passed their checks;
- ``network:rebuild APP`` applies a change to the running containers, live;
- ``skiff_upgrade`` moves what ran on the old shared ``skiff`` network.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import ContainerOptions
from skiff.deploy import Deploy
from skiff.settings import Namespace

from . import networks


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [networks.SETTINGS]


@hookimpl
def skiff_container_options(context: Context, app: str, process: str, role: str) -> ContainerOptions | None:
    """``initial-network`` as the primary network, ``attach-post-create`` joined before the start."""
    found = networks.attachments(context, app)
    initial = found.get(networks.INITIAL, [])
    extra = found.get(networks.POST_CREATE, [])
    if not initial and not extra:
        return None
    c = networks.client()
    for name in [*initial, *extra]:
        networks.require(context, name)
        networks.ensure(context, c, name)  # a recorded network removed behind skiff's back comes back
    options: ContainerOptions = {}
    if initial:
        options["network"] = initial[0]
    if extra:
        options["networks"] = list(extra)
    return options


@hookimpl
def skiff_post_deploy(deploy: Deploy) -> None:
    """``attach-post-deploy``: the checked containers of the new release join those networks."""
    if deploy.release is None or not networks.attachments(deploy.context, deploy.app).get(networks.POST_DEPLOY):
        return
    joined = networks.attach_post_deploy(deploy.context, deploy.app, deploy.release.version)
    if joined:
        deploy.output.info(f"network: attached {', '.join(joined)} (attach-post-deploy)")


@hookimpl
def skiff_upgrade(context: Context) -> list[str]:
    from . import migrate

    return migrate.migrate(context)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    return {"network": report_fields(context, app)}


def report_fields(context: Context, app: str) -> dict[str, Any]:
    found = networks.attachments(context, app)
    from skiff import contracts

    return {
        "own_network": contracts.app_network(app),
        "initial_network": (found.get(networks.INITIAL) or [""])[0],
        "attach_post_create": ",".join(found.get(networks.POST_CREATE, [])),
        "attach_post_deploy": ",".join(found.get(networks.POST_DEPLOY, [])),
    }
