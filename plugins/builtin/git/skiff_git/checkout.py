"""Check a revision of a bare repository out into a deploy's workdir.

Inside a pre-receive hook the pushed objects are still in git's quarantine
(``GIT_OBJECT_DIRECTORY``, ``GIT_ALTERNATE_OBJECT_DIRECTORIES``), so reads of
the app repository keep those variables, while git calls on any *other*
repository (submodule clones, the kept ``.git``) get a clean environment.
The checkout uses a temporary index (``read-tree`` + ``checkout-index``): the
bare repository is never modified.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from skiff.errors import SkiffError
from skiff.output import Output

from .repo import SUBMODULE_PROTOCOLS, clean_env, git, redact, redact_text, resolve, transport

#: git's own guard, for nested submodules too (GIT_ALLOW_PROTOCOL is set as well).
PROTOCOL_ARGS = (
    "-c",
    "protocol.allow=never",
    *(arg for name in SUBMODULE_PROTOCOLS for arg in ("-c", f"protocol.{name}.allow=always")),
)


def check_submodule_url(path: str, url: str) -> None:
    """Only https, ssh and git transports: no file://, local paths, ext:: or other helpers."""
    kind = transport(url)
    if kind not in SUBMODULE_PROTOCOLS:
        what = "a local path" if kind == "local" else f"the {kind} transport"
        raise SkiffError(
            f"submodule {path} uses {what} ({redact(url)}), which is refused: "
            f"use an {', '.join(SUBMODULE_PROTOCOLS[:-1])} or {SUBMODULE_PROTOCOLS[-1]} URL"
        )


def checkout(
    repo: Path,
    revision: str,
    workdir: Path,
    *,
    output: Output,
    keep_git_dir: bool = False,
    branch: str = "main",
) -> str:
    """Write the tree of ``revision`` (and its submodules) into ``workdir``; return the sha."""
    repo_env = clean_env(keep_quarantine=True)
    sha = resolve(repo, revision, env=repo_env)
    if sha is None:
        raise SkiffError(f"revision {revision} is not in the repository")
    with tempfile.TemporaryDirectory(prefix="skiff-index-") as tmp:
        env = {**repo_env, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(["--work-tree", str(workdir), "read-tree", sha], git_dir=repo, env=env)
        git(["--work-tree", str(workdir), "checkout-index", "--all", "--force"], git_dir=repo, env=env)
    if keep_git_dir:
        _make_git_dir(repo, sha, workdir, branch, repo_env)
    if (workdir / ".gitmodules").is_file():
        _submodules(repo, sha, workdir, output, keep_git_dir, repo_env)
    return sha


def _make_git_dir(repo: Path, sha: str, workdir: Path, branch: str, repo_env: dict[str, str]) -> None:
    """Give ``workdir`` a ``.git`` holding ``sha``'s history, on ``branch``."""
    env = clean_env()
    git(["init", "--quiet", str(workdir)], env=env)
    pack = subprocess.Popen(
        ["git", f"--git-dir={repo}", "pack-objects", "--revs", "--stdout", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=repo_env,
    )
    index = subprocess.Popen(
        ["git", "index-pack", "--stdin"],
        cwd=workdir,
        stdin=pack.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert pack.stdin is not None and pack.stdout is not None
    pack.stdin.write(f"{sha}\n".encode())
    pack.stdin.close()
    pack.stdout.close()
    _, index_err = index.communicate()
    pack_err = pack.stderr.read() if pack.stderr else b""
    if pack.wait() != 0 or index.returncode != 0:
        raise SkiffError(
            f"cannot copy the history into .git: {(pack_err or index_err).decode(errors='replace').strip()}"
        )
    git(["update-ref", f"refs/heads/{branch}", sha], cwd=workdir, env=env)
    git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=workdir, env=env)
    git(["reset", "--quiet"], cwd=workdir, env=env)


def _submodules(
    repo: Path, sha: str, workdir: Path, output: Output, keep_git_dir: bool, repo_env: dict[str, str]
) -> None:
    env = clean_env()
    modules = workdir / ".gitmodules"
    out = git(["config", "--file", str(modules), "--get-regexp", r"^submodule\..*\.path$"], env=env, check=False)
    for line in out.splitlines():
        key, _, path = line.partition(" ")
        name = key[len("submodule.") : -len(".path")]
        url = git(["config", "--file", str(modules), "--get", f"submodule.{name}.url"], env=env, check=False).strip()
        target = (workdir / path).resolve()
        if not path or path.startswith("/") or workdir.resolve() not in target.parents:
            raise SkiffError(f"submodule {name!r} has a path outside the tree: {path!r}")
        entry = git(["ls-tree", sha, "--", path], git_dir=repo, env=repo_env).split()
        if len(entry) < 3 or entry[1] != "commit":
            output.warn(f"submodule {path} is in .gitmodules but not in the tree; skipped")
            continue
        commit = entry[2]
        if not url or url.startswith("-"):
            raise SkiffError(f"submodule {path} has no usable url")
        if url.startswith(("./", "../")):
            raise SkiffError(f"submodule {path} has a relative url ({redact(url)}); use an absolute one")
        check_submodule_url(path, url)
        output.step(f"Fetching submodule {path} ({commit[:7]})")
        target.mkdir(parents=True, exist_ok=True)
        clone_env = {**env, "GIT_ALLOW_PROTOCOL": ":".join(SUBMODULE_PROTOCOLS)}
        try:
            git([*PROTOCOL_ARGS, "clone", "--quiet", "--no-checkout", "--", url, str(target)], env=clone_env)
            git(["checkout", "--quiet", "--detach", commit], cwd=target, env=clone_env)
            git([*PROTOCOL_ARGS, "submodule", "update", "--init", "--recursive", "--quiet"], cwd=target, env=clone_env)
        except SkiffError as exc:
            raise SkiffError(f"submodule {path}: {redact_text(str(exc), url)}") from exc
        if not keep_git_dir:
            _remove_git_dirs(target)


def _remove_git_dirs(tree: Path) -> None:
    for path in sorted(tree.rglob(".git"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
