"""A private Docker engine for tests that need an empty one (the fresh-install path).

:func:`start_private_engine` starts a second ``dockerd`` beside the machine's own: its own
socket, data root, exec root and pid file in a temp dir, an empty image store, and its own
bridge (``skfNNNN``, an address range the machine's engine does not use). It does not touch
the machine's engine or its iptables chains (``--iptables=false``); the few rules its
containers need to reach out (masquerade, forward) are added for its range only and removed
by :meth:`PrivateEngine.stop`, which also stops its containers and deletes its files.
Published ports work as usual on 127.0.0.1 (docker-proxy).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The address range of private engines (bridge and user-defined networks).
RANGE = "10.212.0.0/15"
BRIDGE_CIDR = "10.212.255.1/24"
POOL = "base=10.213.0.0/16,size=24"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60)


@dataclass
class PrivateEngine:
    directory: Path
    bridge: str
    process: subprocess.Popen[bytes]
    rules: list[list[str]] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args], capture_output=True, text=True, check=False, timeout=120
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            for ident in self.docker("ps", "-aq").stdout.split():
                self.docker("rm", "-f", ident)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        for rule in reversed(self.rules):
            _run("iptables", *[("-D" if part in ("-I", "-A") else part) for part in rule])
        self.rules.clear()
        _run("ip", "link", "del", self.bridge)
        _unmount_below(self.directory)
        shutil.rmtree(self.directory, ignore_errors=True)


def _unmount_below(directory: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(directory) + "/")), reverse=True):
        _run("umount", "-l", mount)


def _add_rule(engine: PrivateEngine, *rule: str) -> None:
    result = _run("iptables", *rule)
    if result.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(rule)}: {result.stderr.strip()}")
    engine.rules.append(list(rule))


def start_private_engine(timeout: float = 60) -> PrivateEngine:
    """Start an empty dockerd; the caller must :meth:`~PrivateEngine.stop` it."""
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd is not installed (make deps)")
    # a short path: unix socket paths are limited to 108 bytes
    directory = Path(tempfile.mkdtemp(prefix="skf-engine-", dir="/tmp"))
    os.chmod(directory, 0o755)  # the service account reaches the socket (group docker)
    bridge = "skf" + secrets.token_hex(2)
    for args in (
        ("ip", "link", "add", bridge, "type", "bridge"),
        ("ip", "addr", "add", BRIDGE_CIDR, "dev", bridge),
        ("ip", "link", "set", bridge, "up"),
    ):
        result = _run(*args)
        if result.returncode != 0:
            _run("ip", "link", "del", bridge)
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    command = [
        "dockerd",
        "--data-root",
        str(directory / "data"),
        "--exec-root",
        str(directory / "exec"),
        "-H",
        f"unix://{directory / 'docker.sock'}",
        "--pidfile",
        str(directory / "docker.pid"),
        "--bridge",
        bridge,
        "--iptables=false",
        "--ip-masq=false",
        "--default-address-pool",
        POOL,
        "--storage-driver",
        "overlay2",
        "--group",
        "docker",
    ]
    log = open(directory / "dockerd.log", "w")
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    engine = PrivateEngine(directory, bridge, process)
    try:
        _add_rule(engine, "-t", "nat", "-I", "POSTROUTING", "-s", RANGE, "!", "-d", RANGE, "-j", "MASQUERADE")
        _add_rule(engine, "-I", "FORWARD", "-s", RANGE, "-j", "ACCEPT")
        _add_rule(engine, "-I", "FORWARD", "-d", RANGE, "-j", "ACCEPT")
        _wait_until_up(engine, timeout)
    except BaseException:
        engine.stop()
        raise
    return engine


def _wait_until_up(engine: PrivateEngine, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise RuntimeError(f"dockerd exited: {engine.log.read_text()[-1500:]}")
        if engine.socket.exists() and engine.docker("info", "--format", "{{.ID}}").returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer in {timeout:.0f}s: {engine.log.read_text()[-1500:]}")


def engine_images(engine: PrivateEngine) -> list[str]:
    result = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    return result.stdout.split()


__all__ = ["PrivateEngine", "start_private_engine", "engine_images", "RANGE"]
