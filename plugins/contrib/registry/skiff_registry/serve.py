"""A registry Skiff runs itself for a cluster: Debian's ``docker-registry`` with TLS and htpasswd.

Everything lives in ``SKIFF_ROOT/registry/serve`` (0700): its own CA (``ca.crt``; nodes trust
it as ``/etc/docker/certs.d/HOST:PORT/ca.crt`` in their engines' own config), the server's
certificate for the address it listens on, an htpasswd file with one generated account
(bcrypt, the only scheme the registry accepts), the registry's config and its storage. The
password is generated here and goes straight to the credentials file (0600): it is never an
argument, printed or logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from skiff.errors import SkiffError

from . import credentials

BINARY = "docker-registry"
LOOPBACK = "127.0.0.1"  # this host's engine pushes here: docker trusts a loopback registry without a CA
USER = "skiff"
DEFAULT_PORT = 5443
START_TIMEOUT = 20.0


def directory(root: Path) -> Path:
    return Path(root) / "registry" / "serve"


def ca_file(root: Path) -> Path:
    return directory(root) / "ca.crt"


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _certificates(folder: Path, host: str) -> None:
    """A CA (kept across restarts: nodes trust it) and a certificate for ``host`` (and loopback) signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    pem = serialization.Encoding.PEM
    plain = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    ca_path, ca_key_path = folder / "ca.crt", folder / "ca.key"
    if ca_path.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Skiff registry CA {secrets.token_hex(4)}")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _private(ca_key_path, ca_key.private_bytes(pem, pkcs8, plain))
        ca_path.write_bytes(ca.public_bytes(pem))
        ca_path.chmod(0o644)
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    loopback = x509.IPAddress(ipaddress.ip_address(LOOPBACK))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([alt, loopback]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _private(folder / "server.key", key.private_bytes(pem, pkcs8, plain))
    (folder / "server.crt").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))


def _config(folder: Path, address: str) -> str:
    """The registry's YAML config (every value is Skiff's own path or a checked address)."""
    return "\n".join(
        (
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {folder / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {address}",
            "  tls:",
            f"    certificate: {folder / 'server.crt'}",
            f"    key: {folder / 'server.key'}",
            "auth:",
            "  htpasswd:",
            "    realm: skiff-registry",
            f"    path: {folder / 'htpasswd'}",
            "",
        )
    )


def running_pids(root: Path) -> list[int]:
    """The pids of the registry processes this Skiff started that still run."""
    try:
        listed = [int(word) for word in (directory(root) / "registry.pid").read_text().split()]
    except (OSError, ValueError):
        return []
    found = []
    for pid in listed:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(BINARY.encode()):
            found.append(pid)
    return found


def running_pid(root: Path) -> int | None:
    """The first running registry process (``None``: none runs)."""
    pids = running_pids(root)
    return pids[0] if pids else None


def _answers(host: str, port: int, ca: Path) -> bool:
    """Whether the registry answers ``/v2/`` over TLS verified by ``ca`` (401: it wants the password)."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection((host, port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            return tls.recv(64).split(b" ")[1:2] == [b"401"]
    except (OSError, ssl.SSLError, IndexError):
        return False


def _launch(binary: str, folder: Path, name: str, address: str) -> subprocess.Popen[bytes]:
    config = folder / f"{name}.yml"
    _private(config, _config(folder, address).encode())
    return _spawn(binary, folder, config)


def _spawn(binary: str, folder: Path, config: Path) -> subprocess.Popen[bytes]:
    log_path = folder / "registry.log"
    with open(log_path, "ab") as log:
        os.chmod(log_path, 0o600)
        return subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )


def start(root: Path, host: str, port: int) -> tuple[str, str]:
    """Start (or restart) the registry on ``host:port`` and on ``127.0.0.1:port`` (one storage).

    Stores its account's credentials for ``host:port``; returns ``(HOST:PORT, 127.0.0.1:PORT)``:
    what nodes pull from, and where this host's engine pushes.
    """
    import bcrypt

    binary = shutil.which(BINARY)
    if binary is None:
        raise SkiffError(f"{BINARY} is not installed (apt-get install docker-registry)")
    stop(root)
    folder = directory(root)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    (folder / "data").mkdir(exist_ok=True, mode=0o700)
    _certificates(folder, host)
    (folder / BOOT_MARKER).touch(mode=0o600)
    password = secrets.token_urlsafe(24)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10))
    _private(folder / "htpasswd", f"{USER}:".encode() + hashed + b"\n")
    server, local = f"{host}:{port}", f"{LOOPBACK}:{port}"
    processes = [_launch(binary, folder, name, address) for name, address in zip(CONFIGS, (server, local))]
    (folder / "registry.pid").write_text(" ".join(str(p.pid) for p in processes) + "\n")
    try:
        _wait_answering(root, processes, [server, local])
    except SkiffError:
        stop(root, forget=True)  # nothing half made for ps:restore to start
        raise
    credentials.store(root, server, USER, password)
    return server, local


CONFIGS = ("cluster", "loopback")  # one process per address: the cluster's, then 127.0.0.1's
BOOT_MARKER = "restored-at-boot"  # its configs mean "start it at boot" (this version on)


def resume(root: Path) -> str | None:
    """Start the registry again as it was served (after a reboot: ``ps:restore``); what was done.

    Its configs, certificate and account stay from ``registry:serve`` (the password too: the
    services of swarm apps carry the credentials their tasks pull with), so nothing is made
    anew. ``None``: nothing to do (never served, stopped by ``registry:serve --stop``, or
    already running)."""
    folder = directory(root)
    configs = [folder / f"{name}.yml" for name in CONFIGS]
    if not all(path.is_file() for path in configs) or running_pids(root):
        return None
    binary = shutil.which(BINARY)
    if binary is None:
        raise SkiffError(f"the registry Skiff serves cannot start again: {BINARY} is not installed")
    addresses = [_listen_address(path) for path in configs]
    processes = [_spawn(binary, folder, path) for path in configs]
    (folder / "registry.pid").write_text(" ".join(str(p.pid) for p in processes) + "\n")
    _wait_answering(root, processes, addresses)
    return f"registry started again on {', '.join(addresses)}"


def forget_stopped(root: Path) -> bool:
    """``state:migrate`` from a version whose ``registry:serve --stop`` kept the configs (which
    now mean "start it at boot"): a registry that does not run now was stopped (by ``--stop``
    or a reboot, after which that version did not start it either), so its configs go and it
    stays stopped as before. Once: the marker ``restored-at-boot`` (also written by
    :func:`start`) says the configs are this version's. Whether there was anything to forget."""
    folder = directory(root)
    marker = folder / BOOT_MARKER
    if marker.exists() or not folder.is_dir():
        return False  # written by this version: the configs mean what they say
    marker.touch(mode=0o600)
    configs = [folder / f"{name}.yml" for name in CONFIGS]
    if not any(path.exists() for path in configs) or running_pids(root):
        return False
    for path in configs:
        path.unlink(missing_ok=True)
    return True


def _listen_address(config: Path) -> str:
    """``HOST:PORT`` of a config Skiff wrote (``  addr: HOST:PORT``)."""
    for line in config.read_text().splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "addr" and value:
            return value
    raise SkiffError(f"{config} names no address: run registry:serve again")


def _wait_answering(root: Path, processes: list[subprocess.Popen[bytes]], addresses: list[str]) -> None:
    folder = directory(root)
    deadline = time.monotonic() + START_TIMEOUT
    for address in addresses:
        host, _, port = address.rpartition(":")
        while not _answers(host, int(port), folder / "ca.crt"):
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                stop(root)
                tail = " ".join((folder / "registry.log").read_text(errors="replace").split()[-30:])
                raise SkiffError(f"the registry did not start on {address}: {tail or 'no answer'}")
            time.sleep(0.2)


def stop(root: Path, forget: bool = False) -> bool:
    """Stop the registry this Skiff started; whether one was running. ``forget``
    (``registry:serve --stop``): its configs go too, so ``ps:restore`` leaves it stopped."""
    if forget:
        for name in CONFIGS:
            (directory(root) / f"{name}.yml").unlink(missing_ok=True)
    pids = running_pids(root)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running_pids(root) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)
    for pid in running_pids(root):
        os.kill(pid, signal.SIGKILL)
    return bool(pids)
