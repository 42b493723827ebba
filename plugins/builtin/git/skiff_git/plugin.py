"""Hooks of the git plugin: commands, the ``git`` source kind, app events, report."""

from __future__ import annotations

import os
import shutil
from typing import Any

import click

from skiff import hookimpl, settings, timeline
from skiff.builders import BuilderInfo
from skiff.context import Context
from skiff.contracts import BackupPart
from skiff.deploy import Deploy
from skiff.settings import Namespace

from . import repo as repos


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl(trylast=True)
def skiff_builders() -> list[BuilderInfo]:
    """The ``image`` builder: it owns ``image`` sources (``git:load-image``, ``git:from-image``)."""
    from .images import BUILDER

    return [BuilderInfo(BUILDER, order=50, sources=("image",), description="a prebuilt image (git:*-image)")]


@hookimpl(trylast=True)
def skiff_build(deploy: Deploy) -> str | None:
    """Tag the app's own image from an ``image`` source (a one-line ``FROM <id>`` build)."""
    from .images import BUILDER, build

    if deploy.builder != BUILDER or deploy.source is None or deploy.source.kind != "image":
        return None
    from skiff import dockerclient

    return build(deploy, dockerclient.client(900))


@hookimpl(trylast=True)
def skiff_receive(deploy: Deploy) -> bool | None:
    """Check ``Source(kind="git", location=REPO, revision=SHA)`` out into the workdir.

    ``Source(kind="image", location=IMAGE_ID)`` has no tree: the workdir stays empty.
    """
    source = deploy.source
    if source is not None and source.kind == "image":
        return True
    if source is None or source.kind != "git":
        return None
    from pathlib import Path

    from .checkout import checkout

    assert deploy.workdir is not None
    ref = source.ref or ""
    branch = (
        ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else repos.deploy_branch(deploy.context, deploy.app)
    )
    revision = source.revision or ref or f"refs/heads/{branch}"
    keep = repos.keep_git_dir(deploy.context, deploy.app)
    sha = checkout(
        Path(source.location), revision, deploy.workdir, output=deploy.output, keep_git_dir=keep, branch=branch
    )
    deploy.revision = sha
    timeline.mark("git.checkout.done")
    deploy.config["GIT_REV"] = sha  # release env: kept for redeploys of this image, like Dokku's GIT_REV
    deploy.meta["git"] = {"ref": source.ref, "revision": sha}
    return True


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    shutil.rmtree(repos.repo_path(context, app), ignore_errors=True)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    old_repo, new_repo = repos.repo_path(context, old), repos.repo_path(context, new)
    if old_repo.is_dir():
        os.rename(old_repo, new_repo)
        repos.write_hook(context, new, new_repo)


@hookimpl
def skiff_upgrade(context: Context) -> list[str]:
    """Earlier versions left repositories world-readable and credentials in release descriptions."""
    changes = [f"made {path.name} private (0700)" for path in repos.make_repositories_private(context)]
    redacted = context.state.rewrite_release_descriptions(repos.redact_urls)
    if redacted:
        changes.append(f"removed URL credentials from {redacted} release description(s)")
    return changes


@hookimpl
def skiff_settings() -> list[Namespace]:
    return [repos.SETTINGS]


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    return {"git": settings.report_fields(context, repos.SETTINGS, app)}


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """Every app's repository (``SKIFF_ROOT/repos``), as it is: refs, objects, hooks."""
    return [BackupPart("git:repos", "the apps' git repositories", paths=(repos.repos_dir(context).name,))]
