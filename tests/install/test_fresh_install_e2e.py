"""The fresh-server path: scripts/install.sh and scripts/demo.sh against an empty engine.

A machine that already holds the stack image proves nothing about a fresh one, so this test
installs Skiff into a temp prefix (venv, wrapper, state root, sshd/nginx/sudoers/systemd
snippets, a service account of its own) against a private dockerd with an empty image store,
then runs the demo's real ``git push`` over a private sshd and fetches the answer through a
private nginx driven by that account. It fails if any install step needs a prebuilt stack
(the empty engine has none) or a root-only step runs as the service account (debootstrap and
pip into the root-owned venv refuse). Then, on the installed layout:

- ``plugin:install`` of a hook package (as root, through the wrapper) fires on a real push,
  and a broken package fails with pip's real message;
- ``make install`` run again (an update) keeps the app serving, its key and its releases.

About four minutes, most of it the stack build (debootstrap, then Node.js and compilers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.testing.engine import PrivateEngine, engine_images, start_private_engine
from skiff.testing.nginx import PrivateNginx, get
from skiff.testing.sshd import make_key, start_sshd

pytestmark = pytest.mark.e2e

TOP = Path(__file__).resolve().parents[2]
ANSWER = "Cat dreams meow.."


@pytest.fixture(scope="module")
def engine() -> Iterator[PrivateEngine]:
    if os.geteuid() != 0:
        pytest.skip("the fresh-install test needs root")
    instance = start_private_engine()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def account() -> Iterator[str]:
    """A service account of the test's own (install.sh creates it; removed afterwards)."""
    name = "skf" + secrets.token_hex(3)
    yield name
    subprocess.run(["pkill", "-u", name], check=False)
    subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="skf-prefix-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Install:
    """One installed layout in ``prefix`` and the processes that serve it."""

    def __init__(self, prefix: Path, user: str, engine: PrivateEngine):
        self.prefix = prefix
        self.user = user
        self.engine = engine
        self.root = prefix / "var/lib/skiff"
        self.bin = prefix / "bin/skiff"
        self.demo = prefix / "demo"
        self.nginx: PrivateNginx | None = None
        self.sshd_port = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SKIFF_", "DOCKER_"))}
        env.update(
            SKIFF_USER=self.user,
            SKIFF_ROOT=str(self.root),
            SKIFF_VENV=str(self.prefix / "opt/venv"),
            SKIFF_BIN=str(self.bin),
            SKIFF_ETC=str(self.prefix / "etc"),
            SKIFF_SERVICES="none",
            DOCKER_HOST=self.engine.host,
            PATH=f"{self.bin.parent}:{env.get('PATH', '/usr/bin:/bin')}",
        )
        if self.nginx is not None:
            env.update(self.nginx.env)
            env["SKIFF_NGINX_SUDO"] = "never"
        return env

    def run(self, *args: str, input: str | None = None, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), input=input, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )

    def install(self) -> subprocess.CompletedProcess:
        return self.run(str(TOP / "scripts/install.sh"))

    def demo_push(self) -> subprocess.CompletedProcess:
        env_extra = {
            "SKIFF_DEMO_NO_INSTALL": "1",
            "SKIFF_DEMO_DIR": str(self.demo),
            "SKIFF_DEMO_SSH_PORT": str(self.sshd_port),
            "SKIFF_DEMO_HTTP_PORT": str(self.nginx.http_port),
        }
        return subprocess.run(
            [str(TOP / "scripts/demo.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            env={**self.env, **env_extra},
            check=False,
        )

    def skiff(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.run(str(self.bin), *args, input=input, timeout=600)

    def answer(self) -> str:
        assert self.nginx is not None
        return get(self.nginx.http_port, "/", host="catmeow.skiff.localhost").body


def _home(user: str) -> Path:
    import pwd

    return Path(pwd.getpwnam(user).pw_dir)


@pytest.fixture(scope="module")
def installed(prefix: Path, account: str, engine: PrivateEngine) -> Iterator[Install]:
    layout = Install(prefix, account, engine)
    assert engine_images(engine) == [], "the private engine must start empty"
    result = layout.install()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Bootstrapping Debian trixie" in result.stdout, "the stack was not built from scratch"
    assert "skiff/stack:trixie" in engine_images(engine)
    # nginx and sshd as the server runs them, on free loopback ports, driven by the account
    layout.nginx = PrivateNginx(prefix / "nginx", str(layout.root / "nginx/conf.d/*.conf"), user=account)
    (prefix / "nginx").mkdir()
    layout.nginx.start()
    keys = prefix / "keys"
    keys.mkdir()
    host_key = make_key(keys / "host_ed25519", "skiff-fresh-host")
    client_key = make_key(keys / "client_ed25519", "skiff-fresh-client")
    sshd = start_sshd(
        prefix / "sshd",
        host_key,
        client_key,
        _home(account) / ".ssh/authorized_keys",
        {"DOCKER_HOST": engine.host, **layout.nginx.env, "SKIFF_NGINX_SUDO": "never"},
        user=account,
    )
    layout.sshd_port = sshd.port
    yield layout
    sshd.stop()
    layout.nginx.stop()


def test_a_fresh_install_builds_the_stack_and_the_demo_push_serves(installed: Install):
    result = installed.demo_push()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == ANSWER
    # the account, not root, owns what it wrote
    assert installed.root.joinpath("skiff.db").stat().st_uid == _uid(installed.user)
    assert "catmeow" in installed.skiff("apps:list").stdout.split()
    # the services' s3 extra came with it: S3 backups work on the installed server
    venv_python = installed.prefix / "opt/venv/bin/python"
    assert subprocess.run([str(venv_python), "-c", "import boto3, botocore"], check=False).returncode == 0


def test_root_runs_commands_as_the_service_account_and_root_only_ones_as_root(installed: Install):
    whoami = installed.skiff("run", "catmeow", "id", "-un")
    assert whoami.returncode == 0, whoami.stderr
    state_files = list(installed.root.glob("skiff.db*"))
    assert state_files and all(p.stat().st_uid == _uid(installed.user) for p in state_files)
    # root through the wrapper is still root on the server for host-reaching options, after the drop
    added = installed.skiff("docker-options:add", "catmeow", "run", "--privileged")
    assert added.returncode == 0, added.stderr
    assert installed.skiff("docker-options:remove", "catmeow", "run", "--privileged").returncode == 0
    # a root-only command refused to the service account with one line
    as_account = subprocess.run(
        ["runuser", "-u", installed.user, "--", str(installed.bin), "plugin:install", "x"],
        capture_output=True,
        text=True,
        env=installed.env,
        check=False,
    )
    assert as_account.returncode == 1
    assert (
        as_account.stderr.strip().splitlines()[-1]
        == "!     plugin:install needs root: run it as root on the server (e.g. sudo skiff plugin:install)"
    )


def test_plugin_install_on_the_installed_layout_fires_on_a_real_push(installed: Install, tmp_path: Path):
    package = tmp_path / "hello-hook"
    shutil.copytree(TOP / "examples/hello-hook", package)
    result = installed.skiff("plugin:install", str(package))
    assert result.returncode == 0, result.stderr
    assert "hello" in installed.skiff("plugin:list").stdout
    # into the installed venv, not the test's
    venv_python = installed.prefix / "opt/venv/bin/python"
    assert subprocess.run([str(venv_python), "-c", "import skiff_hello"], check=False).returncode == 0
    push = installed.demo_push()
    assert push.returncode == 0, push.stdout[-2000:] + push.stderr[-2000:]
    assert "hello-hook: catmeow v" in push.stdout + push.stderr
    removed = installed.skiff("plugin:uninstall", "hello")
    assert removed.returncode == 0, removed.stderr
    assert "hello" not in installed.skiff("plugin:list").stdout.split()


def test_a_broken_plugin_package_fails_with_pips_real_message(installed: Install, tmp_path: Path):
    package = tmp_path / "broken"
    package.mkdir()
    (package / "setup.py").write_text("raise SystemExit('this package cannot be built: skiff-broken-marker')\n")
    result = installed.skiff("plugin:install", str(package))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("!     pip could not install") and "skiff-broken-marker" in last, result.stderr
    assert "This error originates from a subprocess" not in last


def test_make_install_again_keeps_the_app_serving_with_its_key_and_releases(installed: Install):
    assert installed.skiff("ps:retire", "catmeow").returncode == 0  # no container of an earlier push retiring
    releases_before = installed.skiff("releases", "catmeow", "--format", "json").stdout
    keys_before = installed.skiff("ssh-keys:list").stdout
    container = installed.engine.docker("ps", "-q", "--filter", "label=skiff.app=catmeow").stdout.split()
    assert len(container) == 1
    result = installed.install()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "schema" in result.stdout and "up to date" in result.stdout
    assert "Bootstrapping" not in result.stdout  # the stack is kept
    assert installed.answer() == ANSWER
    assert installed.engine.docker("ps", "-q", "--filter", "label=skiff.app=catmeow").stdout.split() == container
    assert installed.skiff("releases", "catmeow", "--format", "json").stdout == releases_before
    assert installed.skiff("ssh-keys:list").stdout == keys_before
    push = installed.demo_push()
    assert push.returncode == 0 and push.stdout.strip().splitlines()[-1] == ANSWER, push.stderr[-2000:]


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid
