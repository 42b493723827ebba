"""End to end: real sshd, real ssh and git, the real skiff process; stub builder and scheduler."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skiff.state import State
from skiff.testing.sshd import commit_files, git_push, head, init_repo
from skiff.testing.stubs import read_calls

pytestmark = pytest.mark.e2e

PHASES = ["skiff_receive", "skiff_pre_build", "skiff_build", "skiff_release", "skiff_deploy", "skiff_post_deploy"]


def releases(root: Path, app: str):
    state = State(root)
    try:
        return [(r.version, r.status, r.revision) for r in state.releases(app)]
    finally:
        state.close()


def hooks_of(root: Path, revision: str) -> list[str]:
    return [c["hook"] for c in read_calls(root) if c["revision"] == revision]


def ls_remote(sshd, app: str) -> dict[str, str]:
    result = sshd.git("ls-remote", sshd.remote(app))
    assert result.exit_code == 0, result.output
    return {ref: sha for sha, ref in (line.split("\t") for line in result.stdout.splitlines())}


def test_push_deploys_then_redeploys_and_a_failed_build_is_rejected(sshd, tmp_path, skiff_root):
    repo = init_repo(tmp_path / "app", {"app.py": "print('v1')\n", "lib/util.py": "X = 1\n"})
    first = head(repo)

    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code == 0, result.output
    assert "remote: -----> Releasing catmeow v1" in result.output
    assert hooks_of(skiff_root, first) == PHASES
    build = next(c for c in read_calls(skiff_root) if c["hook"] == "skiff_build")
    assert build["files"] == ["app.py", "lib/util.py"]
    assert releases(skiff_root, "catmeow") == [(1, "succeeded", first)]
    state = State(skiff_root)
    assert state.releases("catmeow")[0].description == f"Deploy {first[:7]} by test"  # the key's name
    state.close()
    assert (skiff_root / "repos" / "catmeow.git" / "hooks" / "pre-receive").exists()

    second = commit_files(repo, {"app.py": "print('v2')\n", "lib/util.py": None, "new.txt": "n\n"})
    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code == 0, result.output
    assert hooks_of(skiff_root, second) == PHASES
    assert [c["files"] for c in read_calls(skiff_root) if c["hook"] == "skiff_build"][-1] == ["app.py", "new.txt"]

    commit_files(repo, {"FAIL_BUILD": "yes\n"})
    result = git_push(repo, "catmeow", sshd)
    assert result.exit_code != 0
    assert "build failed" in result.output and "pre-receive hook declined" in result.output
    assert ls_remote(sshd, "catmeow")["refs/heads/main"] == second
    assert releases(skiff_root, "catmeow") == [(1, "succeeded", first), (2, "succeeded", second)]
    assert hooks_of(skiff_root, head(repo))[-1] == "skiff_deploy_failed"


def test_force_push_other_branches_and_url_forms(sshd, tmp_path, skiff_root):
    repo = init_repo(tmp_path / "app", {"a.txt": "a\n"}, branch="master")
    # ssh://host:port/APP.git makes git send git-receive-pack '/APP.git'
    result = git_push(repo, "shop", sshd, refspec="master", url=sshd.url("shop.git"))
    assert result.exit_code == 0, result.output
    assert "Deploy branch of shop is master" in result.output

    result = git_push(repo, "shop", sshd, refspec="HEAD:feature")
    assert result.exit_code != 0
    assert "pushes to feature are refused: the deploy branch of shop is master" in result.output
    assert "refs/heads/feature" not in ls_remote(sshd, "shop")

    other = init_repo(tmp_path / "rewritten", {"b.txt": "b\n"})  # unrelated history
    assert git_push(other, "shop", sshd, refspec="HEAD:master").exit_code != 0  # not a fast-forward
    result = git_push(other, "shop", sshd, refspec="HEAD:master", force=True)
    assert result.exit_code == 0, result.output
    assert ls_remote(sshd, "shop")["refs/heads/master"] == head(other)
    assert [r[2] for r in releases(skiff_root, "shop")] == [head(repo), head(other)]

    # a fetch over SSH sees what was deployed, and redeploying it works
    clone = sshd.git("clone", "--quiet", sshd.remote("shop"), str(tmp_path / "clone"))
    assert clone.exit_code == 0, clone.output
    assert (tmp_path / "clone" / "b.txt").exists()
    result = sshd.ssh("deploy shop")
    assert result.exit_code == 0, result.output
    assert releases(skiff_root, "shop")[-1] == (3, "succeeded", head(other))


def test_output_streams_live_to_the_pusher(sshd, tmp_path, skiff_root):
    """The build waits until the test has *seen* its line; buffered output would hang it."""
    opened = tmp_path / "open"
    repo = init_repo(tmp_path / "app", {"GATE": json.dumps({"wait": str(opened)})})
    proc = subprocess.Popen(
        ["git", "push", sshd.remote("live"), "HEAD:main"],
        cwd=repo,
        env=sshd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "gate: waiting" in line:
            opened.touch()
    assert proc.wait(60) == 0, "".join(seen)
    assert any("gate: open" in line for line in seen)


def _gate(announce: Path, wait: Path) -> str:
    return json.dumps({"announce": str(announce), "wait": str(wait)})


def _push_in_thread(repo, app, sshd, results, key, **kwargs):
    def run():
        results[key] = git_push(repo, app, sshd, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_pushes_of_one_app_run_one_after_the_other(sshd, tmp_path, skiff_root):
    building, release_first = tmp_path / "first-building", tmp_path / "release-first"
    repo = init_repo(tmp_path / "one", {"GATE": _gate(building, release_first)})
    first = head(repo)
    shutil.copytree(repo, tmp_path / "two")
    second = commit_files(tmp_path / "two", {"GATE": None, "two.txt": "2\n"})

    results: dict = {}
    t1 = _push_in_thread(repo, "same", sshd, results, 1)
    _wait_for(building, t1)
    proc = subprocess.Popen(
        ["git", "push", sshd.remote("same"), "HEAD:main"],
        cwd=tmp_path / "two",
        env=sshd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Waiting for another push of same" in line:
            release_first.touch()  # only now may the first push finish
    assert proc.wait(60) == 0, "".join(seen)
    t1.join(60)
    assert results[1].exit_code == 0, results[1].output
    assert releases(skiff_root, "same") == [(1, "succeeded", first), (2, "succeeded", second)]
    order = [(c["hook"], c["revision"]) for c in read_calls(skiff_root)]
    assert order == [(h, first) for h in PHASES] + [(h, second) for h in PHASES]


def test_pushes_of_two_apps_overlap(sshd, tmp_path, skiff_root):
    """Each build waits for the other one to have started: only overlapping pushes can pass."""
    a_started, b_started = tmp_path / "a-started", tmp_path / "b-started"
    repo_a = init_repo(tmp_path / "a", {"GATE": _gate(a_started, b_started)})
    repo_b = init_repo(tmp_path / "b", {"GATE": _gate(b_started, a_started)})
    results: dict = {}
    threads = [
        _push_in_thread(repo_a, "app-a", sshd, results, "a"),
        _push_in_thread(repo_b, "app-b", sshd, results, "b"),
    ]
    for thread in threads:
        thread.join(90)
    assert results["a"].exit_code == 0, results["a"].output
    assert results["b"].exit_code == 0, results["b"].output
    assert releases(skiff_root, "app-a")[0][1] == releases(skiff_root, "app-b")[0][1] == "succeeded"


def _wait_for(path: Path, thread: threading.Thread) -> None:
    thread.join(0)
    for _ in range(3000):
        if path.exists():
            return
        if not thread.is_alive():
            break
        thread.join(0.01)
    raise AssertionError(f"{path} did not appear")


BAD_COMMANDS = [
    "git-receive-pack '../x'",
    "git-receive-pack '../../etc/cron.d/x'",
    "git-receive-pack 'a;b'",
    "git-receive-pack '$(touch {marker})'",
    "git-receive-pack $(touch {marker})",
    "git-receive-pack \"'quoted'\"",
    "git-receive-pack '/tmp/evil'",
    "git-receive-pack '/etc/passwd'",
    "git-receive-pack 'UPPER'",
    "git-receive-pack 'x' 'y'",
    "git-receive-pack '-x'",
    "git-receive-pack ''",
    "git-upload-pack '../x'",
    "git-upload-pack 'nothere'",
    "git-receive-pack 'a`id`'",
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("skiff.db")}


def test_bad_app_names_over_ssh_create_nothing(sshd, tmp_path, skiff_root):
    marker = tmp_path / "pwned"
    assert sshd.ssh("apps:list").exit_code == 0  # creates the database
    before = _tree(skiff_root)
    commands = [command.format(marker=marker) for command in BAD_COMMANDS]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(sshd.ssh, commands))
    for command, result in zip(commands, results):
        assert result.exit_code != 0, command
        assert "!" in result.stderr, (command, result.output)
    assert not marker.exists()
    assert _tree(skiff_root) == before
    state = State(skiff_root)
    try:
        assert state.list_apps() == []
    finally:
        state.close()
    repo = init_repo(tmp_path / "app", {"a": "a"})
    result = git_push(repo, "x", sshd, url=f"ssh://root@127.0.0.1:{sshd.port}/../x")  # '/../x'
    assert result.exit_code != 0 and "invalid repository name" in result.output
    assert _tree(skiff_root) == before


def test_auto_create_off_refuses_unknown_apps(sshd, tmp_path, skiff_root):
    assert sshd.ssh("git:set --global auto-create false").exit_code == 0
    repo = init_repo(tmp_path / "app", {"a": "a"})
    result = git_push(repo, "newapp", sshd)
    assert result.exit_code != 0 and "auto-create is off" in result.output
    assert not (skiff_root / "repos" / "newapp.git").exists()
    assert sshd.ssh("apps:create newapp").exit_code == 0
    result = git_push(repo, "newapp", sshd)
    assert result.exit_code == 0, result.output


def test_push_with_submodule_and_keep_git_dir(sshd, tmp_path, skiff_root, git_daemon):
    """Checkout from git's quarantine: submodules (git://) and the kept .git, in the real hook."""
    served, base = git_daemon
    sub = init_repo(served / "sub", {"lib.py": "LIB = 1\n"})
    probe = tmp_path / "probe.json"
    repo = init_repo(tmp_path / "app", {"app.py": "1\n", "PROBE": str(probe)})
    subprocess.run(
        ["git", "-C", str(repo), "submodule", "add", "-q", f"{base}/sub", "vendor/lib"], check=True, capture_output=True
    )
    sha = commit_files(repo, {}, "add submodule")
    assert sshd.ssh("apps:create sub").exit_code == 0
    assert sshd.ssh("git:set sub keep-git-dir true").exit_code == 0
    result = git_push(repo, "sub", sshd)
    assert result.exit_code == 0, result.output
    report = json.loads(probe.read_text())
    assert "vendor/lib/lib.py" in report["files"]
    assert report["head"] == sha and report["status"] == ""
    assert report["push_lock_fds"] == []  # nothing the deploy starts inherits the push lock

    # a submodule on the server's own disk is refused: the push is rejected, the branch stays
    subprocess.run(
        ["git", "-C", str(repo), "config", "--file", ".gitmodules", "submodule.vendor/lib.url", f"file://{sub}"],
        check=True,
    )
    commit_files(repo, {}, "file submodule")
    result = git_push(repo, "sub", sshd)
    assert result.exit_code != 0
    assert "submodule vendor/lib uses the file transport" in result.output, result.output
    assert ls_remote(sshd, "sub")["refs/heads/main"] == sha
