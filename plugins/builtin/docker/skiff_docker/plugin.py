"""The docker scheduler's hook implementations (entry point ``docker``).

Lifecycle: ``skiff_pre_build`` publishes the checked ``build`` docker-options
(``deploy.build_options``, docs/contracts.md), ``skiff_release`` runs release tasks in one-off containers,
``skiff_deploy`` starts and checks the new containers, ``skiff_post_deploy``
(last) renames them into place, runs ``postdeploy`` and retires the old
ones, ``skiff_deploy_failed`` removes the new ones. Commands live in
:mod:`skiff_docker.commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, ContainerOptions, OneOff, PeriodicTask
from skiff.deploy import Deploy
from skiff.settings import Namespace

from . import settings


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [settings.CHECKS, settings.PS, settings.LOGS, settings.CLEANUP]


@hookimpl(tryfirst=True)
def skiff_container_options(context: Context, app: str, process: str, role: str) -> ContainerOptions:
    """Every container's json-file log is bounded by ``logs:set`` (max-size, max-file).

    ``tryfirst``: the merge keeps the last ``log_config``, so any other plugin's answer
    overrides this default (and an app's own ``--log-driver``/``--log-opt`` docker options
    override both)."""
    return {"log_config": settings.log_config(context.state, app)}


@hookimpl(trylast=True)
def skiff_run_oneoff(context: Context, oneoff: OneOff, write: Callable[[str], None]) -> int:
    from . import scheduler

    return scheduler.run_oneoff_of(context, oneoff, write)


@hookimpl
def skiff_periodic_tasks(context: Context) -> list[PeriodicTask]:
    """``cleanup`` on the ``cleanup:set --global schedule`` (default ``@daily``)."""
    schedule = settings.CLEANUP.get(context.state, "schedule")
    return [] if schedule == "off" else [PeriodicTask("docker:cleanup", schedule, ("cleanup",))]


@hookimpl
def skiff_upgrade(context: Context) -> list[str]:
    """Check values were kept in one ``checks`` property before they were declared settings."""
    moved = settings.move_check_values(context.state)
    return [f"moved {moved} check value(s) to the declared checks settings"] if moved else []


@hookimpl(trylast=True)
def skiff_pre_build(deploy: Deploy) -> None:
    """Publish the app's checked ``build`` docker-options as ``deploy.build_options`` for the builder;
    start the push's containers ahead (:mod:`skiff_docker.prestart`)."""
    from . import options

    checked = settings.applied_docker_options(deploy.state, deploy.app, "build", deploy.output.warn)
    deploy.build_options = options.build_options(checked)
    _prestart(deploy)


def _prestart(deploy: Deploy) -> None:
    """A push's containers start while it builds (``ps:set APP prestart``); never fails the push."""
    from . import prestart

    try:
        prestart.begin(deploy)
    except Exception as exc:
        deploy.output.info(f"prestart skipped: {exc}")


@hookimpl(trylast=True)
def skiff_release(deploy: Deploy) -> None:
    from . import scheduler

    if settings.other_scheduler(deploy.state, deploy.app):
        return  # its own scheduler (swarm) runs the release tasks on the cluster
    previous = deploy.previous
    if (
        deploy.kind == "redeploy"
        and previous is not None
        and previous.image == deploy.image
        and previous.config == deploy.config
    ):
        return  # same image, same config (scale, restart, start): nothing for release tasks to do
    tasks = []
    predeploy = scheduler.app_json_script(deploy.app_json, "predeploy")
    if predeploy:
        tasks.append(("predeploy", predeploy))
    release_command = deploy.release_command
    if release_command:
        tasks.append(("release", release_command))
    for label, line in tasks:
        scheduler.run_task(deploy, label, line)


@hookimpl(trylast=True)
def skiff_deploy(deploy: Deploy) -> bool | None:
    from . import rollout

    return rollout.deploy(deploy)


def _json_safe(value: dict) -> dict:
    """``value`` if it can be stored as JSON, else nothing (a source's extras are the receiver's own)."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {}
    return dict(value)


@hookimpl(trylast=True)
def skiff_post_deploy(deploy: Deploy) -> None:
    from . import rollout, scheduler

    rollout.switch(deploy)
    postdeploy = scheduler.app_json_script(deploy.app_json, "postdeploy")
    if postdeploy and not settings.other_scheduler(deploy.state, deploy.app):
        scheduler.run_task(deploy, "postdeploy", postdeploy)
    state = deploy.context.state
    settings.set_stopped(state, deploy.app, False)
    if deploy.source is not None:  # for ps:rebuild
        source = deploy.source
        state.set_property(
            settings.PLUGIN,
            "source",
            {
                "kind": source.kind,
                "location": source.location,
                "revision": source.revision,
                "ref": source.ref,
                "extra": _json_safe(source.extra),  # e.g. the image name of git:load-image / git:from-image
            },
            app=deploy.app,
        )
    rollout.retire_later(deploy)


@hookimpl
def skiff_deploy_failed(deploy: Deploy, phase: str, error: BaseException) -> None:
    from . import rollout

    rollout.failed(deploy, phase)


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    from . import lifecycle_ops

    lifecycle_ops.destroy(context, app)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    from . import lifecycle_ops

    lifecycle_ops.renamed(context, old, new)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    from . import lifecycle_ops

    return {"ps": lifecycle_ops.ps_summary(context, app)}


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """No files (images and containers are made again): the last restore step brings every app back."""
    from . import lifecycle_ops

    return [
        BackupPart(
            "docker:apps",
            "every app started again (from its release image, else rebuilt from its source)",
            restore=lambda dump: lifecycle_ops.bring_back(context),
            order=900,
        )
    ]
