"""Fixtures for the letsencrypt tests: Pebble (Let's Encrypt's ACME test server) and a test DNS.

``pebble`` starts Debian's ``pebble`` on loopback ports of its own, its HTTPS
listener on a certificate made here, ``httpPort`` pointed at the private
nginx's HTTP port (so nginx answers every HTTP-01 challenge), real validation
(``PEBBLE_VA_NOSLEEP=1``; never ``PEBBLE_VA_ALWAYS_VALID``) and short-lived
certificates. Pebble resolves names through ``-dnsserver``: ``test_dns``, a
tiny DNS answerer on 127.0.0.1 that says 127.0.0.1 for the names in
``resolvable`` and NXDOMAIN for every other name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skiff.testing.nginx import free_port

VALIDITY = 2 * 3600  # seconds: Pebble's certificates live two hours here


@dataclass
class TestDNS:
    """A DNS answerer on 127.0.0.1 (UDP): A 127.0.0.1 for ``resolvable`` names, NXDOMAIN otherwise."""

    resolvable: set[str] = field(default_factory=set)
    port: int = 0
    queries: list[tuple[str, int]] = field(default_factory=list)

    def answer(self, query: bytes) -> bytes:
        (ident,) = struct.unpack("!H", query[:2])
        labels, offset = [], 12
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode("ascii").lower())
            offset += 1 + length
        qtype, _qclass = struct.unpack("!HH", query[offset + 1 : offset + 5])
        question = query[12 : offset + 5]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        if name not in self.resolvable:
            return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = b""
        if qtype == 1:  # A; every other type: no record (NOERROR, empty)
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
        return struct.pack("!HHHHHH", ident, 0x8180, 1, 1 if answers else 0, 0, 0) + question + answers


@pytest.fixture
def test_dns() -> Iterator[TestDNS]:
    dns = TestDNS()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            try:
                sock.sendto(dns.answer(data), self.client_address)
            except (IndexError, struct.error, UnicodeDecodeError):
                pass

    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    dns.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield dns
    server.shutdown()
    server.server_close()


@dataclass
class Pebble:
    directory: str  # the ACME directory URL
    management: str  # https://127.0.0.1:PORT of the management interface
    listener_ca: Path  # the certificate of Pebble's own HTTPS listeners
    root: Path  # Pebble's issuing root (fetched once it runs): what the test trusts
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> bytes:
        import requests

        response = requests.get(self.management + path, verify=str(self.listener_ca), timeout=10)
        response.raise_for_status()
        return response.content

    def status(self, serial: str) -> str:
        """Valid or Revoked: the status of the certificate with this hex serial."""
        return str(json.loads(self.get(f"/cert-status-by-serial/{serial}"))["Status"])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def pebble(private_nginx, test_dns, tmp_path, monkeypatch) -> Iterator[Pebble]:
    binary = shutil.which("pebble") or "/usr/bin/pebble"
    if not os.path.exists(binary):
        pytest.skip("pebble is not installed (scripts/system-deps.sh --test)")
    work = tmp_path / "pebble"
    work.mkdir()
    made = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
            "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
            "-subj", "/CN=pebble listener (skiff tests)", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    acme_port, management_port = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(work / "cert.pem"),
            "privateKey": str(work / "key.pem"),
            "httpPort": private_nginx.http_port,  # every HTTP-01 validation goes to the test's nginx
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": VALIDITY,
        }
    }
    (work / "config.json").write_text(json.dumps(config))
    env = dict(
        os.environ,
        PEBBLE_VA_NOSLEEP="1",  # validate at once (real validation: PEBBLE_VA_ALWAYS_VALID is never set)
        PEBBLE_WFE_NONCEREJECT="0",  # no random badNonce answers
        PEBBLE_AUTHZREUSE="0",  # every order validates again: each one shows in nginx's access log
    )
    env.pop("PEBBLE_VA_ALWAYS_VALID", None)
    log = work / "pebble.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "-config", str(work / "config.json"), "-dnsserver", f"127.0.0.1:{test_dns.port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    try:
        deadline = time.monotonic() + 20
        while not (_listening(acme_port) and _listening(management_port)):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"pebble did not come up: {log.read_text()[-1000:]}"
            time.sleep(0.05)
        instance = Pebble(
            directory=f"https://127.0.0.1:{acme_port}/dir",
            management=f"https://127.0.0.1:{management_port}",
            listener_ca=work / "cert.pem",
            root=work / "root.pem",
            process=process,
            log=log,
        )
        instance.root.write_bytes(instance.get("/roots/0"))
        # skiff's ACME client (requests) trusts Pebble's listener; nothing trusts Pebble's root but the test
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(instance.listener_ca))
        yield instance
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
