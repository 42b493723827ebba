"""The SSH side of a push: ``git-receive-pack``/``git-upload-pack`` and the pre-receive hook.

``skiff ssh-command`` dispatches ``git-receive-pack 'APP'`` here. The app
name is validated first; then the app and its repository are created if
needed, a per-app push lock is taken, and ``git receive-pack`` replaces this
process (argument list, no shell). The lock's file descriptor is inherited
by git, so a second push of the same app waits until the first one has
finished, hook and ref update included; pushes of other apps do not wait.

While git speaks its protocol on stdout, everything Skiff prints here goes
to stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from skiff import lifecycle, timeline
from skiff.context import Context
from skiff.deploy import Source
from skiff.errors import LockTimeout, NotFound, SkiffError
from skiff.locks import lock_path
from skiff.output import Output

from . import repo as repos
from .repo import ZERO

LOCK_FD_ENV = "SKIFF_GIT_PUSH_LOCK_FD"
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # as ssh-keys writes them


def acquire_push_lock(context: Context, app: str, output: Output, inheritable: bool = True) -> int:
    """Take the app's push lock; return its file descriptor (inheritable unless told otherwise)."""
    path = lock_path(context.root, f"git-push-{app}")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        output.step(f"Waiting for another push of {app} to finish")
        deadline = time.monotonic() + lifecycle.lock_timeout()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LockTimeout(f"timed out waiting for another push of {app}") from None
                time.sleep(0.05)
    os.set_inheritable(fd, inheritable)
    return fd


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr for a while: stdout belongs to git's protocol.

    Done at the descriptor level so that output of subprocesses started by
    ``skiff_app_created`` implementations cannot corrupt the protocol either.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _create_app(context: Context, app: str) -> None:
    try:
        context.create_app(app)
    except SkiffError:
        if not context.state.app_exists(app):
            raise
        return  # a concurrent first push created it
    context.output.step(f"Created app {app}")


def receive_pack(context: Context, path_arg: str) -> int:
    """Validate, create what is missing, lock, then run ``git receive-pack``; return its status.

    With ``hook-in-process`` on (the default) git runs as a child and this process
    runs the pre-receive hook's deploy (:mod:`skiff_git.receiver`); off, git replaces
    this process and the hook starts ``skiff git-hook``.
    """
    app = repos.app_from_path(path_arg)
    context.output = Output(stream=sys.stderr)
    in_process = repos.hook_in_process(context)
    with _stdout_to_stderr():
        if not context.state.app_exists(app):
            if not repos.auto_create(context):
                raise NotFound(f"app {app} does not exist and auto-create is off; run apps:create {app} first")
        fd = acquire_push_lock(context, app, context.output, inheritable=not in_process)
        if not context.state.app_exists(app):
            _create_app(context, app)
        repo = repos.ensure_repo(context, app)
    argv = receive_pack_argv(repo, repos.limit(context, "max-push-size"))
    if in_process:
        from . import receiver

        timeline.mark("git.receive-pack.start")
        try:  # the lock is this process's (not inherited): held until git has updated the refs
            return receiver.serve(context, app, repo, argv, repos.clean_env())
        finally:
            os.close(fd)
    context.close()
    timeline.mark("git.receive-pack.exec")
    # The lock fd stays open (inheritable): git receive-pack holds the lock until it exits.
    os.execvpe("git", argv, repos.clean_env({LOCK_FD_ENV: str(fd)}))


def receive_pack_argv(repo: Path, max_size: int) -> list[str]:
    """``git receive-pack`` of ``repo``, refusing a pack larger than ``max_size`` bytes."""
    return ["git", "-c", f"receive.maxInputSize={int(max_size)}", "receive-pack", str(repo)]


def upload_pack(context: Context, path_arg: str) -> None:
    """Validate, then exec ``git upload-pack`` on an existing app's repository."""
    app = repos.app_from_path(path_arg)
    context.output = Output(stream=sys.stderr)
    context.state.require_app(app)
    repo = repos.repo_path(context, app)
    if not (repo / "objects").is_dir():
        raise NotFound(f"app {app} has no repository yet: push to it first")
    context.close()
    sys.stdout.flush()
    os.execvpe("git", ["git", "upload-pack", str(repo)], repos.clean_env())


# -- the pre-receive hook -----------------------------------------------------------


def parse_updates(lines: Iterable[str]) -> list[tuple[str, str, str]]:
    updates = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise SkiffError(f"unexpected line from git: {line.strip()!r}")
        updates.append((parts[0], parts[1], parts[2]))
    return updates


def _choose_branch(context: Context, app: str, updates: list[tuple[str, str, str]]) -> str:
    """The deploy branch; on the first push the branch pushed (main/master preferred) is stored."""
    configured = repos.configured_branch(context, app)
    repo = repos.repo_path(context, app)
    if configured:
        return configured
    if repos.branches(repo):
        return repos.deploy_branch(context, app)
    pushed = [ref[len("refs/heads/") :] for _, new, ref in updates if ref.startswith("refs/heads/") and new != ZERO]
    if not pushed:
        return repos.deploy_branch(context, app)
    branch = next((b for b in ("main", "master") if b in pushed), pushed[0])
    repos.branch_name(branch)
    context.state.set_property(repos.PLUGIN, "deploy-branch", branch, app=app)
    repos.set_head(repo, branch)
    context.output.step(f"Deploy branch of {app} is {branch} (change it with git:set {app} deploy-branch NAME)")
    return branch


def close_inherited_lock(app: str) -> None:
    """Close the hook's copy of the push lock fd (receive-pack keeps holding the lock).

    So that nothing the deploy starts (a daemon, say) can keep the lock alive.
    """
    value = os.environ.pop(LOCK_FD_ENV, "")
    if not value.isdigit() or int(value) <= 2:
        return
    with contextlib.suppress(OSError):
        if os.readlink(f"/proc/self/fd/{value}").endswith(f"/git-push-{app}.lock"):
            os.close(int(value))


def run_hook(context: Context, app: str, lines: Iterable[str]) -> None:
    """Check every pushed ref, then deploy the new tip of the deploy branch."""
    close_inherited_lock(app)
    context.state.require_app(app)
    repo = repos.repo_path(context, app)
    updates = parse_updates(lines)
    timeline.mark("git.hook.updates-read")
    branch = _choose_branch(context, app, updates)
    target: tuple[str, str] | None = None
    for _old, new, ref in updates:
        if ref == f"refs/heads/{branch}":
            if new == ZERO:
                raise SkiffError(f"refusing to delete {branch}, the deploy branch of {app}")
            target = (new, ref)
        elif ref.startswith("refs/tags/"):
            continue
        else:
            short = ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else ref
            raise SkiffError(
                f"pushes to {short} are refused: the deploy branch of {app} is {branch} "
                f"(git push REMOTE {short}:{branch}, or git:set {app} deploy-branch {short})"
            )
    if target is None:
        return
    new, ref = target
    who = os.environ.get("SKIFF_KEY_NAME", "")
    by = f" by {who}" if KEY_NAME.fullmatch(who) else ""
    context.output.step(f"Received {app} {new[:7]} ({ref[len('refs/heads/') :]}){by}")
    lifecycle.deploy(
        context,
        app,
        Source(kind="git", location=str(repo), revision=new, ref=ref),
        f"Deploy {new[:7]}{by}",
        build_kind="push",
    )
