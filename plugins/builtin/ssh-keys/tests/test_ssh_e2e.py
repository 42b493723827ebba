"""End to end through a real sshd: who gets in, and what a key can (not) do."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skiff.testing.sshd import STUB_ENV, free_port, git_push, init_repo, make_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def sshd_skiff_env():
    return dict(STUB_ENV)


@pytest.fixture
def stranger(tmp_path) -> Path:
    return make_key(tmp_path / "stranger", "stranger")


class Listener:
    """A loopback TCP server that counts connections and greets them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.sendall(b"hello\n")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def test_unknown_key_can_neither_push_nor_run_commands(sshd, stranger, tmp_path, skiff_root):
    other = sshd.for_key(stranger)
    result = other.ssh("apps:list")
    assert result.exit_code == 255 and "Permission denied" in result.stderr
    repo = init_repo(tmp_path / "app", {"a": "a"})
    result = git_push(repo, "intruder", other)
    assert result.exit_code != 0 and "Permission denied" in result.output
    assert not (skiff_root / "repos").exists()
    # the known key works against the same server
    assert sshd.ssh("apps:list").exit_code == 0


def test_a_known_key_gets_no_shell(sshd):
    attempts = (
        ("bash", ()),
        ("sh -c id", ()),
        ("sh", ("-tt",)),
        ("/bin/sh", ()),
        ("ls; id", ()),
        ("ssh-keys:add x", ()),
        ("git-hook app", ()),
    )
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: sshd.ssh(a[0], options=a[1]), attempts))
    for (command, _), result in zip(attempts, results):
        assert result.exit_code != 0, command
        expected = "is not available over SSH" if ":" in command or "hook" in command else "unknown command"
        assert expected in result.output, (command, result.output)
        assert "uid=" not in result.output
    result = sshd.ssh("")
    assert result.exit_code == 0 and "Commands:" in result.stdout and "apps:list" in result.stdout


def test_an_unknown_command_over_ssh_is_named_with_a_suggestion(sshd):
    result = sshd.ssh("apps:lst")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].endswith("unknown command 'apps:lst'; did you mean apps:list?")
    # a near name that only a root shell may run is not suggested over SSH
    result = sshd.ssh("plugin:instal x")
    assert result.exit_code == 1 and "plugin:install" not in result.stderr


def test_a_known_key_gets_no_port_forwarding(sshd, listener):
    # stdio forwarding (-W) asks for a direct-tcpip channel: refused
    result = sshd.ssh("", options=("-W", f"127.0.0.1:{listener.port}"), timeout=30)
    assert result.exit_code != 0 and "forwarding failed" in result.stderr
    assert "hello" not in result.stdout
    # remote forwarding (-R) is refused by the server
    result = sshd.ssh(
        "apps:list",
        options=("-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:{listener.port}"),
    )
    assert result.exit_code != 0 and "forwarding failed" in result.stderr
    # local forwarding (-L): the client listens, the server refuses the channel
    local = free_port()
    proc = subprocess.Popen(
        sshd.ssh_args(("-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{listener.port}")) + [sshd.alias],
        env=sshd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        data = _read_through(local, proc)
    finally:
        proc.terminate()
        proc.communicate(10)
    assert data == b""
    assert listener.accepted == 0


def _read_through(port: int, proc: subprocess.Popen) -> bytes:
    for _ in range(500):
        if proc.poll() is not None:
            raise AssertionError("ssh -L exited early")
        try:
            conn = socket.create_connection(("127.0.0.1", port), 1)
        except OSError:
            time.sleep(0.02)
            continue
        with conn:
            conn.settimeout(10)
            try:
                return conn.recv(100)
            except ConnectionResetError:
                return b""
    raise AssertionError("ssh -L never listened")


def test_commands_over_ssh_and_key_removal(sshd, skiff_root):
    assert sshd.ssh("apps:create web").exit_code == 0
    assert "web" in sshd.ssh("apps:list").stdout
    result = sshd.ssh(["config:set", "--no-restart", "web", "GREETING=hello world; $(id)"])
    assert result.exit_code == 0, result.output
    assert sshd.ssh("config:get web GREETING").stdout == "hello world; $(id)\n"
    # no terminal: destroying needs --force; with one (the key has `pty`), it asks
    result = sshd.ssh("apps:destroy web")
    assert result.exit_code == 1 and "needs confirmation" in result.stderr
    result = sshd.ssh("apps:destroy web", options=("-tt",), input="web\n")
    assert result.exit_code == 0, result.output
    assert "web" not in sshd.ssh("apps:list").stdout
    listed = sshd.ssh("ssh-keys:list")
    assert listed.exit_code == 0 and "test" in listed.stdout
    # removed keys are locked out at once
    removed = subprocess.run(
        [sshd.skiff_env.get("SKIFF_EXECUTABLE") or _skiff(), "ssh-keys:remove", "test"], capture_output=True, text=True
    )
    assert removed.returncode == 0, removed.stderr
    result = sshd.ssh("apps:list")
    assert result.exit_code == 255 and "Permission denied" in result.stderr


def _skiff() -> str:
    from skiff.testing.sshd import skiff_executable

    return skiff_executable()
