"""The static pack's file server against a temp dir: dotfiles stay hidden however the path is spelt."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff_buildpacks import static_server

REFUSED = [
    "/.env",
    "/%2Eenv",
    "/%2eenv",
    "/%2F.env",
    "/%2f.env",
    "//.env",
    "///.env",
    "/./.env",
    "/a/../.env",
    "/sub/../.env",
    "/%2e%2e/.env",
    "/sub/.secret",
    "/sub/%2e%73ecret",
    "/sub%2F.secret",
    "/sub/%252esecret",
    "/%252eenv",
    "/%25252eenv",
    "/%252e%2520env",
    "/.git/config",
    "/%2egit/config",
    "/.git%2Fconfig",
    "/%2E%67it/config",
    "/sub%5C.secret",
    "/sub\\.secret",
    "/%5C.env",
    "/.env%00",
    "/index.html%00.env",
    "/%00",
    "/.env?x=1",
    "/.env#frag",
    "/.",
    "/..",
    "/%2e",
    "/%2e%2e",
    "/%0a.env",
    "/sub/%2E%2E/.env",
]
SERVED = {
    "/": "home",
    "/index.html": "home",
    "/sub/page.html": "page",
    "/sub/": "sub index",
    "/sub/%70age.html": "page",
    "//index.html": "home",
    "/index.html?x=.env": "home",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("site")
    (tmp_path / ".env").write_text("SECRET=env\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("SECRET=git\n")
    (tmp_path / ". env").write_text("SECRET=space\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".secret").write_text("SECRET=sub\n")
    (tmp_path / "sub" / "page.html").write_text("page")
    (tmp_path / "sub" / "index.html").write_text("sub index")
    (tmp_path / "index.html").write_text("home")
    return tmp_path


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[int]:
    handler = functools.partial(static_server.Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """Send ``path`` byte for byte (no client-side normalisation); return status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


@pytest.mark.parametrize("path", REFUSED)
def test_dotfiles_are_refused_however_encoded(server: int, path: str) -> None:
    status, body = raw_get(server, path)
    assert status == 404, path
    assert "SECRET" not in body


@pytest.mark.parametrize("path", ["/.env", "/%2F.env", "/sub/%2e%73ecret"])
def test_head_is_refused_too(server: int, path: str) -> None:
    assert raw_get(server, path, "HEAD")[0] == 404


@pytest.mark.parametrize("path, body", sorted(SERVED.items()))
def test_ordinary_files_are_served(server: int, path: str, body: str) -> None:
    assert raw_get(server, path) == (200, body)


def test_directories_are_not_listed(server: int, site: Path) -> None:
    (site / "empty").mkdir()
    assert raw_get(server, "/empty/")[0] == 404


@pytest.mark.parametrize("path", REFUSED)
def test_safe_path_refuses(path: str) -> None:
    assert static_server.safe_path(path) is None


def test_safe_path_normalises() -> None:
    assert static_server.safe_path("//sub///%70age.html?q") == "/sub/page.html"
    assert static_server.safe_path("/sub/") == "/sub/"
    assert static_server.safe_path("/") == "/"
    assert static_server.safe_path("/a%25b") == "/a%b"


def test_a_path_that_keeps_decoding_is_refused() -> None:
    path = "/x%" + "25" * 12 + "2e"
    assert static_server.fully_decoded(path) is None
    assert static_server.safe_path(path) is None
