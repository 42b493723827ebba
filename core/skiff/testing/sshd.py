"""pytest fixtures: a private sshd on 127.0.0.1 and real ``git push`` over it.

Every test that asks for ``sshd`` gets its own sshd process (it starts in
about 20 ms) on a free loopback port, with its own ``sshd_config``, a session
host key, the session test client key, and an ``authorized_keys`` file in the
test's temp dir. The test process gets ``SKIFF_AUTHORIZED_KEYS`` pointing at
that file, and the test key is added with the real ``skiff ssh-keys:add``, so
the file holds exactly the line the ssh-keys plugin writes in production.

The test sshd runs as root and logs in as root with
``PermitRootLogin forced-commands-only``: only keys with a ``command=`` (the
ones Skiff writes) may log in. Its sessions see the test's ``SKIFF_ROOT``,
``SKIFF_AUTHORIZED_KEYS`` and whatever :func:`sshd_skiff_env` returns, through
``SetEnv`` in the config. Override ``sshd_skiff_env`` in a test module (or a
conftest) to choose the plugins the server side loads; :data:`STUB_ENV` is the
stub pipeline (no docker)::

    @pytest.fixture
    def sshd_skiff_env():
        return dict(STUB_ENV)

    def test_push(sshd, tmp_path):
        repo = init_repo(tmp_path / "app", {"app.py": "print(1)"})
        result = git_push(repo, "myapp", sshd)
        assert result.exit_code == 0, result.output

Fixtures: ``sshd_host_key`` and ``sshd_client_key`` (session), ``sshd_factory``
(session: ``factory(authorized_keys, env) -> SshServer``), ``sshd_skiff_env``
and ``sshd`` (function). Helpers: :func:`init_repo`, :func:`commit_files`,
:func:`git_push`, :meth:`SshServer.ssh`, :meth:`SshServer.git`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from ..executable import skiff_executable
from . import Result as CommandResult

SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.1"
ALIAS = "skiff-test"
TEST_KEY_NAME = "test"

#: Server-side environment that drives deploys with ``skiff.testing.stubs``
#: instead of the real builders, scheduler and proxy.
STUB_ENV = {
    "SKIFF_PLUGINS": "skiff.testing.stubs",
    "SKIFF_DISABLED_PLUGINS": "buildpacks,dockerfile,procfile,docker,nginx,postgres",
}

#: Environment for git commits made by tests.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Skiff Test",
    "GIT_AUTHOR_EMAIL": "test@skiff.invalid",
    "GIT_COMMITTER_NAME": "Skiff Test",
    "GIT_COMMITTER_EMAIL": "test@skiff.invalid",
}


@dataclass
class SshServer:
    """One running test sshd and how to reach it.

    ``env`` is the client environment for ``git``/``ssh`` (``GIT_SSH_COMMAND``
    uses :attr:`ssh_config`, whose ``Host skiff-test`` entry holds the port,
    user, key and known host). ``remote(app)`` is the git remote URL.
    """

    host: str
    port: int
    user: str
    key: Path
    authorized_keys: Path
    ssh_config: Path
    sshd_config: Path
    log: Path
    skiff_env: dict[str, str]
    process: subprocess.Popen[bytes] = field(repr=False)
    alias: str = ALIAS

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GIT_IDENTITY)
        env["GIT_SSH_COMMAND"] = f"ssh -F {shlex.quote(str(self.ssh_config))}"
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GIT_CONFIG_NOSYSTEM"] = "1"
        return env

    def remote(self, app: str) -> str:
        """``skiff-test:APP``: git sends ``git-receive-pack 'APP'``."""
        return f"{self.alias}:{app}"

    def url(self, app: str) -> str:
        """``ssh://skiff-test/APP``: git sends ``git-receive-pack '/APP'``."""
        return f"ssh://{self.alias}/{app}"

    def for_key(self, key: Path) -> SshServer:
        """The same server, reached with another client key (e.g. an unknown one)."""
        config = self.ssh_config.with_name(f"ssh_config.{key.name}")
        config.write_text(re.sub(r"(?m)^    IdentityFile .*$", f"    IdentityFile {key}", self.ssh_config.read_text()))
        return dataclasses.replace(self, key=key, ssh_config=config)

    def ssh_args(self, options: Sequence[str] = ()) -> list[str]:
        """``ssh -F CONFIG OPTIONS... skiff-test``-style argument list, without the host."""
        return ["ssh", "-F", str(self.ssh_config), *options]

    def ssh(
        self,
        command: str | Sequence[str] = "",
        *,
        input: str | None = None,
        options: Sequence[str] = (),
        timeout: float = 120,
    ) -> CommandResult:
        """Run ``ssh skiff-test COMMAND``; ``command`` is sent as one string.

        A list is joined with :func:`shlex.join`, the way a user's shell would
        quote it. ``options`` go before the host (``-t``, ``-o ...``).
        """
        if not isinstance(command, str):
            command = shlex.join(command)
        args = self.ssh_args(options) + [self.alias]
        if command:
            args += ["--", command]
        proc = subprocess.run(
            args,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *argv: str, input: str | None = None, timeout: float = 120) -> str:
        """``ssh skiff-test ARGV...`` that must succeed: its whole output (stdout, then stderr).

        A non-zero exit fails the test with the command and what it printed.
        """
        result = self.ssh(list(argv), input=input, timeout=timeout)
        assert result.exit_code == 0, f"{list(argv)}: {result.output}"
        return result.stdout + result.stderr

    def git(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> CommandResult:
        """Run ``git ARGS`` with this server's ssh settings (ls-remote, clone, push)."""
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=self.env, timeout=timeout)
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def git_push(self, repo_dir: Path | str, app: str, **kwargs: Any) -> CommandResult:
        return git_push(repo_dir, app, self, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- git helpers --------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def commit_files(repo: Path | str, files: Mapping[str, str | bytes | None], message: str = "change") -> str:
    """Write (or, for ``None``, delete) ``files`` in ``repo``, commit all, return the sha."""
    repo = Path(repo)
    for name, content in files.items():
        path = repo / name
        if content is None:
            if path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def init_repo(path: Path | str, files: Mapping[str, str | bytes | None], branch: str = "main") -> Path:
    """``git init`` a work tree at ``path`` on ``branch`` with one commit of ``files``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", branch)
    commit_files(path, files, "initial")
    return path


def head(repo: Path | str) -> str:
    return _git(Path(repo), "rev-parse", "HEAD")


def git_push(
    repo_dir: Path | str,
    app: str,
    server: SshServer,
    *,
    refspec: str = "HEAD:main",
    force: bool = False,
    url: str | None = None,
    args: Sequence[str] = (),
    timeout: float = 600,
) -> CommandResult:
    """``git push`` ``refspec`` of ``repo_dir`` to ``app`` on ``server``.

    Returns exit code and output (git writes the ``remote:`` lines to stderr;
    :attr:`CommandResult.output` has both streams).
    """
    cmd = ["push", *(["--force"] if force else []), *args, url or server.remote(app), refspec]
    return server.git(*cmd, cwd=Path(repo_dir), timeout=timeout)


# -- sshd ---------------------------------------------------------------------


class SshServerFactory(Protocol):
    """What the ``sshd_factory`` fixture yields."""

    def __call__(self, authorized_keys: Path, env: Mapping[str, str], directory: Path | None = None) -> SshServer: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def make_key(path: Path, comment: str = "skiff-test") -> Path:
    """Make an ed25519 key pair at ``path`` / ``path.pub``; return the private key."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def _check_root_account() -> None:
    """sshd refuses key logins to a locked account (``!`` in /etc/shadow)."""
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == "root" and rest.startswith("!"):
                pytest.fail("the root account is locked, so sshd refuses key logins: run usermod -p '*' root")
    except OSError:
        pass


def _quote_setenv(name: str, value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise ValueError(f"cannot pass {name} through SetEnv: {value!r}")
    return f'"{name}={value}"'


def start_sshd(
    directory: Path,
    host_key: Path,
    client_key: Path,
    authorized_keys: Path,
    env: Mapping[str, str],
    user: str = "root",
) -> SshServer:
    """Start ``sshd -D`` with its own config in ``directory``; wait until it listens."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd needs root")
    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed")
    _check_root_account()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "sshd_config"
    setenv = " ".join(_quote_setenv(k, v) for k, v in sorted(env.items()))
    config.write_text(
        f"""# test sshd for skiff (see skiff/testing/sshd.py)
Port {port}
ListenAddress {HOST}
HostKey {host_key}
PidFile {directory / "sshd.pid"}
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
PermitRootLogin forced-commands-only
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
# Forwarding is allowed here so that tests prove the key's `restrict` blocks it.
AllowTcpForwarding yes
X11Forwarding no
PermitTTY yes
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
MaxStartups 50
{"SetEnv " + setenv if setenv else ""}
"""
    )
    known_hosts = directory / "known_hosts"
    key_type, key_blob = host_key.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"[{HOST}]:{port} {key_type} {key_blob}\n")
    ssh_config = directory / "ssh_config"
    ssh_config.write_text(
        f"""Host {ALIAS} {HOST}
    HostName {HOST}
    Port {port}
    User {user}
    IdentityFile {client_key}
    IdentitiesOnly yes
    IdentityAgent none
    BatchMode yes
    StrictHostKeyChecking yes
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    LogLevel ERROR
    ConnectTimeout 10
"""
    )
    log = directory / "sshd.log"
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-2000:]}")
        if "Server listening" in log.read_text():
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not start: {log.read_text()[-2000:]}")
        time.sleep(0.005)
    return SshServer(HOST, port, user, client_key, authorized_keys, ssh_config, config, log, dict(env), proc)


@pytest.fixture(scope="session")
def sshd_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sshd-keys")


@pytest.fixture(scope="session")
def sshd_host_key(sshd_keys_dir: Path) -> Path:
    """A session host key (private key path; ``.pub`` beside it)."""
    return make_key(sshd_keys_dir / "ssh_host_ed25519_key", "skiff-test-host")


@pytest.fixture(scope="session")
def sshd_client_key(sshd_keys_dir: Path) -> Path:
    """The test client key (private key path; ``.pub`` beside it)."""
    return make_key(sshd_keys_dir / "client_ed25519", "skiff-test-client")


@pytest.fixture(scope="session")
def sshd_factory(
    sshd_host_key: Path, sshd_client_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshServerFactory]:
    """``factory(authorized_keys, env, directory=None) -> SshServer``; all stop at session end."""
    servers: list[SshServer] = []

    def factory(authorized_keys: Path, env: Mapping[str, str], directory: Path | None = None) -> SshServer:
        server = start_sshd(
            directory or tmp_path_factory.mktemp("sshd"), sshd_host_key, sshd_client_key, authorized_keys, env
        )
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def sshd_skiff_env() -> dict[str, str]:
    """Extra environment of the server-side ``skiff`` (override to choose plugins)."""
    return {}


def add_key(name: str, public_key: Path, env: Mapping[str, str] | None = None, role: str = "admin") -> CommandResult:
    """Run the real ``skiff ssh-keys:add NAME PUBFILE --role ROLE`` (the test key is an admin)."""
    proc = subprocess.run(
        [skiff_executable(), "ssh-keys:add", name, str(public_key), "--role", role],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def sshd(
    sshd_factory: SshServerFactory,
    sshd_client_key: Path,
    sshd_skiff_env: dict[str, str],
    skiff_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SshServer]:
    """A running sshd for this test; the test key is added as admin ``test`` with ``skiff ssh-keys:add``."""
    authorized_keys = tmp_path / "authorized_keys"
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(authorized_keys))
    env = {"SKIFF_ROOT": str(skiff_root), "SKIFF_AUTHORIZED_KEYS": str(authorized_keys), **sshd_skiff_env}
    added = add_key(TEST_KEY_NAME, sshd_client_key.with_suffix(".pub"), env)
    if added.exit_code != 0:
        raise RuntimeError(f"skiff ssh-keys:add failed: {added.output}")
    server = sshd_factory(authorized_keys, env, tmp_path / "sshd")
    yield server
    server.stop()
