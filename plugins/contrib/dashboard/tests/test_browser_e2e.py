"""The dashboard in a real headless Chromium, behind the real nginx, on an app deployed by git push.

One stack for the module (tests/reliability's pattern): a SKIFF_ROOT, a private nginx, a private
sshd with an admin key and a deployer key (``bob``), a small Dockerfile app pushed over SSH (it
answers its ``answer.txt`` and prints ``/log?line=X`` to stdout), a second app bob may not see,
and ``skiff dashboard:serve`` on a free loopback port behind nginx's dashboard vhost. The browser
resolves the dashboard's name to 127.0.0.1 with ``--host-resolver-rules`` (no DNS) and reaches
nginx on its test port. Login links come from ``dashboard:login`` run over the real SSH as the key.
Selectors are those of docs/dashboard.md (the dashboard contract).

``SKIFF_UPDATE_SCREENSHOTS=1`` writes the screenshots of docs/dashboard.md (docs/dashboard/*.png).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from skiff.state import State
from skiff.testing.browser import require_chromium, start_chromium, wait_for
from skiff.testing.docker import DockerCleanup, new_app_name
from skiff.testing.nginx import PrivateNginx, free_port, get
from skiff.testing.sshd import CommandResult, SshServer, add_key, commit_files, git_push, init_repo, make_key
from skiff.testing.sshd import skiff_executable as skiff_bin

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[4]
SCREENSHOTS = REPO_ROOT / "docs" / "dashboard"
DOMAIN = "dash.test"  # the apps' global domain: app.dash.test
DASHBOARD = "dashboard.dash.test"  # the dashboard's default name, dashboard.<global domain>
BY_CSS = "css selector"
LOG_PREFIX = "dashboard-test-line"
SECRET = "postgres://app:hunter2@db.internal/app"  # a config value the pages hide
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, whatever the env says

DOCKERFILE = """\
FROM skiff/stack:trixie
WORKDIR /srv
COPY server.py answer.txt /srv/
USER app
EXPOSE 8080
CMD ["python3", "-u", "/srv/server.py"]
"""

SERVER = """\
import http.server
import os
import urllib.parse

ANSWER = open("/srv/answer.txt").read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/log":
            line = urllib.parse.parse_qs(url.query).get("line", [""])[0]
            print(f"%s {line}", flush=True)
        body = (ANSWER + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
""".replace("%s", LOG_PREFIX)


def app_files(answer: str) -> dict[str, str]:
    return {"Dockerfile": DOCKERFILE, "server.py": SERVER, "answer.txt": answer + "\n"}


@dataclass
class DashStack:
    root: Path
    nginx: PrivateNginx
    sshd: SshServer
    bob: SshServer
    env: dict[str, str]
    docker: Any
    app: str
    other: str
    repo: Path
    port: int
    server: subprocess.Popen[bytes] | None = None
    versions: dict[str, int] = field(default_factory=dict)

    def skiff(self, *args: str, timeout: float = 300) -> CommandResult:
        proc = subprocess.run(
            [skiff_bin(), *args], capture_output=True, text=True, env={**os.environ, **self.env}, timeout=timeout
        )
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def answer(self, app: str, path: str = "/") -> tuple[int, str]:
        """One GET of the app through nginx with urllib (Host: the app's name, no DNS)."""
        url = f"http://127.0.0.1:{self.nginx.http_port}{path}"
        request = urllib.request.Request(url, headers={"Host": f"{app}.{DOMAIN}"})
        try:
            with NO_PROXY.open(request, timeout=10) as response:
                return response.status, response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace").strip()

    def wait_answer(self, app: str, text: str, timeout: float = 90) -> None:
        wait_for(lambda: self.answer(app) == (200, text), timeout, 0.2, what=f"{app} answering {text!r} via nginx")

    def base(self) -> str:
        return f"http://{DASHBOARD}:{self.nginx.http_port}"

    def login_link(self, server: SshServer) -> str:
        """``dashboard:login`` over the real SSH as that key; the link, pointed at the test's nginx port."""
        result = server.ssh("dashboard:login")
        assert result.exit_code == 0, result.output
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1, result.output
        match = re.fullmatch(rf"https?://{re.escape(DASHBOARD)}(?::\d+)?(/login/[^\s/]+)", lines[0])
        assert match, lines[0]
        return self.base() + match.group(1)

    def current_version(self, app: str) -> int:
        state = State(self.root)
        try:
            release = state.current_release(app)
            assert release is not None
            return release.version
        finally:
            state.close()

    def web_containers(self, app: str) -> list[str]:
        found = self.docker.containers.list(filters={"label": [f"skiff.app={app}", "skiff.process=web"]})
        return sorted(c.name for c in found if ".old-" not in c.name)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@pytest.fixture(scope="module")
def dash(
    tmp_path_factory, nginx_factory, sshd_factory, sshd_client_key, docker_client, stack_image
) -> Iterator[DashStack]:
    require_chromium()  # before the deploys: skip (or, under CI, fail) at once without a browser
    base = tmp_path_factory.mktemp("dashboard")
    root = base / "skiff-root"
    root.mkdir()
    nginx = nginx_factory(root)
    authorized = base / "authorized_keys"
    env = {"SKIFF_ROOT": str(root), "SKIFF_AUTHORIZED_KEYS": str(authorized), **nginx.env}
    assert add_key("test", sshd_client_key.with_suffix(".pub"), env).exit_code == 0
    bob_key = make_key(base / "bob", "bob")
    assert add_key("bob", bob_key.with_suffix(".pub"), env, role="deployer").exit_code == 0
    sshd = sshd_factory(authorized, env, base / "sshd")
    cleanup = DockerCleanup(docker_client)
    app, other = cleanup.app(new_app_name("dsh")), cleanup.app(new_app_name("oth"))
    stack = DashStack(
        root, nginx, sshd, sshd.for_key(bob_key), env, docker_client, app, other, base / "repo", free_port()
    )
    try:
        for args in (
            ("domains:set-global", DOMAIN),
            ("dashboard:set", "--global", "port", str(stack.port)),
            ("dashboard:enable",),
            ("apps:create", app),
            ("checks:set", app, "wait-to-retire", "1"),
            ("config:set", "--no-restart", app, f"DATABASE_URL={SECRET}"),
            ("acl:add", app, "bob"),
            ("apps:create", other),
            ("ps:scale", other, "web=1"),
        ):
            done = stack.skiff(*args)
            assert done.exit_code == 0, (args, done.output)
        init_repo(stack.repo, app_files("answer one"))
        pushed = git_push(stack.repo, app, sshd, timeout=300)
        assert pushed.exit_code == 0, pushed.output
        stack.wait_answer(app, "answer one")
        stack.versions["answer one"] = stack.current_version(app)
        log = (base / "dashboard.log").open("wb")
        stack.server = subprocess.Popen(
            [skiff_bin(), "dashboard:serve", "--host", "127.0.0.1", "--port", str(stack.port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _listening(stack.port), 30, what="the dashboard server listening")
        wait_for(
            lambda: get(nginx.http_port, "/", DASHBOARD, timeout=5).status in (200, 302, 303, 401, 403),
            30,
            what="nginx's dashboard vhost",
        )
        yield stack
    finally:
        if stack.server is not None:
            stack.server.terminate()
            try:
                stack.server.wait(10)
            except subprocess.TimeoutExpired:
                stack.server.kill()
                stack.server.wait()
        for name in (app, other):
            stack.skiff("apps:destroy", name, "--force")
        cleanup.cleanup()


def shot(driver: Any, name: str) -> None:
    """Save the page as docs/dashboard/NAME.png, only when SKIFF_UPDATE_SCREENSHOTS=1."""
    if os.environ.get("SKIFF_UPDATE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # the whole page, not the window: a viewport as tall as the content (Chrome DevTools Protocol)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": 1280, "height": max(600, min(height, 2400)), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.fixture
def open_browser(browser_factory) -> Any:
    """``open_browser()``: a new browser resolving the dashboard's name to 127.0.0.1."""

    def start() -> Any:
        return browser_factory(host_rules={DASHBOARD: "127.0.0.1"})

    return start


@pytest.fixture(scope="module")
def admin(dash: DashStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One browser logged in as the admin key for the module: a key may make 5 login links a minute."""
    driver = start_chromium(tmp_path_factory.mktemp("admin-browser") / "profile", {DASHBOARD: "127.0.0.1"})
    try:
        login(dash, driver, dash.sshd)
        yield driver
    finally:
        driver.quit()


def login(dash: DashStack, driver: Any, server: SshServer) -> str:
    """Open a fresh login link of that key; back on the apps list; return the link."""
    link = dash.login_link(server)
    driver.get(link)
    wait_for(lambda: driver.find_elements(BY_CSS, "table#apps"), 15, what="the apps list after login")
    assert driver.current_url.rstrip("/") == dash.base()
    return link


def text(driver: Any, selector: str) -> str:
    return str(driver.find_element(BY_CSS, selector).text).strip()


def row_texts(driver: Any, selector: str) -> list[str]:
    return [str(e.text).strip() for e in driver.find_elements(BY_CSS, selector)]


def test_admin_logs_in_and_sees_the_app_list(dash, admin):
    driver = admin
    driver.get(dash.base() + "/")
    assert text(driver, "span#identity") == "test (admin)"
    assert driver.find_elements(BY_CSS, "nav a#logout-link")
    row = driver.find_element(BY_CSS, f'table#apps tr[data-app="{dash.app}"]')
    assert row.find_element(BY_CSS, "td.name a").get_attribute("href") == f"{dash.base()}/apps/{dash.app}"
    assert row.find_element(BY_CSS, "td.status").text.strip() == "running"
    assert row.find_element(BY_CSS, "td.processes").text.strip() == "web=1"
    revision = subprocess.run(["git", "-C", str(dash.repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert revision.stdout.strip()[:7] in row.find_element(BY_CSS, "td.last-deploy").text
    assert f"{dash.app}.{DOMAIN}" in row.find_element(BY_CSS, "td.urls").text
    assert driver.find_elements(BY_CSS, f'table#apps tr[data-app="{dash.other}"]')
    shot(driver, "apps")


def test_scale_web_to_two_shows_the_second_process(dash, admin):
    driver = admin
    driver.get(dash.base() + "/")
    driver.find_element(BY_CSS, f'table#apps tr[data-app="{dash.app}"] td.name a').click()
    wait_for(lambda: text(driver, "h1") == dash.app, what="the app page")
    assert text(driver, 'table#processes tr[data-process="web"] td.count') == "1"
    assert text(driver, 'table#config tr[data-key="DATABASE_URL"] td.value') == "••••••"
    assert SECRET not in driver.page_source
    field_ = driver.find_element(BY_CSS, 'form#scale input[name="web"]')
    field_.clear()
    field_.send_keys("2")
    driver.find_element(BY_CSS, "form#scale button[type=submit]").click()

    def two_shown() -> bool:
        driver.get(f"{dash.base()}/apps/{dash.app}")
        return text(driver, 'table#processes tr[data-process="web"] td.count') == "2"

    wait_for(two_shown, 120, 1, what="web=2 on the app page")
    wait_for(lambda: len(dash.web_containers(dash.app)) == 2, 60, 0.5, what="two web containers in the engine")
    assert driver.find_elements(BY_CSS, "section#stats svg")


def test_rollback_serves_the_old_answer_through_nginx(dash, admin):
    commit_files(dash.repo, app_files("answer two"), "answer two")
    pushed = git_push(dash.repo, dash.app, dash.sshd, timeout=300)
    assert pushed.exit_code == 0, pushed.output
    dash.wait_answer(dash.app, "answer two")
    two = dash.current_version(dash.app)
    one = dash.versions["answer one"]
    driver = admin
    driver.get(dash.base() + "/")
    driver.get(f"{dash.base()}/apps/{dash.app}")
    current = driver.find_element(BY_CSS, "table#releases tr.current")
    assert current.get_attribute("data-release") == str(two)
    driver.find_element(BY_CSS, f'table#releases tr[data-release="{one}"] form.rollback button').click()
    dash.wait_answer(dash.app, "answer one", timeout=120)

    def new_current() -> bool:
        driver.get(f"{dash.base()}/apps/{dash.app}")
        return driver.find_element(BY_CSS, "table#releases tr.current").get_attribute("data-release") not in (
            str(two),
            None,
        )

    wait_for(new_current, 60, 1, what="a new current release after the rollback")
    assert dash.current_version(dash.app) > two


def test_a_log_line_arrives_live(dash, admin):
    driver = admin
    driver.get(dash.base() + "/")
    driver.find_element(BY_CSS, f'table#apps tr[data-app="{dash.app}"] td.name a').click()
    wait_for(lambda: text(driver, "h1") == dash.app, what="the app page")
    driver.find_element(BY_CSS, "a#logs-link").click()
    wait_for(lambda: driver.current_url == f"{dash.base()}/apps/{dash.app}/logs", what="the logs page")
    log = driver.find_element(BY_CSS, "pre#log")
    time.sleep(1)  # the page's EventSource connects
    marker = f"{LOG_PREFIX} {secrets.token_hex(6)}"
    assert marker not in log.text
    status, _ = dash.answer(dash.app, f"/log?line={marker.split()[-1]}")
    assert status == 200
    wait_for(lambda: marker in driver.find_element(BY_CSS, "pre#log").text, 30, 0.2, what="the log line live")
    assert driver.current_url == f"{dash.base()}/apps/{dash.app}/logs"  # no reload: it came by the stream
    for word in ("second", "third"):  # a few more, in order
        assert dash.answer(dash.app, f"/log?line={word}")[0] == 200
        line = f"{LOG_PREFIX} {word}"
        wait_for(lambda line=line: line in text(driver, "pre#log"), 30, 0.2, what=f"the line {line!r}")
    lines = text(driver, "pre#log")
    assert lines.index(marker) < lines.index(f"{LOG_PREFIX} second") < lines.index(f"{LOG_PREFIX} third")
    shot(driver, "logs")


def test_the_build_output_page_shows_a_deploy(dash, admin):
    driver = admin
    driver.get(dash.base() + "/")
    driver.get(f"{dash.base()}/apps/{dash.app}")
    shot(driver, "app")  # here, not after the scale: by now the stats sampler has a few samples
    driver.find_element(BY_CSS, "a#builds-link").click()
    rows = wait_for(lambda: driver.find_elements(BY_CSS, "table#builds tr[data-build]"), what="the builds list")
    assert len(rows) >= 2  # both pushes (and the scale, the rollback)
    first = driver.find_element(BY_CSS, 'table#builds tr[data-build="1"] a')
    first.click()
    wait_for(lambda: driver.current_url == f"{dash.base()}/apps/{dash.app}/builds/1", what="build 1's page")
    output = text(driver, "pre#build-output")
    assert "COPY server.py answer.txt /srv/" in output  # the docker build of the first push
    assert "\x1b[" not in output
    shot(driver, "build")


def test_a_deployer_sees_only_its_apps_and_cannot_act_on_another(dash, open_browser):
    before = dash.skiff("ps:scale", dash.other)
    assert before.exit_code == 0, before.output
    driver = open_browser()
    login(dash, driver, dash.bob)
    assert text(driver, "span#identity") == "bob (deployer)"
    assert driver.find_elements(BY_CSS, f'table#apps tr[data-app="{dash.app}"]')
    assert not driver.find_elements(BY_CSS, f'table#apps tr[data-app="{dash.other}"]')
    assert dash.other not in driver.page_source
    # the other app's page: not found
    driver.get(f"{dash.base()}/apps/{dash.other}")
    assert len(driver.find_elements(BY_CSS, "p.error")) == 1
    # a crafted request: bob's own scale form (valid session, valid CSRF token) aimed at the other app
    driver.get(f"{dash.base()}/apps/{dash.app}")
    status = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const form = document.querySelector("form#scale");
        const body = new URLSearchParams(new FormData(form));
        body.set("web", "3");
        fetch("/apps/" + arguments[0] + "/scale", {method: "POST", body: body, credentials: "same-origin"})
          .then(r => r.text().then(t => {
            const page = new DOMParser().parseFromString(t, "text/html");
            done([r.status, page.querySelectorAll("p.error").length, t]);
          }), e => done([0, 0, String(e)]));
        """,
        dash.other,
    )
    assert status[:2] == [404, 1], status
    # the same in the page: the form retargeted and submitted shows the one error
    driver.execute_script(
        "const f = document.querySelector('form#scale'); f.action = '/apps/' + arguments[0] + '/scale';"
        "f.querySelector('input[name=\"web\"]').value = '3';",
        dash.other,
    )
    driver.find_element(BY_CSS, "form#scale button[type=submit]").click()
    wait_for(lambda: driver.find_elements(BY_CSS, "p.error"), what="the refusal page")
    assert len(driver.find_elements(BY_CSS, "p.error")) == 1
    after = dash.skiff("ps:scale", dash.other)
    assert after.stdout == before.stdout  # nothing changed
    assert not dash.web_containers(dash.other)


def test_a_reused_login_link_is_refused(dash, open_browser):
    first = open_browser()
    link = login(dash, first, dash.sshd)
    second = open_browser()
    second.get(link)
    error = wait_for(lambda: second.find_elements(BY_CSS, "p.error"), what="the refusal page")
    assert len(error) == 1
    assert error[0].text.strip() == "this login link has expired or was already used"
    assert not second.find_elements(BY_CSS, "table#apps")
    again = get(dash.nginx.http_port, link.removeprefix(dash.base()), DASHBOARD)
    assert again.status == 403, again
