"""End to end: a real ``skiff dashboard:serve`` behind the real nginx vhost, a real app on the engine.

One pass: an admin enables the dashboard over SSH (nginx gets its site), the test starts
the server as ``make install``'s service would, logs in through a ``dashboard:login`` link
fetched with urllib through nginx, sees the app list and the app page, scales ``web=2``
(the second container runs), reads a log line that arrives live on the stream (nginx does
not buffer it), rolls back to v1 (nginx serves the old page), and checks that a deployer
key's session neither lists nor acts on another app, that a reused link is refused, and that
the actions are in the event log with the keys' names.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from skiff.executable import skiff_executable
from skiff.testing.docker import new_app_name
from skiff.testing.nginx import self_signed
from skiff.testing.sshd import add_key, commit_files, git_push, init_repo, make_key

pytestmark = pytest.mark.e2e

NULL = Path(__file__).resolve().parents[4] / "tests" / "apps" / "null"
GLOBAL = "skiff.test"
DOMAIN = f"dashboard.{GLOBAL}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


class Browser:
    """urllib-level requests through nginx with the dashboard's Host header and one cookie jar."""

    def __init__(self, port: int):
        self.port, self.cookie = port, ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None, host: str = DOMAIN):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": host}
        if self.cookie:
            headers["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        cookie = response.getheader("Set-Cookie") or ""
        if cookie.startswith("skiff_session="):
            self.cookie = cookie.split(";", 1)[0]
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def login(self, link: str):
        path = urllib.parse.urlsplit(link).path
        return self.request("GET", path)

    def csrf(self, path: str = "/") -> str:
        status, _, text = self.request("GET", path)
        assert status == 200, text
        return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def wait_for(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


@pytest.fixture
def dashboard_port() -> int:
    return free_port()


@pytest.fixture
def dashboard_server(skiff_root, private_nginx, dashboard_port, tmp_path):
    """``skiff dashboard:serve --service`` as make install's unit runs it (it serves once enabled)."""
    log = tmp_path / "dashboard.log"
    env = {**os.environ, **private_nginx.env, "SKIFF_ROOT": str(skiff_root)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [skiff_executable(), "dashboard:serve", "--host", "127.0.0.1", "--port", str(dashboard_port), "--service"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    yield process, log
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def read_stream_until(port: int, path: str, cookie: str, needle: str, timeout: float, trigger) -> list[str]:
    """Open the SSE stream through nginx, call ``trigger()``, return the data lines up to one with ``needle``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    request = f"GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    sock.sendall(request.encode())
    buffer, lines, deadline, triggered = b"", [], time.monotonic() + timeout, False
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            assert chunk, f"the stream ended: {buffer[-500:]!r}"
            buffer += chunk
            if not triggered and b"\r\n\r\n" in buffer:
                head = buffer.split(b"\r\n\r\n", 1)[0].decode()
                assert head.startswith("HTTP/1.1 200") and "text/event-stream" in head, head
                trigger()
                triggered = True
            lines = [line[6:] for line in buffer.decode(errors="replace").splitlines() if line.startswith("data: ")]
            if any(needle in line for line in lines):
                return lines
        raise AssertionError(f"no {needle!r} on the stream within {timeout}s: {lines[-5:]}")
    finally:
        sock.close()


def test_the_dashboard_behind_nginx_logs_in_shows_scales_streams_and_rolls_back(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, dashboard_server, dashboard_port, tmp_path
):
    process, log = dashboard_server
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("dash"))
    other = docker_cleanup.app(new_app_name("dasho"))
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in NULL.iterdir() if p.is_file()}
    repo = init_repo(tmp_path / app, {**files, "index.html": "<h1>first</h1>\n"})
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    commit_files(repo, {"index.html": "<h1>second</h1>\n"}, "second")
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert sshd.ssh(["apps:create", other]).exit_code == 0
    assert sshd.ssh(["config:set", app, "API_TOKEN=tok-123"]).exit_code == 0  # v3

    # off until enabled: no login links, and the service does not listen
    assert "the dashboard is off" in sshd.ssh(["dashboard:login"]).stderr
    time.sleep(1)
    assert not _answers(dashboard_port) and process.poll() is None
    assert sshd.ssh(["dashboard:set", "--global", "port", str(dashboard_port)]).exit_code == 0
    enabled = sshd.ssh(["dashboard:enable"])
    assert enabled.exit_code == 0, enabled.output
    assert f"http://{DOMAIN}" in enabled.stdout
    site = (Path(os.environ["SKIFF_ROOT"]) / "nginx" / "conf.d" / "site-dashboard.conf").read_text()
    assert f"server_name {DOMAIN};" in site and "proxy_buffering off;" in site
    wait_for(lambda: _answers(dashboard_port), 20, "the dashboard server")

    # log in with a one-time link through nginx
    made = sshd.ssh(["dashboard:login"])
    assert made.exit_code == 0, made.output
    link = made.stdout.strip()
    assert re.fullmatch(rf"http://{re.escape(DOMAIN)}/login/[A-Za-z0-9_-]+", link), made.stdout
    admin = Browser(private_nginx.http_port)
    status, headers, _ = admin.login(link)
    assert status == 303 and headers["location"] == "/" and admin.cookie
    status, _, text = admin.request("GET", "/")
    assert status == 200 and f'<tr data-app="{app}">' in text and f'<tr data-app="{other}">' in text
    assert '<span id="identity">test (admin)</span>' in text
    row = text[text.index(f'<tr data-app="{app}">') :].split("</tr>", 1)[0]
    assert '<td class="status">running</td>' in row and '<td class="processes">web=1</td>' in row
    assert f"http://{app}.{GLOBAL}" in row
    reused = Browser(private_nginx.http_port)
    status, _, text = reused.login(link)
    assert status == 403 and "this login link has expired or was already used" in text and not reused.cookie

    # the app page: releases, hidden config, domains
    status, _, text = admin.request("GET", f"/apps/{app}")
    assert status == 200 and f"<h1>{app}</h1>" in text
    assert '<tr data-release="3" class="current">' in text and '<tr data-release="1">' in text
    assert "tok-123" not in text and '<tr data-key="API_TOKEN">' in text
    assert f'<tr data-domain="{app}.{GLOBAL}">' in text

    # the deploys' output, kept per build
    status, _, text = admin.request("GET", f"/apps/{app}/builds")
    assert status == 200 and '<tr data-build="1">' in text and '<tr data-build="3">' in text, text
    status, _, text = admin.request("GET", f"/apps/{app}/builds/1")
    assert status == 200 and '<pre id="build-output">' in text and "-----&gt;" in text

    # scale web=2 -> a second container
    token = admin.csrf(f"/apps/{app}")
    status, headers, text = admin.request("POST", f"/apps/{app}/scale", {"csrf_token": token, "web": "2"})
    assert status == 303, text

    def webs() -> list[str]:
        names = [c.name for c in docker_client.containers.list(filters={"name": f"{app}.web."})]
        return sorted(n for n in names if re.fullmatch(rf"{re.escape(app)}\.web\.[0-9]+", n))

    assert webs() == [f"{app}.web.1", f"{app}.web.2"]
    status, _, text = admin.request("GET", f"/apps/{app}")
    assert '<tr data-process="web">' in text and '<td class="count">2</td>' in text

    # a bad scale: 400, nothing changed
    status, _, text = admin.request("POST", f"/apps/{app}/scale", {"csrf_token": token, "web": "-3"})
    assert status == 400 and text.count('<p class="error">') == 1
    assert webs() == [f"{app}.web.1", f"{app}.web.2"]

    # a log line arrives live through nginx
    def hit_app() -> None:
        private_nginx.request("/live-probe", host=f"{app}.{GLOBAL}")

    lines = read_stream_until(
        private_nginx.http_port, f"/apps/{app}/logs/stream", admin.cookie, "/live-probe", 60, hit_app
    )
    assert any(f"{app}[web." in line and "/live-probe" in line for line in lines)

    # reveal a config value (logged), then roll back to v1: nginx serves the first page again
    status, _, text = admin.request("POST", f"/apps/{app}/config/reveal", {"csrf_token": token, "key": "API_TOKEN"})
    assert status == 200 and "<code>tok-123</code>" in text
    status, _, text = admin.request("POST", f"/apps/{app}/rollback", {"csrf_token": token, "version": "1"})
    assert status == 303, text
    served = private_nginx.request("/", host=f"{app}.{GLOBAL}")
    assert served.status == 200 and "first" in served.body

    # a deployer key: sees only its app, a crafted request on the other is 404 and changes nothing
    deployer_key = make_key(tmp_path / "deployer")
    env = {"SKIFF_ROOT": os.environ["SKIFF_ROOT"], "SKIFF_AUTHORIZED_KEYS": os.environ["SKIFF_AUTHORIZED_KEYS"]}
    assert add_key("dep", deployer_key.with_suffix(".pub"), env, role="deployer").exit_code == 0
    assert sshd.ssh(["acl:add", app, "dep"]).exit_code == 0
    dep_link = sshd.for_key(deployer_key).ssh(["dashboard:login"]).stdout.strip()
    dep = Browser(private_nginx.http_port)
    assert dep.login(dep_link)[0] == 303
    status, _, text = dep.request("GET", "/")
    assert f'<tr data-app="{app}">' in text and other not in text and "dep (deployer)" in text
    dep_token = dep.csrf()
    status, _, text = dep.request("POST", f"/apps/{other}/scale", {"csrf_token": dep_token, "web": "1"})
    assert status == 404 and text.count('<p class="error">') == 1
    status, _, text = dep.request("POST", f"/apps/{app}/scale", {"csrf_token": token, "web": "1"})  # admin's token
    assert status == 403
    assert webs() == [f"{app}.web.1", f"{app}.web.2"]

    # the event log names the keys
    out = sshd.ssh(["events", "-n", "300", "--format", "json"])
    assert out.exit_code == 0, out.output
    logged = [json.loads(line) for line in out.stdout.splitlines()]
    done = {(e["key"], e["command"], e["status"]) for e in logged}
    assert ("test", f"ps:scale {app} web=2", 0) in done
    assert ("test", f"config:get {app} API_TOKEN", 0) in done
    assert ("test", f"releases:rollback {app} 1", 0) in done
    assert not [e for e in logged if e["key"] == "dep" and e["command"].startswith("ps:scale")]

    # the stats sampler has drawn the web process's CPU and memory
    def charted() -> str | None:
        text = admin.request("GET", f"/apps/{app}")[2]
        stats = text[text.index('<section id="stats">') :].split("</section>", 1)[0]
        return stats if '<figure data-process="web">' in stats and 'aria-label="CPU ' in stats else None

    stats = wait_for(charted, 40, "a chart with samples")
    assert re.search(r'<polyline class="memory" [^>]*points="[0-9.]+,[0-9.]+', stats)

    # HTTPS: a certificate for the dashboard's domain; links become https://, the cookie Secure
    crt, key = self_signed(tmp_path, DOMAIN)
    added = subprocess.run(
        [skiff_executable(), "dashboard:certs-add", str(crt), str(key)], capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    secure_link = sshd.ssh(["dashboard:login"]).stdout.strip()
    assert secure_link.startswith(f"https://{DOMAIN}/login/")
    redirect = private_nginx.request(urllib.parse.urlsplit(secure_link).path, host=DOMAIN)
    assert redirect.status == 301
    answer = private_nginx.request(
        urllib.parse.urlsplit(secure_link).path, host=DOMAIN, https=True, cafile=str(crt), server_hostname=DOMAIN
    )
    assert answer.status == 303, answer.body
    cookie = answer.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")

    # disabled: the site goes, sessions end, the service stops listening
    assert sshd.ssh(["dashboard:disable"]).exit_code == 0
    wait_for(lambda: not _answers(dashboard_port), 20, "the server to stop listening")
    assert process.poll() is None, log.read_text()
    assert not (Path(os.environ["SKIFF_ROOT"]) / "nginx" / "conf.d" / "site-dashboard.conf").exists()
    assert json.loads(sshd.ssh(["dashboard:report", "--format", "json"]).stdout)["enabled"] is False
