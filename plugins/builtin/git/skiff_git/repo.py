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
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from skiff import validate
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError
from skiff.executable import skiff_executable
from skiff.settings import Namespace, Setting
from skiff.validate import shown

from . import PLUGIN

ZERO = "0" * 40
HOOK_MARKER = "# Written by skiff (git plugin)"
# Variables git sets for a hook that must not leak into git calls on other repositories.
REPO_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
    "GIT_PUSH_OPTION_COUNT",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
)
#: Transports a submodule URL may use (git's own names; GIT_ALLOW_PROTOCOL syntax).
SUBMODULE_PROTOCOLS = ("https", "ssh", "git")
#: What ``git:sync`` may fetch from when the command came over SSH.
REMOTE_PROTOCOLS = ("http", "https", "ssh", "git")
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://.*", re.DOTALL)
HELPER = re.compile(r"([A-Za-z0-9][A-Za-z0-9+.-]*)::.*", re.DOTALL)
SSH_ALIASES = {"git+ssh": "ssh", "ssh+git": "ssh"}
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
        raise ValidationError(
            f"invalid repository name {shown(arg)}: use 'APP' where APP is a valid app name"
        ) from None


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


# -- URLs ------------------------------------------------------------------------------


def transport(url: str) -> str:
    """The transport git would use for ``url``, as git names it.

    ``https``, ``ssh``, ``git``, ``file``, ... for ``SCHEME://`` URLs, the helper
    name for ``HELPER::ADDRESS`` (``ext``, ``fd``, ...), ``ssh`` for scp-like
    ``[user@]host:path`` and ``local`` for a path on this host.
    """
    match = SCHEME.fullmatch(url)
    if match:
        scheme = match.group(1).lower()
        return SSH_ALIASES.get(scheme, scheme)
    match = HELPER.fullmatch(url)
    if match:
        return match.group(1).lower()
    # git's rule: a colon before any slash makes it scp-like ssh (host:path)
    colon, slash = url.find(":"), url.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return "ssh"
    return "local"


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)`` for ``SCHEME://`` URLs with userinfo."""
    if not SCHEME.fullmatch(url):
        return url, None, None
    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return bare, urllib.parse.unquote(user), (urllib.parse.unquote(password) if colon else None)


def redact(url: str) -> str:
    """``url`` fit to print and store: ``https://user:token@host/x`` -> ``https://***@host/x``.

    For ssh URLs the user name stays (it is not a secret), a password does not.
    """
    bare, user, password = _split_credentials(url)
    if user is None:
        return url
    scheme, _, rest = bare.partition("://")
    if transport(url) == "ssh" and password is None:
        return url
    shown_user = f"{user}:***" if transport(url) == "ssh" else "***"
    return f"{scheme}://{urllib.parse.quote(shown_user, safe=':*')}@{rest}"


URL_WITH_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@]+@[^\s]*")


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it redacted (see :func:`redact`)."""
    return URL_WITH_USERINFO.sub(lambda m: redact(m.group(0)), text)


def make_repositories_private(context: Context) -> list[Path]:
    """``repos/`` and every ``APP.git`` 0700 (earlier versions made them world-readable)."""
    base = repos_dir(context)
    if not base.is_dir():
        return []
    changed = []
    for path in (base, *sorted(p for p in base.iterdir() if p.is_dir())):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
            changed.append(path)
    return changed


def redact_text(text: str, url: str) -> str:
    """``text`` with the credentials of ``url`` (if any) replaced by ``***``."""
    _, user, password = _split_credentials(url)
    for secret in (password, user if transport(url) != "ssh" else None):
        if secret:
            text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
    return text


def credential_env(url: str) -> tuple[str, dict[str, str]]:
    """Split the credentials off an http(s) ``url`` for a git call.

    Returns the URL to put on git's command line (no userinfo) and the
    environment that hands the credentials to git through a credential helper
    configured with ``GIT_CONFIG_COUNT`` (environment only, never argv).
    Other URLs are returned unchanged, with an empty environment.
    """
    bare, user, password = _split_credentials(url)
    if user is None:
        return url, {}
    if transport(url) == "ssh":  # ssh takes no password from a URL: keep only the user name
        scheme, _, rest = bare.partition("://")
        return f"{scheme}://{urllib.parse.quote(user, safe='')}@{rest}", {}
    if transport(url) not in ("http", "https"):
        return url, {}
    parts = urllib.parse.urlsplit(bare)
    helper = (
        '!f() { test "$1" = get || return 0; '
        'printf "username=%s\\npassword=%s\\n" "$SKIFF_GIT_USERNAME" "$SKIFF_GIT_PASSWORD"; }; f'
    )
    env = {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": f"credential.{parts.scheme}://{parts.netloc}.helper",
        "GIT_CONFIG_VALUE_1": helper,
        "SKIFF_GIT_USERNAME": user,
        "SKIFF_GIT_PASSWORD": password or "",
    }
    return bare, env


# -- running git -------------------------------------------------------------------


def clean_env(extra: Mapping[str, str] | None = None, keep_quarantine: bool = False) -> dict[str, str]:
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
    git_dir: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> str:
    """Run ``git ARGS``; return stdout (text); raise SkiffError with git's message."""
    cmd = ["git", "-c", "protocol.ext.allow=never"]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    cmd += list(args)
    # calls on a bare repository alone write only into it (FETCH_HEAD, ...): owner only
    private = git_dir is not None and "--work-tree" not in args
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        input=input,
        capture_output=True,
        umask=0o077 if private else -1,
    )
    if check and proc.returncode != 0:
        raise SkiffError(f"git {_subcommand(args)} failed: {error_line(proc.stderr, proc.returncode)}")
    return proc.stdout.decode(errors="replace")


def _subcommand(args: Sequence[str]) -> str:
    """The git subcommand in ``args`` (after ``--work-tree DIR`` / ``-c KEY=VALUE``)."""
    rest = list(args)
    while len(rest) > 1 and rest[0] in ("--work-tree", "-c", "-C"):
        rest = rest[2:]
    return rest[0] if rest else "?"


def error_line(stderr: bytes, returncode: int) -> str:
    """git's own reason: its first ``fatal:``/``error:`` line, else its last line."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return lines[-1] if lines else f"exit {returncode}"


def resolve(repo: Path, rev: str, env: Mapping[str, str] | None = None) -> str | None:
    """The commit sha ``rev`` names in ``repo``, or ``None``."""
    out = git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        git_dir=repo,
        env=env,
        check=False,
    )
    sha = out.strip()
    return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None


def branches(repo: Path) -> list[str]:
    out = git(["for-each-ref", "--format=%(refname)", "refs/heads/"], git_dir=repo)
    return [line[len("refs/heads/") :] for line in out.splitlines() if line]


# -- settings ------------------------------------------------------------------------


SIZE = re.compile(r"([0-9]{1,15})([KMGT]?)(i?B)?", re.IGNORECASE)
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: str) -> int:
    """``1G``, ``500M``, ``64k``, ``1048576`` (bytes; 1024-based units) -> bytes, at least 1."""
    match = SIZE.fullmatch(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ValidationError(f"invalid size {shown(value)}: use a number of bytes or e.g. 500M, 1G")
    return int(match.group(1)) * UNITS[match.group(2).upper()]


def parse_count(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value.strip()) or int(value) == 0:
        raise ValidationError(f"invalid count {shown(value)}: use a positive whole number")
    return int(value)


def _apply(context: Context, scope: str, setting: Setting, store: Callable[[], None]) -> None:
    """Store the change; a new deploy branch of an app also becomes its repository's HEAD."""
    store()
    if setting.name == "deploy-branch" and scope and (repo_path(context, scope) / "objects").is_dir():
        branch = SETTINGS.stored(context.state, "deploy-branch", app=scope)
        if branch:
            set_head(repo_path(context, scope), branch)


def _report(context: Context, app: str | None) -> dict[str, Any]:
    if not app:
        return {}
    repo = repo_path(context, app)
    exists = (repo / "objects").is_dir()
    branch = deploy_branch(context, app)
    return {
        "deploy_branch": branch,
        "deploy_branch_set": configured_branch(context, app) is not None,
        "repository": str(repo) if exists else None,
        "last_pushed": (resolve(repo, f"refs/heads/{branch}") if exists else None),
    }


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting("deploy-branch", type=branch_name, default="", scope="both", help="the branch a push deploys"),
        Setting("keep-git-dir", type=bool, default=False, scope="both", help="keep .git in the build's source"),
        Setting("auto-create", type=bool, default=True, scope="global", help="a push to a new app creates it"),
        Setting("archive-max-size", type=parse_size, default=UNITS["G"], scope="global", help="git:from-archive"),
        Setting("archive-max-members", type=parse_count, default=100_000, scope="global", help="git:from-archive"),
        Setting("max-push-size", type=parse_size, default=UNITS["G"], scope="global", help="largest push"),
        Setting("image-max-size", type=parse_size, default=4 * UNITS["G"], scope="global", help="git:load-image"),
        Setting(
            "hook-in-process",
            type=bool,
            default=True,
            scope="global",
            help="the push's ssh-command runs the deploy (off: the hook starts skiff again)",
        ),
    ),
    apply=_apply,
    report=_report,
)
LIMITS = ("archive-max-size", "archive-max-members", "max-push-size", "image-max-size")


def limit(context: Context, key: str) -> int:
    """A global limit (``git:set --global KEY VALUE``): a size in bytes or a count."""
    return int(SETTINGS.get(context.state, key))


def auto_create(context: Context) -> bool:
    return bool(SETTINGS.get(context.state, "auto-create"))


def hook_in_process(context: Context) -> bool:
    """A push over SSH runs its deploy in the ``ssh-command`` process (:mod:`skiff_git.receiver`)."""
    return bool(SETTINGS.get(context.state, "hook-in-process"))


def keep_git_dir(context: Context, app: str) -> bool:
    return bool(SETTINGS.get(context.state, "keep-git-dir", app=app))


def configured_branch(context: Context, app: str) -> str | None:
    """The app's deploy branch, else the global one, else ``None`` (first push decides)."""
    return SETTINGS.get(context.state, "deploy-branch", app=app) or None


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
    return target[len("ref: refs/heads/") :] if target.startswith("ref: refs/heads/") else "main"


def set_head(repo: Path, branch: str) -> None:
    """Point the bare repository's HEAD at ``branch`` (clones check it out)."""
    tmp = repo / "HEAD.skiff-tmp"
    tmp.write_text(f"ref: refs/heads/{branch_name(branch)}\n")
    os.replace(tmp, repo / "HEAD")


# -- the repository --------------------------------------------------------------------


#: The hook's side of :mod:`skiff_git.receiver` (static text: no name, path or input in it).
HOOK_IN_PROCESS = """\
if [ -n "${SKIFF_GIT_HOOK_DIR-}" ]; then
    # The push's own skiff ssh-command runs the deploy (docs/git.md, "One Python start per push").
    # Each FIFO is opened read-write first so that no open blocks if that process is gone.
    dir=$SKIFF_GIT_HOOK_DIR
    exec 3<>"$dir/output" 4<"$dir/output" 3<&- 5<>"$dir/request" 6>"$dir/request" 5<&-
    { printf '%s\\n' "${GIT_QUARANTINE_PATH-}" && cat && echo end; } >&6
    exec 6>&-
    cat <&4
    read -r status <"$dir/status" 2>/dev/null || status=1
    case $status in ''|*[!0-9]*) status=1 ;; esac
    exit "$status"
fi
"""


def hook_script(context: Context, app: str) -> str:
    """The pre-receive hook: :data:`HOOK_IN_PROCESS`, else start ``skiff git-hook APP``."""
    root = shlex.quote(str(context.root.resolve()))
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}; rewritten on every push, do not edit.\n"
        f"{HOOK_IN_PROCESS}"
        f"SKIFF_ROOT={root}\n"
        "export SKIFF_ROOT\n"
        f"exec {shlex.quote(skiff_executable())} git-hook {shlex.quote(validate.app_name(app))}\n"
    )


def write_hook(context: Context, app: str, repo: Path) -> None:
    hooks = repo / "hooks"
    hooks.mkdir(mode=0o700, exist_ok=True)
    path = hooks / "pre-receive"
    script = hook_script(context, app)
    try:
        if path.read_text() == script:
            return
    except OSError:
        pass
    tmp = hooks / ".pre-receive.tmp"
    tmp.write_text(script)
    tmp.chmod(0o700)
    os.replace(tmp, path)


def make_private(path: Path) -> None:
    """Make a directory readable by its owner (the skiff user) only."""
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)


def ensure_repo(context: Context, app: str) -> Path:
    """Create the app's bare repository if missing; (re)write its pre-receive hook."""
    repo = repo_path(context, app)
    repos_dir(context).mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(repos_dir(context))
    if not (repo / "objects").is_dir():
        tmp = repos_dir(context) / f".{app}.git.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # --shared=0600 (core.sharedRepository): files 0600, objects 0400, directories 0700, whatever
        # the umask of this or a later git call
        git(
            [
                "init",
                "--quiet",
                "--bare",
                "--shared=0600",
                f"--initial-branch={configured_branch(context, app) or 'main'}",
                str(tmp),
            ]
        )
        make_private(tmp)
        git(["config", "receive.denyNonFastForwards", "false"], git_dir=tmp)
        git(["config", "receive.denyDeletes", "false"], git_dir=tmp)
        git(["config", "gc.auto", "0"], git_dir=tmp)
        for sample in (tmp / "hooks").glob("*.sample"):
            sample.unlink()
        try:
            os.rename(tmp, repo)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
    make_private(repo)
    write_hook(context, app, repo)
    return repo
