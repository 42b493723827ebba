"""Bare repositories under ``SKIFF_ROOT/repos``, their hook, settings and git calls.

Every git call is an argument list (never a shell string). Names reach paths
only after :func:`skiff.validate.app_name`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Optional, Sequence

from skiff.validate import shown
from skiff import validate
from skiff.context import Context
from skiff.executable import skiff_executable
from skiff.errors import SkiffError, ValidationError

PLUGIN = "git"
ZERO = "0" * 40
HOOK_MARKER = "# Written by skiff (git plugin)"
# Variables git sets for a hook that must not leak into git calls on other repositories.
REPO_ENV = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "GIT_PUSH_OPTION_COUNT",
    "GIT_COMMON_DIR", "GIT_PREFIX", "GIT_NAMESPACE",
)
REF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/^~@{}-]{0,199}$")


# -- names and paths -------------------------------------------------------------


def app_from_path(arg: str) -> str:
    """The app named by a git-receive-pack/-upload-pack argument.

    Accepts ``APP``, ``/APP``, ``APP.git`` and ``/APP.git``; anything else
    (``../x``, ``a/b``, quotes, ``$(...)``) is refused before any path is built.
    """
    name = arg
    if name.startswith("/"):
        name = name[1:]
    if name.endswith(".git"):
        name = name[: -len(".git")]
    try:
        return validate.app_name(name)
    except ValidationError:
        raise ValidationError(f"invalid repository name {shown(arg)}: use 'APP' where APP is a valid app name")


def repos_dir(context: Context) -> Path:
    return context.path("repos")


def repo_path(context: Context, app: str) -> Path:
    return repos_dir(context) / f"{validate.app_name(app)}.git"


def branch_name(name: str) -> str:
    """Validate a branch name (for deploy-branch)."""
    if not REF_NAME.fullmatch(name or "") or ".." in name or name.endswith((".lock", "/", ".")) or "//" in name:
        raise ValidationError(f"invalid branch name {shown(name)}")
    return name


def revision_arg(rev: str) -> str:
    """Validate a revision given on the command line (a sha, branch or tag)."""
    if not REVISION.fullmatch(rev or "") or ".." in rev:
        raise ValidationError(f"invalid revision {shown(rev)}")
    return rev


# -- running git -------------------------------------------------------------------


def clean_env(extra: Optional[Mapping[str, str]] = None, keep_quarantine: bool = False) -> dict[str, str]:
    """The environment for a git call: hook variables removed unless ``keep_quarantine``."""
    env = dict(os.environ)
    drop = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX") if keep_quarantine else REPO_ENV
    for name in drop:
        env.pop(name, None)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.update(extra or {})
    return env


def git(
    args: Sequence[str],
    *,
    git_dir: Optional[Path] = None,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    input: Optional[bytes] = None,
    check: bool = True,
) -> str:
    """Run ``git ARGS``; return stdout (text); raise SkiffError with git's message."""
    cmd = ["git", "-c", "protocol.ext.allow=never"]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    cmd += list(args)
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env) if env is not None else clean_env(),
                          input=input, capture_output=True)
    if check and proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SkiffError(f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(proc.returncode)}")
    return proc.stdout.decode(errors="replace")


def resolve(repo: Path, rev: str, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The commit sha ``rev`` names in ``repo``, or ``None``."""
    out = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
              git_dir=repo, env=env, check=False)
    sha = out.strip()
    return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None


def branches(repo: Path) -> list[str]:
    out = git(["for-each-ref", "--format=%(refname)", "refs/heads/"], git_dir=repo)
    return [line[len("refs/heads/"):] for line in out.splitlines() if line]


# -- settings ------------------------------------------------------------------------


def _truthy(value: object) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"expected true or false, got {shown(value)}")


def auto_create(context: Context) -> bool:
    return _truthy(context.state.get_property(PLUGIN, "auto-create", default=True))


def keep_git_dir(context: Context, app: str) -> bool:
    value = context.state.get_property(PLUGIN, "keep-git-dir", app=app)
    if value is None:
        value = context.state.get_property(PLUGIN, "keep-git-dir", default=False)
    return _truthy(value)


def configured_branch(context: Context, app: str) -> Optional[str]:
    """The app's deploy branch, else the global one, else ``None`` (first push decides)."""
    return (context.state.get_property(PLUGIN, "deploy-branch", app=app)
            or context.state.get_property(PLUGIN, "deploy-branch") or None)


def deploy_branch(context: Context, app: str) -> str:
    """The deploy branch, falling back to the repository's HEAD, then ``main``."""
    branch = configured_branch(context, app)
    if branch:
        return branch
    repo = repo_path(context, app)
    try:
        target = (repo / "HEAD").read_text().strip()
    except OSError:
        return "main"
    return target[len("ref: refs/heads/"):] if target.startswith("ref: refs/heads/") else "main"


def set_head(repo: Path, branch: str) -> None:
    """Point the bare repository's HEAD at ``branch`` (clones check it out)."""
    tmp = repo / "HEAD.skiff-tmp"
    tmp.write_text(f"ref: refs/heads/{branch_name(branch)}\n")
    os.replace(tmp, repo / "HEAD")


# -- the repository --------------------------------------------------------------------


def hook_script(context: Context, app: str) -> str:
    root = shlex.quote(str(context.root.resolve()))
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}; rewritten on every push, do not edit.\n"
        f"SKIFF_ROOT={root}\n"
        "export SKIFF_ROOT\n"
        f"exec {shlex.quote(skiff_executable())} git-hook {shlex.quote(validate.app_name(app))}\n"
    )


def write_hook(context: Context, app: str, repo: Path) -> None:
    hooks = repo / "hooks"
    hooks.mkdir(exist_ok=True)
    path = hooks / "pre-receive"
    script = hook_script(context, app)
    try:
        if path.read_text() == script:
            return
    except OSError:
        pass
    tmp = hooks / ".pre-receive.tmp"
    tmp.write_text(script)
    tmp.chmod(0o755)
    os.replace(tmp, path)


def ensure_repo(context: Context, app: str) -> Path:
    """Create the app's bare repository if missing; (re)write its pre-receive hook."""
    repo = repo_path(context, app)
    if not (repo / "objects").is_dir():
        repos_dir(context).mkdir(parents=True, exist_ok=True)
        tmp = repos_dir(context) / f".{app}.git.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        git(["init", "--quiet", "--bare", f"--initial-branch={configured_branch(context, app) or 'main'}", str(tmp)])
        git(["config", "receive.denyNonFastForwards", "false"], git_dir=tmp)
        git(["config", "receive.denyDeletes", "false"], git_dir=tmp)
        git(["config", "gc.auto", "0"], git_dir=tmp)
        for sample in (tmp / "hooks").glob("*.sample"):
            sample.unlink()
        try:
            os.rename(tmp, repo)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
    write_hook(context, app, repo)
    return repo
