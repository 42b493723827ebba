"""A Docker Swarm cluster on one machine: N engines, each in a network namespace of its own.

For the e2e tests of multi-node plugins (swarm scheduler, registry) and ``make demo-cluster``::

    with cluster.started(3) as c:        # or: c = cluster.start(3) ... c.stop()
        c.manager.client()               # docker SDK client of the manager engine
        c.workers                        # the other nodes, joined to the manager's swarm
        c.host_address                   # this machine's address on the cluster network

Topology (``ID``: four hex digits, ``X``: a free third octet)::

    host netns   skcIDh 10.216.X.1/24 ─┐ veth
    skiff-test-ID-bridge               br0 ── pK veth ── eth0 10.216.X.(10+K)/24 in skiff-test-ID-nodeK

The bridge lives in its own namespace (its forwarding is not the host's firewall's business);
the host reaches every node through one veth pair (nginx to the tasks' host-mode ports, a
registry listening on :attr:`Cluster.host_address`). Nothing routes anywhere else: traffic
stays between these namespaces and this machine.

Each node's ``dockerd`` is started as
``nsenter --net=/var/run/netns/NS unshare --mount --uts --propagation private sh -c 'mount
--bind "$1" /etc/docker; hostname "$2"; ...' sh NODEDIR/etc-docker nodeK-ID dockerd --data-root
... --exec-root ... -H unix://... --pidfile ...`` (``ip netns exec`` remounts /sys and dockerd
loses the cgroup mounts): the private mount namespace gives the node its own ``/etc/docker`` (so
:meth:`Node.trust` puts a registry's CA in the node's ``certs.d``, never the host's), and every
mount dockerd makes dies with it. Its iptables rules live in the node's namespace.

:meth:`Cluster.stop` (also run when :func:`start` fails half way) stops the engines, kills what
is left in the namespaces, deletes the namespaces (and so the veths and the bridge) and the
directory; :meth:`Cluster.leftovers` lists anything of the cluster still on the machine (the
tests assert it is empty). The cluster's description is written to ``DIR/cluster.json`` so that
another process can stop it: ``python -m skiff.testing.cluster up|down|status``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "skiff-test-"
NET = "10.216"  # 10.212.0.0/15 is the private engines' range (skiff.testing.engine)
SWARM_PORT = 2377
START_TIMEOUT = 90.0


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=timeout)


def _must(*args: str) -> None:
    result = _run(*args)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/var/run/netns/{name}").st_ino
    except OSError:
        return None


def pids_in_netns(name: str) -> list[int]:
    """Every process whose network namespace is the named one."""
    inode = _netns_inode(name)
    if inode is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                found.append(int(entry))
        except OSError:
            continue
    return found


@dataclass
class Node:
    """One engine of the cluster."""

    name: str  # node1, node2, ...
    netns: str  # skiff-test-ID-nodeK
    address: str  # its address on the cluster network
    directory: str
    pid: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def socket(self) -> Path:
        return self.path / "d.sock"

    @property
    def base_url(self) -> str:
        """The engine's ``DOCKER_HOST`` (a unix socket: reachable from the host's namespace)."""
        return f"unix://{self.socket}"

    @property
    def etc_docker(self) -> Path:
        """What this node's engine sees as ``/etc/docker``."""
        return self.path / "etc-docker"

    def client(self, timeout: int = 120) -> Any:
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=timeout)

    def nsenter(self, *argv: str) -> list[str]:
        """``argv`` run in this node's network namespace (and only that one)."""
        return ["nsenter", f"--net=/var/run/netns/{self.netns}", "--", *argv]

    def trust(self, server: str, ca_pem: bytes) -> Path:
        """Make this node's engine trust ``ca_pem`` for the registry ``server`` (``HOST:PORT``)."""
        directory = self.etc_docker / "certs.d" / server
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "ca.crt"
        path.write_bytes(ca_pem)
        return path

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{self.pid}").exists() and "zombie" not in _proc_state(self.pid)

    def log(self) -> str:
        try:
            return (self.path / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""


def _proc_state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.lower()
    except OSError:
        return ""
    return ""


@dataclass
class Cluster:
    """N engines, the first the swarm's manager (see the module's docstring)."""

    id: str
    octet: int
    directory: str
    nodes: list[Node] = field(default_factory=list)

    # -- names -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def bridge_netns(self) -> str:
        return f"{PREFIX}{self.id}-bridge"

    @property
    def host_link(self) -> str:
        return f"skc{self.id}h"

    @property
    def subnet(self) -> str:
        return f"{NET}.{self.octet}.0/24"

    @property
    def host_address(self) -> str:
        """This machine's address on the cluster network (where nodes reach the host)."""
        return f"{NET}.{self.octet}.1"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def netns_names(self) -> list[str]:
        return [self.bridge_netns, *(node.netns for node in self.nodes)]

    def save(self) -> None:
        (self.path / "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path | str) -> Cluster:
        data = json.loads((Path(directory) / "cluster.json").read_text())
        nodes = [Node(**node) for node in data.pop("nodes")]
        return cls(**data, nodes=nodes)

    # -- building it -----------------------------------------------------------------------

    def _network(self) -> None:
        bridge = self.bridge_netns
        _must("ip", "netns", "add", bridge)
        _must("ip", "-n", bridge, "link", "set", "lo", "up")
        _must("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
        _must("ip", "-n", bridge, "link", "set", "br0", "up")
        _must("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "uplink", "netns", bridge)
        _must("ip", "-n", bridge, "link", "set", "uplink", "master", "br0", "up")
        _must("ip", "addr", "add", f"{self.host_address}/24", "dev", self.host_link)
        _must("ip", "link", "set", self.host_link, "up")
        for index, node in enumerate(self.nodes, start=1):
            _must("ip", "netns", "add", node.netns)
            _must("ip", "-n", node.netns, "link", "set", "lo", "up")
            port = f"p{index}"
            _must("ip", "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
            _must("ip", "-n", bridge, "link", "set", port, "master", "br0", "up")
            _must("ip", "-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _must("ip", "-n", node.netns, "link", "set", "eth0", "up")

    def _start_engine(self, node: Node) -> None:
        node.path.mkdir(parents=True, exist_ok=True)
        (node.etc_docker / "certs.d").mkdir(parents=True, exist_ok=True)
        (node.etc_docker / "daemon.json").write_text("{}\n")
        # The paths are this module's own (no user input); "$1" is an argument, not interpolated.
        command = node.nsenter(
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            'mount --bind "$1" /etc/docker && hostname "$2" && shift 2 && exec "$@"',
            "sh",
            str(node.etc_docker),
            f"{node.name}-{self.id}",
            "dockerd",
            "--data-root",
            str(node.path / "data"),
            "--exec-root",
            str(node.path / "exec"),
            "-H",
            node.base_url,
            "--pidfile",
            str(node.path / "dockerd.pid"),
            "--storage-driver",
            "overlay2",
            "--log-driver",
            "local",
        )
        with open(node.path / "dockerd.log", "wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        node.pid = process.pid
        self.save()

    def _wait_engine(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if node.socket.exists():
                try:
                    client = node.client(timeout=10)
                    client.ping()
                    client.close()
                    return
                except Exception:
                    pass
            if not node.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd of {node.name} did not start: {node.log()[-1500:]}")
            time.sleep(0.3)

    def _form_swarm(self) -> None:
        manager = self.manager.client()
        manager.swarm.init(advertise_addr=self.manager.address, listen_addr=f"{self.manager.address}:{SWARM_PORT}")
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        for worker in self.workers:
            client = worker.client()
            client.swarm.join(
                remote_addrs=[f"{self.manager.address}:{SWARM_PORT}"],
                join_token=token,
                advertise_addr=worker.address,
                listen_addr=f"{worker.address}:{SWARM_PORT}",
            )
            client.close()
        deadline = time.monotonic() + 60
        while len([n for n in manager.nodes.list() if n.attrs["Status"]["State"] == "ready"]) < len(self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker nodes did not become ready in the swarm")
            time.sleep(0.3)
        manager.close()

    # -- taking it down --------------------------------------------------------------------

    def stop(self) -> None:
        """Remove everything of the cluster from the machine (idempotent; also half-built ones)."""
        for node in self.nodes:
            if node.alive():
                assert node.pid is not None
                os.kill(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + 45
        for node in self.nodes:
            while node.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        for name in self.netns_names():
            for _ in range(20):
                pids = pids_in_netns(name)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
        for node in self.nodes:  # reap our own children
            if node.pid is not None:
                try:
                    os.waitpid(node.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        for name in self.netns_names():
            if _netns_inode(name) is not None:
                _run("ip", "netns", "del", name)
        if _run("ip", "link", "show", self.host_link).returncode == 0:
            _run("ip", "link", "del", self.host_link)
        for mount in sorted(self._mounts(), reverse=True):
            _run("umount", "-l", mount)
        shutil.rmtree(self.path, ignore_errors=True)

    def _mounts(self) -> list[str]:
        prefix = str(self.path) + "/"
        lines = Path("/proc/self/mounts").read_text().splitlines()
        points = [line.split()[1] for line in lines]
        return [point for point in points if point == str(self.path) or point.startswith(prefix)]

    def _processes(self) -> list[tuple[int, str]]:
        """Processes whose command line names the cluster's directory (dockerd, containerd, shims)."""
        marker = str(self.path).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def leftovers(self) -> list[str]:
        """What of this cluster is still on the machine: namespaces, links, processes, mounts, files."""
        found = [f"netns {name}" for name in self.netns_names() if _netns_inode(name) is not None]
        listed = _run("ip", "netns", "list").stdout
        found += [f"netns {line.split()[0]} (listed)" for line in listed.splitlines() if f"{PREFIX}{self.id}-" in line]
        if _run("ip", "link", "show", self.host_link).returncode == 0:
            found.append(f"link {self.host_link}")
        found += [f"dockerd {node.name} (pid {node.pid})" for node in self.nodes if node.alive()]
        found += [f"process {pid}: {line[:80]}" for pid, line in self._processes()]
        found += [f"mount {mount}" for mount in self._mounts()]
        if self.path.exists():
            found.append(f"directory {self.path}")
        return found


def _free_octet() -> int:
    routes = _run("ip", "-4", "route", "show").stdout + _run("ip", "-4", "addr", "show").stdout
    for _ in range(200):
        octet = secrets.randbelow(250) + 1
        if f"{NET}.{octet}." not in routes:
            return octet
    raise RuntimeError(f"no free {NET}.X.0/24 range on this machine")


def preflight() -> str | None:
    """Why a cluster cannot start here (``None``: it can)."""
    if os.geteuid() != 0:
        return "a cluster of network namespaces needs root"
    for tool in ("dockerd", "nsenter", "unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/etc/docker").is_dir():
        return "/etc/docker is missing (the nodes mount their own over it): install docker.io"
    return None


def start(
    nodes: int = 3, directory: Path | str | None = None, timeout: float = START_TIMEOUT, swarm: bool = True
) -> Cluster:
    """Start ``nodes`` engines in their own namespaces and (``swarm``) form a swarm, the first the manager."""
    problem = preflight()
    if problem:
        raise RuntimeError(problem)
    ident = secrets.token_hex(2)
    # short: unix socket paths must stay under 108 bytes
    base = Path(directory) if directory else Path(f"/tmp/skc-{ident}")
    base.mkdir(parents=True, exist_ok=False)
    if directory is None:
        # The engines' data in memory: loading the stack into a node and removing it all at the end
        # cost minutes on disk; a tmpfs (overlay2 runs on it) goes with one umount. On disk if refused.
        _run("mount", "-t", "tmpfs", "-o", "mode=755", "skiff-cluster", str(base))
    base.chmod(0o755)
    cluster = Cluster(ident, _free_octet(), str(base))
    cluster.nodes = [
        Node(f"node{k}", f"{PREFIX}{ident}-node{k}", f"{NET}.{cluster.octet}.{10 + k}", str(base / f"n{k}"))
        for k in range(1, nodes + 1)
    ]
    cluster.save()
    try:
        cluster._network()
        for node in cluster.nodes:
            cluster._start_engine(node)
        errors: list[BaseException] = []

        def wait(node: Node) -> None:
            try:
                cluster._wait_engine(node, timeout)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(node,)) for node in cluster.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        if swarm:
            cluster._form_swarm()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def started(nodes: int = 3, directory: Path | str | None = None, swarm: bool = True) -> Iterator[Cluster]:
    """:func:`start`, and :meth:`Cluster.stop` on the way out (also after a failure)."""
    cluster = start(nodes, directory, swarm=swarm)
    try:
        yield cluster
    finally:
        cluster.stop()


def local_skiff(root: Path | str, engine: str, *args: str, timeout: float = 180) -> str:
    """``skiff ARGS`` as a root shell on the server would run it, on ``engine`` (e.g. the manager's
    ``base_url``), with ``SKIFF_ROOT=root``; must succeed; returns its stdout."""
    env = {**os.environ, "SKIFF_ROOT": str(root), "DOCKER_HOST": engine}
    env.pop("SKIFF_USER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "skiff", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def load_image(source: Any, target: Any, ref: str) -> None:
    """Copy the image ``ref`` from one engine (an SDK client) to another, as ``docker save | docker load``."""
    image = source.images.get(ref)
    target.images.load(b"".join(image.save(named=True)))


USAGE = (
    "usage: python -m skiff.testing.cluster up [--nodes N] [--no-swarm] DIR | down DIR | status DIR\n"
    "       | trust DIR HOST:PORT CA_FILE (every node's engine trusts CA_FILE for that registry)\n"
    "       | url DIR NODE (a node's engine address) | address DIR NODE|host"
)


def main(argv: list[str] | None = None) -> int:
    """The cluster from a shell (``make demo-cluster``): see :data:`USAGE`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("up", "down", "status", "trust", "url", "address"):
        print(USAGE, file=sys.stderr)
        return 2
    action, rest = args[0], args[1:]
    nodes, swarm = 3, True
    while action == "up" and rest[:1] in (["--nodes"], ["--no-swarm"]):
        if rest[0] == "--no-swarm":
            swarm, rest = False, rest[1:]
        elif len(rest) >= 2 and rest[1].isdigit() and 1 <= int(rest[1]) <= 9:
            nodes, rest = int(rest[1]), rest[2:]
        else:
            break
    wanted = {"up": 1, "down": 1, "status": 1, "trust": 3, "url": 2, "address": 2}[action]
    if len(rest) != wanted:
        print(USAGE, file=sys.stderr)
        return 2
    directory = Path(rest[0])
    if action == "up":
        cluster = start(nodes, directory, swarm=swarm)
        print(json.dumps(asdict(cluster), indent=2))
        return 0
    if not (directory / "cluster.json").exists():
        print(f"no cluster in {directory}", file=sys.stderr)
        return 0 if action == "down" else 1
    cluster = Cluster.load(directory)
    if action == "down":
        cluster.stop()
        left = cluster.leftovers()
        for item in left:
            print(f"left behind: {item}", file=sys.stderr)
        return 1 if left else 0
    if action == "trust":
        ca = Path(rest[2]).read_bytes()
        for node in cluster.nodes:
            node.trust(rest[1], ca)
        return 0
    if action in ("url", "address"):
        if action == "address" and rest[1] == "host":
            print(cluster.host_address)
            return 0
        found = [node for node in cluster.nodes if node.name == rest[1]]
        if not found:
            print(f"no node {rest[1]!r} (node1..node{len(cluster.nodes)})", file=sys.stderr)
            return 1
        print(found[0].base_url if action == "url" else found[0].address)
        return 0
    print(json.dumps({**asdict(cluster), "alive": [n.name for n in cluster.nodes if n.alive()]}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
