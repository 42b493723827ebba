"""Fixtures of the Node.js tests: a fake npm registry on 127.0.0.1, a closed port, a pack Build."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from skiff.output import Output
from skiff_buildpacks.build import Build, Stack

TRIXIE = Stack(image="skiff/stack:trixie", id="sha256:aaa", python="3.13.5", node="20.19.2")


def fake_tgz(files: dict[str, bytes], executable: Collection[str] = ()) -> bytes:
    """A registry tarball of ``files``, plus what a repack must drop: a link out and a ``../`` member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name in executable else 0o644
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/bin/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tf.addfile(link)
        bad = tarfile.TarInfo("package/../../escape")
        bad.size = 1
        tf.addfile(bad, io.BytesIO(b"x"))
    return buf.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def dist(data: bytes) -> dict[str, str]:
    """A packument's ``dist`` checksums of a tarball."""
    return {"integrity": sri(data), "shasum": hashlib.sha1(data).hexdigest()}


@pytest.fixture
def npm_fakes() -> SimpleNamespace:
    """``tgz(files, executable)``, ``sri(data)`` and ``dist(data)`` for fake registry releases."""
    return SimpleNamespace(tgz=fake_tgz, sri=sri, dist=dist)


class Served:
    """One fake registry: ``body(path)`` answers each GET (``None``: 404); requests are recorded."""

    def __init__(self, body: Callable[[str], bytes | None]):
        self.requests: list[str] = []
        self.accept: list[str] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                served.requests.append(self.path)
                served.accept.append(self.headers.get("Accept", ""))
                data = body(self.path)
                self.send_response(200 if data is not None else 404)
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve_registry() -> Iterator[Callable[[Callable[[str], bytes | None]], Served]]:
    """``serve_registry(body)`` starts a registry answering ``body(path)``; all stop after the test."""
    started: list[Served] = []

    def start(body: Callable[[str], bytes | None]) -> Served:
        started.append(Served(body))
        return started[-1]

    yield start
    for served in started:
        served.close()


@pytest.fixture
def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the registry unreachable)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def node_build(tmp_path: Path) -> Callable[[Path, str], Build]:
    """``node_build(source, registry_url)``: a Build on trixie whose server cache is ``tmp_path/cache``."""

    def make(source: Path, registry_url: str) -> Build:
        return Build(
            app="demo",
            source=source,
            config={},
            stack=TRIXIE,
            stacks=[TRIXIE],
            output=Output(quiet=True),
            settings={"node-registry": registry_url},
            cache_dir=tmp_path / "cache",
        )

    return make
