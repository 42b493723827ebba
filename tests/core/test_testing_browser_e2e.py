"""skiff.testing.browser: a real headless Chromium against a page this test serves on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from skiff.testing.browser import CHROMIUM_FLAGS, chromium_options, wait_for

pytestmark = pytest.mark.e2e

PAGE = b"""<!doctype html>
<html><head><title>fixture page</title></head>
<body><p id="static">served by the test</p><p id="late"></p>
<script>setTimeout(function () { document.getElementById("late").textContent = "ran " + location.host; }, 200);</script>
</body></html>
"""


@pytest.fixture
def page_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server answering PAGE; yields its port and the Host headers it saw."""
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            body = PAGE if self.path == "/" else b"not here"
            self.send_response(200 if self.path == "/" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def test_the_browser_renders_a_loopback_page_and_runs_its_script(browser, page_server):
    port, hosts = page_server
    browser.get(f"http://127.0.0.1:{port}/")
    assert browser.title == "fixture page"
    assert browser.find_element("css selector", "#static").text == "served by the test"
    late = wait_for(lambda: browser.find_element("css selector", "#late").text, what="the page's script")
    assert late == f"ran 127.0.0.1:{port}"
    assert browser.execute_script("return navigator.webdriver") is True
    assert hosts[0] == f"127.0.0.1:{port}"


def test_host_rules_map_a_name_to_loopback_without_dns(browser_factory, page_server):
    port, hosts = page_server
    driver = browser_factory(host_rules={"dashboard.test": "127.0.0.1"})
    driver.get(f"http://dashboard.test:{port}/")
    assert driver.find_element("css selector", "#static").text == "served by the test"
    assert hosts[-1] == f"dashboard.test:{port}"  # the name reached the server as the Host header


def test_each_browser_gets_its_own_profile_and_quiet_flags(tmp_path):
    args = chromium_options(tmp_path / "p", {"a.test": "127.0.0.1", "b.test": "127.0.0.1"})
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"):
        assert flag in CHROMIUM_FLAGS and flag in args
    for flag in ("--disable-background-networking", "--disable-component-update", "--disable-sync"):
        assert flag in args
    assert f"--user-data-dir={tmp_path / 'p'}" in args
    assert "--host-resolver-rules=MAP a.test 127.0.0.1, MAP b.test 127.0.0.1" in args
