"""The git plugin in-process (harness), with real git repositories and stub build/run."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import shlex
import stat
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_git.plugin as git_plugin
from skiff import hookimpl
from skiff.errors import SkiffError, ValidationError
from skiff.output import Output
from skiff.testing import StubBuilder, StubScheduler
from skiff.testing.sshd import STUB_ENV, commit_files, init_repo, skiff_executable
from skiff_git import repo as repos
from skiff_git.repo import ZERO


class TreeRecorder:
    """Remembers what the workdir held at pre-build time."""

    def __init__(self):
        self.trees: list[dict] = []

    @hookimpl
    def skiff_pre_build(self, deploy):
        wd = deploy.workdir
        files = sorted(str(p.relative_to(wd)) for p in wd.rglob("*") if p.is_file() and ".git" not in p.parts)
        git_head = None
        if (wd / ".git").is_dir():
            git_head = subprocess.run(
                ["git", "-C", str(wd), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(wd), "status", "--porcelain"], capture_output=True, text=True
            ).stdout
            git_head = (git_head, status)
        self.trees.append(
            {
                "files": files,
                "revision": deploy.revision,
                "git": git_head,
                "contents": {f: (wd / f).read_text() for f in files if (wd / f).stat().st_size < 200},
            }
        )


@pytest.fixture
def h(skiff):
    recorder = TreeRecorder()
    harness = skiff(("git", git_plugin), ("apps", apps_plugin), StubBuilder(), StubScheduler(), recorder)
    harness.trees = recorder.trees
    return harness


def load(h, app: str, work: Path, branch: str = "main") -> Path:
    """Create APP with a repository holding ``work``'s branch (fetched: no hook runs)."""
    h.create_app(app)
    bare = repos.ensure_repo(h.context, app)
    subprocess.run(["git", f"--git-dir={bare}", "fetch", "-q", str(work), f"{branch}:{branch}"], check=True)
    return bare


@pytest.mark.parametrize(
    "arg, app", [("web", "web"), ("/web", "web"), ("web.git", "web"), ("/web.git", "web"), ("a-1", "a-1")]
)
def test_app_from_path_accepts(arg, app):
    assert repos.app_from_path(arg) == app


@pytest.mark.parametrize(
    "arg",
    ["../x", "a/b", "//x", "x.git.git", "'x'", "$(id)", "a;b", "", "/", "X", "~/x", "x/", "/etc/passwd", "-x", "web\n"],
)
def test_app_from_path_refuses(arg):
    with pytest.raises(ValidationError):
        repos.app_from_path(arg)


def test_hook_deploys_the_deploy_branch_and_refuses_others(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    load(h, "web", work, "main")
    # deploy branch not set yet and the repository has branches: HEAD (main) is used
    result = h.invoke("git-hook", "web", input=f"{ZERO} {sha} refs/heads/feature\n")
    assert result.exit_code == 1 and "deploy branch of web is main" in result.stderr
    result = h.invoke("git-hook", "web", input=f"{sha} {ZERO} refs/heads/main\n")
    assert result.exit_code == 1 and "refusing to delete main" in result.stderr
    result = h.invoke("git-hook", "web", input=f"{ZERO} {sha} refs/tags/v1\n{ZERO} {sha} refs/heads/main\n")
    assert result.exit_code == 0, result.output
    assert h.trees[-1]["files"] == ["app.py"] and h.trees[-1]["revision"] == sha
    assert h.state.current_release("web").revision == sha


def test_first_push_chooses_the_deploy_branch(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"}, branch="trunk")
    h.create_app("web")
    bare = repos.ensure_repo(h.context, "web")
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", f"--git-dir={bare}", "fetch", "-q", str(work), "trunk:refs/skiff-test/x"], check=True)
    result = h.invoke("git-hook", "web", input=f"{ZERO} {sha} refs/heads/trunk\n")
    assert result.exit_code == 0, result.output
    assert h.state.get_property("git", "deploy-branch", app="web") == "trunk"
    assert (bare / "HEAD").read_text() == "ref: refs/heads/trunk\n"


def test_deploy_command_redeploys_and_keep_git_dir(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    first = commit_files(work, {"b.txt": "b"})
    second = commit_files(work, {"b.txt": None, "c.txt": "c"})
    load(h, "web", work)
    assert h.invoke("deploy", "web").exit_code == 0
    assert h.trees[-1]["revision"] == second and h.trees[-1]["files"] == ["app.py", "c.txt"]
    assert h.trees[-1]["git"] is None
    assert h.invoke("deploy", "web", first[:10]).exit_code == 0
    assert h.trees[-1]["files"] == ["app.py", "b.txt"]
    assert h.invoke("git:set", "web", "keep-git-dir", "true").exit_code == 0
    assert h.invoke("deploy", "web").exit_code == 0
    assert h.trees[-1]["git"] == (second, "")  # a clean work tree on the deployed commit
    for bad in ("--upload-pack=x", "nothere", "a..b"):
        result = h.invoke("deploy", "web", bad)
        assert result.exit_code != 0, bad
    assert [r.version for r in h.state.releases("web")] == [1, 2, 3]


def _add_submodule(work: Path, url: str, path: str) -> None:
    subprocess.run(
        ["git", "-C", str(work), "-c", "protocol.file.allow=always", "submodule", "add", "-q", url, path],
        check=True,
        capture_output=True,
    )


def test_submodules_are_checked_out(h, tmp_path, git_daemon):
    served, base = git_daemon
    sub = init_repo(served / "sub", {"lib.py": "LIB = 1\n"})
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    _add_submodule(work, f"{base}/sub", "vendor/lib")
    commit_files(work, {}, "add submodule")
    commit_files(sub, {"lib.py": "LIB = 2\n"})  # not the recorded commit
    load(h, "web", work)
    result = h.invoke("deploy", "web")
    assert result.exit_code == 0, result.output
    assert "vendor/lib/lib.py" in h.trees[-1]["files"]
    assert h.trees[-1]["contents"]["vendor/lib/lib.py"] == "LIB = 1\n"


@pytest.mark.parametrize(
    "form, refused",
    [
        ("file://{sub}", "the file transport"),
        ("{sub}", "a local path"),
        ("ext::sh -c touch% {flag}", "the ext transport"),
        ("http://127.0.0.1:9/sub", "the http transport"),
    ],
)
def test_submodules_from_other_transports_are_refused(h, tmp_path, form, refused):
    sub = init_repo(tmp_path / "sub", {"lib.py": "LIB = 1\n"})
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    _add_submodule(work, str(sub), "vendor/lib")
    url = form.format(sub=sub, flag=tmp_path / "flag")
    subprocess.run(
        ["git", "-C", str(work), "config", "--file", ".gitmodules", "submodule.vendor/lib.url", url], check=True
    )
    commit_files(work, {}, "add submodule")
    load(h, "web", work)
    result = h.invoke("deploy", "web")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("!") and refused in lines[0], result.stderr
    assert "submodule vendor/lib" in lines[0]
    assert h.trees == [] and h.state.releases("web") == []  # refused in receive: nothing built
    assert not (tmp_path / "flag").exists()


def test_git_itself_refuses_file_submodules_and_its_error_is_shown(tmp_path, monkeypatch):
    """Behind the URL check, git's protocol guard holds too (nested submodules are not checked by us)."""
    from skiff_git import checkout as checkouts

    sub = init_repo(tmp_path / "sub", {"lib.py": "LIB = 1\n"})
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    _add_submodule(work, str(sub), "vendor/lib")
    commit_files(work, {}, "add submodule")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    monkeypatch.setattr(checkouts, "check_submodule_url", lambda path, url: None)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SkiffError) as caught:
        checkouts.checkout(bare, "main", out, output=Output())
    assert "transport 'file' not allowed" in str(caught.value), caught.value
    assert not (out / "vendor" / "lib" / "lib.py").exists()


def test_settings_and_report(h, tmp_path):
    h.create_app("web")
    assert h.invoke("git:set", "web", "deploy-branch", "release/v1").exit_code == 0
    assert h.invoke("git:set", "web", "deploy-branch", "../x").exit_code == 1
    assert h.invoke("git:set", "web", "keep-git-dir", "maybe").exit_code == 1
    assert h.invoke("git:set", "web", "auto-create", "false").exit_code == 1
    assert h.invoke("git:set", "web", "colour", "red").exit_code == 1
    assert h.invoke("git:set", "--global", "auto-create", "off").exit_code == 0
    report = json.loads(h.invoke("git:report", "web", "--format", "json").stdout)
    assert report["deploy_branch"] == "release/v1" and report["auto_create"] is False
    assert report["repository"] is None
    assert h.invoke("git:set", "web", "deploy-branch").exit_code == 0
    assert json.loads(h.invoke("git:report", "web", "--format", "json").stdout)["deploy_branch"] == "main"
    assert "git" in json.loads(h.invoke("apps:report", "web", "--format", "json").stdout)


def test_rename_moves_and_destroy_removes_the_repository(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    load(h, "old", work)
    assert h.invoke("apps:rename", "old", "new").exit_code == 0
    moved = h.root / "repos" / "new.git"
    assert moved.is_dir() and not (h.root / "repos" / "old.git").exists()
    assert "git-hook new" in (moved / "hooks" / "pre-receive").read_text()
    assert h.invoke("deploy", "new").exit_code == 0
    assert h.invoke("apps:destroy", "new", "--force").exit_code == 0
    assert not moved.exists()


def test_sync(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    head = commit_files(work, {"x": "x"})
    result = h.invoke("git:sync", "web", str(work))
    assert result.exit_code == 0, result.output
    bare = h.root / "repos" / "web.git"
    assert repos.resolve(bare, "refs/heads/main") == head
    assert h.state.releases("web") == []
    newer = commit_files(work, {"FAIL": "1"})
    result = h.invoke("git:sync", "--build", "web", str(work), "main")
    assert result.exit_code == 0, result.output
    assert h.trees[-1]["revision"] == newer
    result = h.invoke("git:sync", "fresh", str(tmp_path / "nothere"))
    assert result.exit_code == 1 and "git fetch failed" in result.stderr
    assert not h.state.app_exists("fresh") and not (h.root / "repos" / "fresh.git").exists()
    for bad in (
        ["web", "--upload-pack=touch /tmp/x"],
        ["web", "ext::sh -c touch% /tmp/x"],
        ["web", str(work), "-x"],
        ["../x", str(work)],
    ):
        assert h.invoke("git:sync", *bad).exit_code != 0, bad


def _tarball(members: list[tuple[str, str, str]]) -> bytes:
    """(name, kind, data) with kind file|dir|symlink|hardlink."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data.encode())
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = data
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def http_files(tmp_path):
    """Serve ``tmp_path/www`` on a loopback port; yield the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket.settimeout(1)  # accept() never blocks shutdown() for good
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_from_archive_url(h, http_files):
    www, base = http_files
    (www / "app.tgz").write_bytes(
        _tarball(
            [("proj-1/", "dir", ""), ("proj-1/app.py", "file", "print(1)\n"), ("proj-1/link", "symlink", "app.py")]
        )
    )
    result = h.invoke("git:from-archive", "web", f"{base}/app.tgz")
    assert result.exit_code == 0, result.output
    assert h.trees[-1]["files"] == ["app.py", "link"]
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("main.py", "print(2)\n")
    (www / "app.zip").write_bytes(zipped.getvalue())
    assert h.invoke("git:from-archive", "web", f"{base}/app.zip").exit_code == 0
    assert h.trees[-1]["files"] == ["main.py"]
    bare = h.root / "repos" / "web.git"
    log = subprocess.run(
        ["git", f"--git-dir={bare}", "log", "--format=%s", "main"], capture_output=True, text=True
    ).stdout.splitlines()
    assert len(log) == 2 and log[0].startswith("Deploy from archive")


@pytest.mark.parametrize(
    "members, message",
    [
        ([("../evil.py", "file", "x")], "outside its tree"),
        ([("/etc/evil", "file", "x")], "unsafe member name"),
        ([("ok.py", "file", "x"), ("out", "symlink", "../../etc/passwd")], "link that leaves its tree"),
        ([("abs", "symlink", "/etc/passwd")], "link that leaves its tree"),
        ([("d/x", "file", "x"), ("hard", "hardlink", "/etc/passwd")], "hard link"),
        ([("dir", "symlink", "."), ("dir/../../x", "file", "x")], "outside its tree"),
    ],
)
def test_from_archive_refuses_unsafe_archives(h, http_files, members, message):
    www, base = http_files
    (www / "evil.tgz").write_bytes(_tarball(members))
    result = h.invoke("git:from-archive", "evil", f"{base}/evil.tgz")
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert not h.state.app_exists("evil")
    assert not (h.root / "repos" / "evil.git").exists()
    assert not Path("/etc/evil").exists()


def test_from_archive_refuses_other_sources(h, tmp_path):
    for source in ("/etc/passwd", "file:///etc/passwd", "ftp://x/y"):
        result = h.invoke("git:from-archive", "web", source)
        assert result.exit_code == 1 and "http(s) URL" in result.stderr
    assert not h.state.app_exists("web")


def test_from_archive_on_stdin_in_a_real_process(skiff_root, tmp_path):
    data = _tarball([("Procfile", "file", "web: x\n")])
    env = {**os.environ, **STUB_ENV, "SKIFF_ROOT": str(skiff_root)}
    proc = subprocess.run(
        [skiff_executable(), "git:from-archive", "web", "-"], input=data, env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Releasing web v1" in proc.stdout


# -- credentials, transports over SSH, private repositories, push size ------------------

SECRET = "s3cret-token-4711"


@pytest.fixture
def auth_http(tmp_path):
    """Serve ``tmp_path/auth-www`` on a loopback port to ``alice:SECRET`` only (Basic auth)."""
    root = tmp_path / "auth-www"
    root.mkdir()
    expected = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization") or "")
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 64  # git's curl opens connections in bursts; the default backlog is 5

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


@pytest.fixture
def argv_log(monkeypatch):
    """Every argument list the git plugin hands to subprocess.run."""
    calls: list[list[str]] = []
    real = subprocess.run

    def recording(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(repos.subprocess, "run", recording)
    return calls


def _dumb_http_repo(www: Path, work: Path) -> None:
    bare = www / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", f"--git-dir={bare}", "update-server-info"], check=True)


def _invoke_past_resets(h, *args: str):
    """Run a command against the loopback test server again when the connection was reset
    (a loaded machine does that now and then); any other result is returned as it is."""
    for _ in range(3):
        result = h.invoke(*args)
        if "Connection reset" not in result.stderr:
            break
    return result


def test_sync_credentials_stay_out_of_argv_descriptions_and_output(h, tmp_path, auth_http, argv_log):
    www, host, seen = auth_http
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    sha = commit_files(work, {"x": "x"})
    _dumb_http_repo(www, work)
    url = f"http://alice:{SECRET}@{host}/repo.git"
    result = _invoke_past_resets(h, "git:sync", "--build", "web", url)
    assert result.exit_code == 0, result.output
    assert h.trees[-1]["revision"] == sha  # the credentials did reach the server
    assert any(header.startswith("Basic ") for header in seen)
    assert SECRET not in result.output and f"http://***@{host}/repo.git" in result.output
    assert h.state.releases("web")[-1].description == f"Deploy {sha[:7]} from http://***@{host}/repo.git"
    fetches = [cmd for cmd in argv_log if "fetch" in cmd]
    assert fetches and all(SECRET not in " ".join(cmd) and "alice" not in " ".join(cmd) for cmd in argv_log)
    bare = h.root / "repos" / "web.git"
    assert SECRET not in (bare / "config").read_text()
    assert SECRET not in (bare / "FETCH_HEAD").read_text()
    wrong = _invoke_past_resets(h, "git:sync", "web", f"http://alice:wrong-{SECRET}@{host}/repo.git")
    assert wrong.exit_code == 1 and "git fetch failed" in wrong.stderr, wrong.output
    assert SECRET not in wrong.output and len(wrong.stderr.strip().splitlines()) == 1


def test_from_archive_credentials_stay_out_of_commit_and_description(h, tmp_path, auth_http):
    www, host, seen = auth_http
    (www / "app.tgz").write_bytes(_tarball([("app.py", "file", "print(1)\n")]))
    url = f"http://alice:{SECRET}@{host}/app.tgz"
    result = h.invoke("git:from-archive", "web", url)
    assert result.exit_code == 0, result.output
    assert h.trees[-1]["files"] == ["app.py"]
    assert SECRET not in result.output
    bare = h.root / "repos" / "web.git"
    log = subprocess.run(
        ["git", f"--git-dir={bare}", "log", "--format=%B", "main"], capture_output=True, text=True, check=True
    ).stdout
    assert log.strip() == f"Deploy from archive http://***@{host}/app.tgz"
    assert all(SECRET not in r.description for r in h.state.releases("web"))
    wrong = _invoke_past_resets(h, "git:from-archive", "web", f"http://alice:nope@{host}/app.tgz")
    assert wrong.exit_code == 1 and "nope" not in wrong.output
    assert "401" in wrong.stderr, wrong.stderr


@pytest.mark.parametrize(
    "url, shown_url, argv_url",
    [
        ("https://u:tok@example.com/r.git", "https://***@example.com/r.git", "https://example.com/r.git"),
        ("https://tok@example.com:8443/r.git", "https://***@example.com:8443/r.git", "https://example.com:8443/r.git"),
        ("ssh://git@example.com/r.git", "ssh://git@example.com/r.git", "ssh://git@example.com/r.git"),
        ("ssh://git:pw@example.com/r.git", "ssh://git:***@example.com/r.git", "ssh://git@example.com/r.git"),
        ("git@example.com:r.git", "git@example.com:r.git", "git@example.com:r.git"),
        ("/srv/r.git", "/srv/r.git", "/srv/r.git"),
    ],
)
def test_redaction(url, shown_url, argv_url):
    assert repos.redact(url) == shown_url
    assert repos.credential_env(url)[0] == argv_url
    assert "tok" not in repos.redact(url) and "pw" not in repos.redact(url)


@pytest.mark.parametrize(
    "url, kind",
    [
        ("https://h/r", "https"),
        ("HTTP://h/r", "http"),
        ("ssh://h/r", "ssh"),
        ("git+ssh://h/r", "ssh"),
        ("git://h/r", "git"),
        ("file:///srv/r", "file"),
        ("ext::sh -c x", "ext"),
        ("fd::3", "fd"),
        ("user@host:r.git", "ssh"),
        ("host:r", "ssh"),
        ("/srv/r", "local"),
        ("./r", "local"),
        ("r", "local"),
        ("dir/with:colon", "local"),
    ],
)
def test_transport(url, kind):
    assert repos.transport(url) == kind


def test_sync_from_local_paths_is_refused_over_ssh(h, tmp_path, monkeypatch):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    for url in (str(work), f"file://{work}", "../w", f"file::{work}"):
        monkeypatch.setenv("SSH_ORIGINAL_COMMAND", f"git:sync web {shlex.quote(url)}")
        result = h.invoke("ssh-command")
        assert result.exit_code == 1 and "refused over SSH" in result.stderr, (url, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not h.state.app_exists("web") and not (h.root / "repos" / "web.git").exists()
    # from a root shell on the server, the same sources are fine
    assert h.invoke("git:sync", "web", str(work)).exit_code == 0
    assert h.invoke("git:sync", "web", f"file://{work}").exit_code == 0


def test_repositories_are_private(h, tmp_path):
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    old_umask = os.umask(0o022)
    try:
        assert h.invoke("git:sync", "web", str(work)).exit_code == 0
    finally:
        os.umask(old_umask)
    bare = h.root / "repos" / "web.git"
    assert stat.S_IMODE(bare.stat().st_mode) == 0o700
    assert stat.S_IMODE((h.root / "repos").stat().st_mode) == 0o700
    assert repos.git(["config", "core.sharedRepository"], git_dir=bare).strip() == "0600"
    loose = [p for p in bare.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert loose == []
    bare.chmod(0o755)  # an older repository: tightened on its next use
    repos.ensure_repo(h.context, "web")
    assert stat.S_IMODE(bare.stat().st_mode) == 0o700


def test_max_push_size_setting_reaches_receive_pack(h):
    assert h.invoke("git:set", "--global", "max-push-size", "2M").exit_code == 0
    assert repos.limit(h.context, "max-push-size") == 2 * 1024 * 1024
    for bad in ("0", "1X", "1G; rm", "lots", "1.5G"):
        result = h.invoke("git:set", "--global", "max-push-size", bad)
        assert result.exit_code == 1 and "invalid size" in result.stderr, bad
    assert h.invoke("git:set", "web", "max-push-size", "1M").exit_code != 0  # global only
    from skiff_git import push

    assert push.receive_pack_argv(Path("/r.git"), 2 * 1024 * 1024) == [
        "git",
        "-c",
        "receive.maxInputSize=2097152",
        "receive-pack",
        "/r.git",
    ]
    h.create_app("web")
    report = json.loads(h.invoke("git:report", "web", "--format", "json").stdout)
    assert report["max_push_size"] == 2 * 1024 * 1024 and report["archive_max_members"] == 100_000


def test_a_push_over_max_push_size_is_refused(skiff_root, tmp_path):
    """A real ``git push`` whose receive-pack is ``skiff git-receive-pack``: git refuses the pack."""
    env = {**os.environ, **STUB_ENV, "SKIFF_ROOT": str(skiff_root)}
    skiff = skiff_executable()
    subprocess.run([skiff, "git:set", "--global", "max-push-size", "64K"], env=env, check=True, capture_output=True)
    work = init_repo(tmp_path / "w", {"big.bin": os.urandom(256 * 1024)})
    receive = f"{shlex.quote(skiff)} git-receive-pack"
    proc = subprocess.run(
        ["git", "-C", str(work), "push", f"--receive-pack={receive}", "web", "main"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "pack exceeds maximum allowed size" in proc.stderr, proc.stderr
    bare = skiff_root / "repos" / "web.git"
    assert repos.resolve(bare, "refs/heads/main") is None
    subprocess.run([skiff, "git:set", "--global", "max-push-size", "1M"], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        ["git", "-C", str(work), "push", f"--receive-pack={receive}", "web", "main"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert repos.resolve(bare, "refs/heads/main") is not None
