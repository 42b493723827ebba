"""registry: release images pushed to a container registry, like Dokku's registry plugin.

Hooks: ``skiff_settings`` (``registry:set``), ``skiff_commands`` (``registry:login``,
``registry:logout``, ``registry:report``, ``registry:serve``), ``skiff_image_for_nodes`` (the
reference other nodes pull), ``skiff_release`` (push-on-release), ``skiff_boot`` (the served registry runs again after
a reboot), ``skiff_upgrade`` (a registry stopped under an earlier version stays stopped),
``skiff_report``. See
docs/registry.md.
"""

from __future__ import annotations

from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, registry_config_dir
from skiff.deploy import Deploy
from skiff.settings import Namespace

from .settings import SETTINGS, push_server, repository


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [SETTINGS]


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_image_for_nodes(context: Context, app: str, image: str) -> str | None:
    """Push ``image`` to ``app``'s registry and return the reference nodes pull; ``None`` without a server."""
    server = SETTINGS.get(context.state, "server", app)
    if not server:
        return None
    from .push import push

    return push(context.root, server, repository(context.state, app), image, push_server(context.state, app, server))


@hookimpl
def skiff_release(deploy: Deploy) -> None:
    """push-on-release: a new build's image goes to the registry before it is deployed.

    A push the registry refuses fails the deploy in its release phase: nothing was started and
    the running release keeps serving. Redeploys (config, scale, rollback) reuse a pushed image.
    """
    context = deploy.context
    if deploy.kind != "deploy" or not deploy.image:
        return
    if not SETTINGS.get(context.state, "push-on-release", deploy.app):
        return
    server = SETTINGS.get(context.state, "server", deploy.app)
    if not server:
        deploy.output.warn("registry push-on-release is on but no registry server is set: not pushed")
        return
    from .push import push

    via = push_server(context.state, deploy.app, server)
    reference = push(context.root, server, repository(context.state, deploy.app), deploy.image, via)
    deploy.output.step(f"Pushed {reference}")


@hookimpl
def skiff_boot(context: Context) -> list[str] | None:
    """After a reboot (``ps:restore``): the registry ``registry:serve`` started runs again, with
    the same address, certificate and account, before the apps' tasks pull from it."""
    from skiff.errors import SkiffError

    from . import serve

    try:
        done = serve.resume(context.root)
    except SkiffError as exc:
        return [f"registry: {exc}"]
    return [f"registry: {done}"] if done else None


@hookimpl
def skiff_upgrade(context: Context) -> list[str] | None:
    """A registry an earlier version served and that does not run now stays stopped: its
    configs (which now mean "start it at boot") go. Idempotent."""
    from . import serve

    if serve.forget_stopped(context.root):
        return ["registry: the stopped registry:serve registry stays stopped at boot (run registry:serve to serve it)"]
    return None


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    from .commands import report_fields

    return {"registry": report_fields(context, app)}


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The registry credentials (``SKIFF_ROOT/registry/docker``) and the served registry's CA,
    certificate, account and config; not its image storage (``serve/data``: nodes push again)."""
    root = context.root
    paths = [registry_config_dir(root).relative_to(root).as_posix()]
    served = root / "registry" / "serve"
    if served.is_dir():
        paths += sorted(p.relative_to(root).as_posix() for p in served.iterdir() if p.name != "data")
    return [BackupPart("registry:credentials", "the registry credentials (registry:login)", paths=tuple(paths))]
