"""pytest fixtures: a private nginx and fake HTTP backends, for proxy tests.

``private_nginx``
    a private nginx master (its own prefix, main config, pid file and error
    log in a temp dir) on free 127.0.0.1 ports, including
    ``$SKIFF_ROOT/nginx/conf.d/*.conf`` of the test's ``skiff_root``. The
    ``SKIFF_NGINX_*`` variables point the nginx plugin at it (in-process and
    in child processes). Like a production server it has a default server
    answering 404 for unknown hosts.
``nginx_factory``
    session-scoped: ``nginx_factory(root)`` starts one for another
    ``SKIFF_ROOT`` (end-to-end tests); ``instance.settings`` are the global
    settings to store with ``skiff nginx:set --global KEY VALUE`` when the
    skiff process does not inherit the test's environment (SSH).
``served_skiff_root``
    a ``SKIFF_ROOT`` whose files nginx's workers (``nobody``) can read, as on an
    installed server (0755, not under pytest's 0700 temp dirs): for tests of
    what nginx serves from under it (ACME challenge files). Override
    ``skiff_root`` with it in a test module.
``HostLoad``
    a bounded keep-alive load through nginx that counts failures (see the class).
``http_backend``
    ``http_backend("text")`` starts a threaded HTTP server on a free loopback
    port answering every GET with ``text`` (and the request headers as JSON
    at ``/headers``); returns ``"127.0.0.1:PORT"``.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

MAIN_CONF = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {include};
    server {{
        listen 127.0.0.1:{http_port} default_server;
        return 404;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class PrivateNginx:
    """One private nginx master; ``start()`` / ``stop()``, ``request()``."""

    prefix: Path
    include: str
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    binary: str = field(default_factory=lambda: nginx_binary() or "nginx")
    workers: str = "1"
    #: run the master as this account (as an installed server's service account drives it)
    user: str | None = None

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def settings(self) -> dict[str, str]:
        """Global settings of the nginx plugin (``nginx:set --global KEY VALUE``)."""
        return {
            "bin": self.binary,
            "conf": str(self.conf),
            "prefix": str(self.prefix),
            "pid-file": str(self.pid_file),
            "sudo": "never",
            "http-port": str(self.http_port),
            "https-port": str(self.https_port),
            "listen-address": "127.0.0.1",
            "public-host": "localhost",
        }

    @property
    def env(self) -> dict[str, str]:
        """The same settings as ``SKIFF_NGINX_*`` environment variables."""
        names = {
            "bin": "BIN",
            "conf": "CONF",
            "prefix": "PREFIX",
            "pid-file": "PID",
            "sudo": "SUDO",
            "http-port": "HTTP_PORT",
            "https-port": "HTTPS_PORT",
            "listen-address": "LISTEN",
            "public-host": "PUBLIC_HOST",
        }
        return {f"SKIFF_NGINX_{names[k]}": v for k, v in self.settings.items()}

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self.binary, "-p", str(self.prefix), "-c", str(self.conf), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)

    def start(self) -> PrivateNginx:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            MAIN_CONF.format(prefix=self.prefix, include=self.include, http_port=self.http_port, workers=self.workers)
        )
        if self.user:
            shutil.chown(self.prefix, self.user)
            shutil.chown(self.prefix / "tmp", self.user)
        proc = self._run()
        if proc.returncode != 0:
            raise RuntimeError(f"private nginx did not start: {proc.stderr.strip()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.pid_file.exists() and self._listening():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"private nginx did not come up; {self.error_log.read_text()[-500:]}")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid
        if pid is None:
            return
        self._run("-s", "stop")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)

    def request(
        self,
        path: str = "/",
        host: str | None = None,
        https: bool = False,
        port: int | None = None,
        timeout: float = 10,
        cafile: str | None = None,
        server_hostname: str | None = None,
    ) -> Response:
        """One GET through this nginx (127.0.0.1) with ``Host: host``."""
        return get(
            port or (self.https_port if https else self.http_port), path, host, https, timeout, cafile, server_hostname
        )


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemonized master is reaped by whatever PID 1 is)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def get(
    port: int,
    path: str = "/",
    host: str | None = None,
    https: bool = False,
    timeout: float = 10,
    cafile: str | None = None,
    server_hostname: str | None = None,
) -> Response:
    """One GET to 127.0.0.1:PORT; with ``https`` the TLS server name is ``host`` (SNI)."""
    headers = {"Host": host} if host else {}
    if https:
        context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
        conn: http.client.HTTPConnection = _SNIConnection(
            "127.0.0.1", port, timeout=timeout, context=context, sni=server_hostname or host
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace"))
    finally:
        conn.close()


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an IP address with another TLS server name (SNI and certificate check)."""

    def __init__(
        self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, sni: str | None = None
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls = context
        self._sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._sni or self.host)


def _private_prefix() -> Path:
    path = Path(tempfile.mkdtemp(prefix="skiff-nginx-"))
    os.chmod(path, 0o755)  # workers (nobody) use the temp dirs under it
    return path


def start_nginx(root: Path, workers: str = "1") -> PrivateNginx:
    include = str(Path(root) / "nginx" / "conf.d" / "*.conf")
    return PrivateNginx(_private_prefix(), include, workers=workers).start()


@pytest.fixture
def private_nginx(skiff_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateNginx]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (make deps)")
    instance = start_nginx(skiff_root)
    for key, value in instance.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(instance.prefix, ignore_errors=True)


@pytest.fixture
def served_skiff_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="skiff-root-"))
    os.chmod(root, 0o755)
    monkeypatch.setenv("SKIFF_ROOT", str(root))
    monkeypatch.delenv("SKIFF_USER", raising=False)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def nginx_factory() -> Iterator[Callable[[Path], PrivateNginx]]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (make deps)")
    started: list[PrivateNginx] = []

    def factory(root: Path) -> PrivateNginx:
        instance = start_nginx(root)
        started.append(instance)
        return instance

    yield factory
    for instance in started:
        instance.stop()
        shutil.rmtree(instance.prefix, ignore_errors=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    text = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/headers":
            body = json.dumps({k: v for k, v in self.headers.items()}).encode()
        else:
            body = self.text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_backend() -> Iterator[Callable[[str], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(text: str) -> str:
        handler = type("Handler", (_Handler,), {"text": text})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class HostLoad:
    """A steady, bounded load through nginx: ``threads`` keep-alive clients sending GETs with a Host header.

    Like a browser, a client whose *reused* keep-alive connection is closed
    before any byte of the answer arrives (nginx retiring an idle connection
    at a reload) sends the request again on a new connection; that is counted
    in ``stale_retries``, not as a failure. Every other error and every
    non-200 answer is a failure. ``bodies`` counts each distinct answer.
    """

    def __init__(
        self, port: int, host: str, threads: int = 4, limit: float = 300.0, pause: float = 0.002, path: str = "/"
    ):
        self.port, self.host, self.threads, self.limit, self.pause, self.path = port, host, threads, limit, pause, path
        self.ok = 0
        self.stale_retries = 0
        self.failures: list[str] = []
        self.bodies: dict[str, int] = {}
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> HostLoad:
        deadline = time.monotonic() + self.limit
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, args=(deadline,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _record(self, failure: str | None = None, body: str | None = None, stale: bool = False) -> None:
        with self._lock:
            if stale:
                self.stale_retries += 1
            elif failure is not None:
                self.failures.append(failure)
            else:
                self.ok += 1
                self.bodies[body or ""] = self.bodies.get(body or "", 0) + 1

    def _run(self, deadline: float) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                conn.request("GET", self.path, headers={"Host": self.host})
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                self._record(stale=True) if reused else self._record(f"{type(exc).__name__}: {exc}")
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = None
                self._record(f"{type(exc).__name__}: {exc}")
                continue
            if response.will_close:
                conn.close()
                conn = None
            if response.status == 200:
                self._record(body=body.strip())
            else:
                self._record(f"HTTP {response.status}: {body.strip()[:80]}")
            time.sleep(self.pause)
        if conn is not None:
            conn.close()


def self_signed(directory: Path, name: str, days: int = 2) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (CN and subjectAltName), made by openssl:
    ``(DIRECTORY/NAME.crt, DIRECTORY/NAME.key)``, for tests that hand nginx a certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj", f"/CN={name}"]
        + ["-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
    )
    return crt, key
