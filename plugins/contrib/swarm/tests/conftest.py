"""Fixtures of the swarm plugin's tests: one Docker engine in a network namespace of its own,
a single-node swarm manager.

:func:`start_netns_engine` creates the namespace ``skfswNNNN`` with a veth pair (host side
``10.231.N.1/30``, namespace side ``10.231.N.2/30``), starts ``dockerd`` in it with
``nsenter --net=`` (``ip netns exec`` remounts /sys and dockerd then fails), and runs
``docker swarm init`` there. Its iptables rules live in the namespace; the machine's engine
and its config are never touched. :meth:`NetnsEngine.stop` removes the swarm, the engine,
its data and the namespace.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=timeout)


@dataclass
class NetnsEngine:
    name: str
    directory: Path
    address: str  # the engine's (node's) address in its namespace
    host_address: str  # the host's end of the veth pair
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value of this engine (a unix socket: reachable from the host's namespace)."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _run("docker", "-H", self.host, *args, timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.docker("swarm", "leave", "--force")
            for ident in self.docker("ps", "-aq").stdout.split():
                self.docker("rm", "-f", ident)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        _run("ip", "netns", "del", self.name)
        _run("ip", "link", "del", f"{self.name}h")
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.directory) + "/")), reverse=True):
            _run("umount", "-l", mount)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_netns_engine(timeout: float = 90) -> NetnsEngine:
    """A fresh engine in its own namespace, initialised as a single-node swarm."""
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd is not installed")
    tag = secrets.token_hex(2)
    net = int(tag, 16) % 250 + 1
    name = f"skfsw{tag}"
    directory = Path(tempfile.mkdtemp(prefix="skf-sw-", dir="/tmp"))  # short: unix socket paths <= 108 bytes
    directory.chmod(0o755)
    engine = NetnsEngine(name, directory, f"10.231.{net}.2", f"10.231.{net}.1")
    try:
        for args in (
            ("ip", "netns", "add", name),
            ("ip", "link", "add", f"{name}h", "type", "veth", "peer", "name", f"{name}n"),
            ("ip", "link", "set", f"{name}n", "netns", name),
            ("ip", "addr", "add", f"{engine.host_address}/30", "dev", f"{name}h"),
            ("ip", "link", "set", f"{name}h", "up"),
            ("ip", "-n", name, "addr", "add", f"{engine.address}/30", "dev", f"{name}n"),
            ("ip", "-n", name, "link", "set", f"{name}n", "up"),
            ("ip", "-n", name, "link", "set", "lo", "up"),
            ("ip", "-n", name, "route", "add", "default", "via", engine.host_address),
        ):
            result = _run(*args)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
        command = [
            "nsenter",
            f"--net=/var/run/netns/{name}",
            "dockerd",
            "--data-root",
            str(directory / "data"),
            "--exec-root",
            str(directory / "exec"),
            "-H",
            engine.host,
            "--pidfile",
            str(directory / "docker.pid"),
            "--storage-driver",
            "overlay2",
            "--group",
            "docker",
        ]
        log = open(engine.log, "w")
        engine.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while engine.docker("info", "--format", "{{.ID}}").returncode != 0:
            if engine.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start: {engine.log.read_text()[-1500:]}")
            time.sleep(0.3)
        init = engine.docker("swarm", "init", "--advertise-addr", engine.address)
        if init.returncode != 0:
            raise RuntimeError(f"docker swarm init: {init.stderr.strip()}")
    except BaseException:
        engine.stop()
        raise
    return engine


@pytest.fixture(scope="module")
def swarm_engine() -> Iterator[NetnsEngine]:
    """A single-node swarm on a fresh engine in its own namespace, for the module's tests."""
    engine = start_netns_engine()
    try:
        yield engine
    finally:
        engine.stop()
