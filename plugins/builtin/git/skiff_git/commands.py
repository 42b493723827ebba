"""The git plugin's commands: git:*, deploy, and the hidden SSH/hook entry points."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from skiff import access, lifecycle, validate
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.deploy import Source
from skiff.errors import DeployError, NotFound, SkiffError, ValidationError

from . import push
from . import repo as repos

COMMITTER = {
    "GIT_AUTHOR_NAME": "skiff",
    "GIT_AUTHOR_EMAIL": "skiff@localhost",
    "GIT_COMMITTER_NAME": "skiff",
    "GIT_COMMITTER_EMAIL": "skiff@localhost",
}


# -- SSH and hook entry points (hidden) -------------------------------------------------


@access.app_command(app="path", creates=True, resolve=repos.app_from_path)
@click.command("git-receive-pack", hidden=True)
@click.argument("path")
@pass_context
def git_receive_pack(context: Context, path: str) -> int:
    """Receive a push (run by git over SSH)."""
    return push.receive_pack(context, path)


@access.app_command(app="path", resolve=repos.app_from_path)
@click.command("git-upload-pack", hidden=True)
@click.argument("path")
@pass_context
def git_upload_pack(context: Context, path: str) -> None:
    """Serve a fetch or ls-remote (run by git over SSH)."""
    push.upload_pack(context, path)


@local_only
@click.command("git-hook", hidden=True)
@click.argument("app")
@pass_context
def git_hook(context: Context, app: str) -> None:
    """The pre-receive hook: read 'old new ref' lines on stdin and deploy."""
    validate.app_name(app)
    push.run_hook(context, app, sys.stdin)


# -- helpers ---------------------------------------------------------------------------


@contextmanager
def push_lock(context: Context, app: str) -> Iterator[None]:
    fd = push.acquire_push_lock(context, app, context.output)
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def _app_for(context: Context, app: str) -> Iterator[None]:
    """Make sure ``app`` exists; if this call created it and the block fails, remove it again."""
    validate.app_name(app)
    if context.state.app_exists(app):
        yield
        return
    if not repos.auto_create(context):
        raise NotFound(f"app {app} does not exist; run apps:create {app} first")
    context.create_app(app)
    context.output.step(f"Created app {app}")
    try:
        yield
    except DeployError:
        raise  # the input was fine and the app stays, as after a failed first push
    except BaseException:
        if not context.state.releases(app):
            with lifecycle.app_lock(context, app):
                context.hook.skiff_app_destroyed(context=context, app=app)
                context.state.destroy_app(app)
            context.output.warn(f"removed {app} again: nothing could be deployed to it")
        raise


def _deploy_and_move(context: Context, app: str, sha: str, description: str) -> None:
    """Deploy ``sha`` from the app's repository, then point the deploy branch at it."""
    repo = repos.repo_path(context, app)
    branch = repos.deploy_branch(context, app)
    lifecycle.deploy(
        context, app, Source(kind="git", location=str(repo), revision=sha, ref=f"refs/heads/{branch}"), description
    )
    _move_branch(repo, branch, sha)


def _move_branch(repo: Path, branch: str, sha: str) -> None:
    repos.git(["update-ref", f"refs/heads/{branch}", sha], git_dir=repo)
    if not repos.resolve(repo, "HEAD"):
        repos.set_head(repo, branch)


def _tmp(context: Context) -> Path:
    path = context.path("tmp")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- git:sync / git:from-archive / deploy ------------------------------------------------


@access.admin_command
@click.command("git:sync")
@click.argument("app")
@click.argument("url")
@click.argument("ref", required=False)
@click.option("--build", is_flag=True, help="Deploy what was fetched (the branch moves only if it succeeds).")
@pass_context
def git_sync(context: Context, app: str, url: str, ref: str | None, build: bool) -> None:
    """Fetch REF (default: the remote's HEAD) of a git URL into APP's repository.

    Over SSH only http(s), ssh and git URLs are accepted (no local paths, no file://).
    """
    validate.app_name(app)
    check_sync_url(context, url)
    if ref is not None:
        repos.revision_arg(ref)
    shown_url = repos.redact(url)
    fetch_url, credentials = repos.credential_env(url)
    env = repos.clean_env(credentials)
    if context.via_ssh:
        env["GIT_ALLOW_PROTOCOL"] = ":".join(repos.REMOTE_PROTOCOLS)
    with _app_for(context, app), push_lock(context, app):
        repo = repos.ensure_repo(context, app)
        context.output.step(f"Fetching {ref or 'HEAD'} from {shown_url}")
        try:
            repos.git(["fetch", "--quiet", "--no-tags", "--", fetch_url, ref or "HEAD"], git_dir=repo, env=env)
        except SkiffError as exc:
            raise SkiffError(repos.redact_text(str(exc), url)) from exc
        sha = repos.resolve(repo, "FETCH_HEAD")
        if sha is None:
            raise SkiffError(f"{ref or 'HEAD'} of {shown_url} is not a commit")
        if build:
            _deploy_and_move(context, app, sha, f"Deploy {sha[:7]} from {shown_url}")
        else:
            _move_branch(repo, repos.deploy_branch(context, app), sha)
            context.output.step(f"{app} is at {sha[:7]}; deploy it with: deploy {app}")


def check_sync_url(context: Context, url: str) -> str:
    """Refuse option-like URLs, the ext/fd transports, and (over SSH) anything but remote ones."""
    if not url or url.startswith("-") or "\n" in url or "\x00" in url:
        raise ValidationError(f"invalid repository URL {repos.redact(url)!r}")
    kind = repos.transport(url)
    if kind in ("ext", "fd"):
        raise ValidationError(f"invalid repository URL {repos.redact(url)!r}: the {kind} transport is refused")
    if context.via_ssh and kind not in repos.REMOTE_PROTOCOLS:
        what = "a local path" if kind == "local" else f"the {kind} transport"
        raise ValidationError(
            f"git:sync from {what} is refused over SSH: give an http(s), ssh or git URL "
            "(root on the server may sync from local paths)"
        )
    return url


@access.app_command(app="app", creates=True)
@click.command("git:from-archive")
@click.argument("app")
@click.argument("source")
@pass_context
def git_from_archive(context: Context, app: str, source: str) -> None:
    """Deploy a tar or zip archive from an http(s) URL, or - for stdin."""
    from . import archive

    validate.app_name(app)
    archive.check_source(source)
    shown_source = "(stdin)" if source == "-" else repos.redact(source)
    limits = archive.Limits(
        max_size=repos.limit(context, "archive-max-size"), max_members=repos.limit(context, "archive-max-members")
    )
    with tempfile.TemporaryDirectory(prefix="archive-", dir=_tmp(context)) as tmp:
        saved, tree = Path(tmp) / "archive", Path(tmp) / "tree"
        context.output.step(f"Reading the archive from {'stdin' if source == '-' else shown_source}")
        archive.fetch(source, saved, limits.max_size)
        root = archive.extract(saved, tree, limits)
        with _app_for(context, app), push_lock(context, app):
            repo = repos.ensure_repo(context, app)
            branch = repos.deploy_branch(context, app)
            env = repos.clean_env({**COMMITTER, "GIT_INDEX_FILE": str(Path(tmp) / "index")})
            repos.git(["--work-tree", str(root), "add", "--all", "--force", "."], git_dir=repo, cwd=root, env=env)
            tree_sha = repos.git(["write-tree"], git_dir=repo, env=env).strip()
            parent = repos.resolve(repo, f"refs/heads/{branch}")
            message = f"Deploy from archive {shown_source}"
            sha = repos.git(
                ["commit-tree", tree_sha, *(["-p", parent] if parent else []), "-m", message], git_dir=repo, env=env
            ).strip()
            _deploy_and_move(context, app, sha, f"Deploy {sha[:7]} from an archive")


@access.app_command(app="app", creates=True)
@click.command("git:load-image")
@click.argument("app")
@click.argument("image", required=False)
@pass_context
def git_load_image(context: Context, app: str, image: str | None) -> None:
    """Deploy a docker save tarball from stdin: docker image save IMAGE | ssh skiff@HOST git:load-image APP [IMAGE].

    IMAGE picks one of the tarball's images by tag (needed when it holds several). The tarball's
    own tags are never loaded: the app runs its own skiff/APP:BUILD image, nothing else is retagged.
    """
    from skiff import dockerclient

    from . import images

    validate.app_name(app)
    if image is not None:
        validate.image_reference(image)
    limits = images.Limits(
        max_size=repos.limit(context, "image-max-size"), max_members=repos.limit(context, "archive-max-members")
    )
    with tempfile.TemporaryDirectory(prefix="image-", dir=_tmp(context)) as tmp:
        saved, clean = Path(tmp) / "saved.tar", Path(tmp) / "clean.tar"
        context.output.step("Reading the image tarball from stdin")
        images.read_stdin(saved, limits.max_size)
        rewritten = images.rewrite(saved, clean, limits)
        saved.unlink()
        entry = rewritten.choose(image)
        name = image or (entry.tags[0] if entry.tags else entry.image_id[:19])
        if rewritten.dropped_tags:
            context.output.info(f"the tarball's tags are not loaded ({', '.join(rewritten.dropped_tags)})")
        client = dockerclient.client(900)
        existed = dockerclient.has_image(client, entry.image_id)
        images.load(client, clean)
        if not dockerclient.has_image(client, entry.image_id):
            raise SkiffError(f"the engine did not load image {entry.image_id[:19]} from the tarball")
        context.output.step(f"Loaded {name} ({entry.image_id[:19]})")
        try:
            _deploy_image(context, app, entry.image_id, name, "load-image")
        except BaseException:
            if not existed:
                _forget_image(client, entry.image_id)
            raise


@access.app_command(app="app", creates=True)
@click.command("git:from-image")
@click.argument("app")
@click.argument("image")
@pass_context
def git_from_image(context: Context, app: str, image: str) -> None:
    """Deploy IMAGE (on this server, else pulled from its registry) to APP as its own skiff/APP:BUILD image."""
    from skiff import dockerclient

    from . import images

    validate.app_name(app)
    if not validate.IMAGE_ID.fullmatch(image):
        validate.image_reference(image)
    client = dockerclient.client(900)
    if not dockerclient.has_image(client, image):
        context.output.step(f"Pulling {image}")
        reason = dockerclient.pull(client, image)
        if reason is not None:
            raise SkiffError(
                f"image {json.dumps(image)} is not on this server and could not be pulled ({reason}): "
                f"load it with git:load-image {app}, or push it to a registry this server reaches"
            )
    found = client.images.get(image)
    owner = images.other_app(found.attrs, found.tags, app, context.state.app_exists)
    if owner is not None and not _may_use_app(context, owner):
        raise access.AccessDenied(f"image {image} belongs to app {owner}: deploy it with access to {owner}")
    _deploy_image(context, app, found.id, image, "from-image")


def _may_use_app(context: Context, app: str) -> bool:
    if not context.via_ssh:
        return True
    key = context.ssh_key_name
    return access.key_role(context, key) == "admin" or (key is not None and access.may_access(context, key, app))


def _deploy_image(context: Context, app: str, image_id: str, name: str, how: str) -> None:
    with _app_for(context, app), push_lock(context, app):
        lifecycle.deploy(
            context,
            app,
            Source(kind="image", location=image_id, extra={"name": name, "how": how}),
            f"Deploy image {name} (git:{how})",
        )


def _forget_image(client: Any, image_id: str) -> None:
    """Remove an untagged image this command loaded and nothing uses (never an image that was there)."""
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id, noprune=False)
    except Exception:  # noqa: S110 (best effort; it is an untagged image)
        pass


@access.app_command()
@click.command("deploy")
@click.argument("app")
@click.argument("rev", required=False)
@pass_context
def deploy(context: Context, app: str, rev: str | None) -> None:
    """Deploy again from APP's repository: the deploy branch, or REV (a sha, branch or tag).

    Without REV, an app whose current release came from git:load-image or git:from-image
    is deployed again from that image.
    """
    context.state.require_app(app)
    if rev is None:
        current = context.state.current_release(app)
        image_source = (current.meta or {}).get("image_source") if current is not None else None
        if isinstance(image_source, dict) and image_source.get("id"):
            name = str(image_source.get("image") or image_source["id"])
            source = Source(
                kind="image",
                location=str(image_source["id"]),
                extra={"name": name, "how": str(image_source.get("how") or "image")},
            )
            lifecycle.deploy(context, app, source, f"Deploy image {name} again")
            return
    repo = repos.repo_path(context, app)
    if not (repo / "objects").is_dir():
        raise NotFound(f"app {app} has no repository yet: push to it first")
    branch = repos.deploy_branch(context, app)
    wanted = repos.revision_arg(rev) if rev else f"refs/heads/{branch}"
    sha = repos.resolve(repo, wanted)
    if sha is None:
        raise NotFound(f"{rev or branch} is not in the repository of {app}")
    lifecycle.deploy(
        context,
        app,
        Source(kind="git", location=str(repo), revision=sha, ref=f"refs/heads/{branch}"),
        f"Deploy {sha[:7]}" + (f" ({rev})" if rev else ""),
    )


COMMANDS: list[click.Command] = [
    git_receive_pack,
    git_upload_pack,
    git_hook,
    git_sync,
    git_from_archive,
    git_load_image,
    git_from_image,
    deploy,
]
