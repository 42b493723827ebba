"""The dashboard's web app with Starlette's test client: login, sessions, CSRF, filtering, bad input."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest

from skiff import hookimpl
from skiff.errors import SkiffError
from skiff.testing.nginx import self_signed
from skiff_dashboard import actions, stats, store

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def errors(text: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="error">(.*?)</p>', text, re.S)]


def one_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    found = errors(response.text)
    assert len(found) == 1, found
    return found[0]


def csrf_of(client, path: str = "/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)


# -- login links and sessions ----------------------------------------------------------------


def test_the_login_command_prints_one_url_and_its_link_logs_the_key_in_once(h, client):
    made = h.ssh("dashboard:login", key="bob")
    assert made.exit_code == 0, made.output
    lines = made.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"http://dash\.example\.com/login/[A-Za-z0-9_-]{40,}", lines[0])
    path = lines[0].split("dash.example.com", 1)[1]
    first = client.get(path, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    page = client.get("/")
    assert page.status_code == 200 and '<span id="identity">bob (deployer)</span>' in page.text
    client.cookies.clear()
    again = client.get(path, follow_redirects=False)
    assert one_error(again, 403) == "this login link has expired or was already used"
    assert "set-cookie" not in again.headers


def test_behind_https_the_cookie_is_secure(h, client):
    token = store.create_link(h.root, "bob", 300)
    response = client.get(f"/login/{token}", headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_an_expired_or_unknown_link_is_refused(h, client):
    old = store.create_link(h.root, "bob", 300, now=time.time() - 301)
    assert one_error(client.get(f"/login/{old}"), 403) == "this login link has expired or was already used"
    assert one_error(client.get("/login/not-a-token"), 403) == "this login link has expired or was already used"
    assert one_error(client.get("/"), 401).startswith("you are not logged in")


def test_login_links_are_rate_limited_per_key(h):
    for _ in range(store.RATE_LIMIT):
        assert h.ssh("dashboard:login", key="bob").exit_code == 0
    refused = h.ssh("dashboard:login", key="bob")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "!     too many login links for key 'bob': at most 5 a minute; wait a minute and try again"
    ]
    assert h.ssh("dashboard:login", key="alice").exit_code == 0  # another key is not held back


def test_login_is_refused_when_the_dashboard_is_off_and_from_a_root_shell(h):
    assert h.invoke("dashboard:login").stderr.strip() == (
        "!     dashboard:login makes a link for an SSH key: run 'ssh skiff@HOST dashboard:login'"
    )
    assert h.ssh("dashboard:login --as alice", key="bob").exit_code == 1  # --as is for root's shell only
    assert h.ssh("dashboard:disable", key="bob").exit_code == 1  # admin only
    assert h.invoke("dashboard:disable").exit_code == 0
    off = h.ssh("dashboard:login", key="bob")
    assert off.stderr.strip() == "!     the dashboard is off: an admin turns it on with dashboard:enable"


def test_the_store_keeps_hashes_only_in_a_private_file(h):
    token = store.create_link(h.root, "bob", 300)
    sid, _ = store.create_session(h.root, "bob", 60)
    path = store.directory(h.root) / store.FILENAME
    assert path.stat().st_mode & 0o777 == 0o600 and store.directory(h.root).stat().st_mode & 0o777 == 0o700
    data = path.read_bytes()
    assert token.encode() not in data and sid.encode() not in data


def test_an_expired_session_is_refused_and_removed(h, client):
    sid, _ = store.create_session(h.root, "bob", 60, now=time.time() - 61)
    client.cookies.set("skiff_session", sid)
    assert one_error(client.get("/"), 401).startswith("you are not logged in")
    assert store.get_session(h.root, sid) is None


def test_logout_needs_the_csrf_token_and_ends_the_session(h, client, login):
    login("bob")
    sid = client.cookies.get("skiff_session")
    assert one_error(client.post("/logout", data={"csrf_token": "forged"}), 403).startswith("the form's security")
    assert store.get_session(h.root, sid) is not None
    out = client.post("/logout", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303 and 'skiff_session=""' in out.headers["set-cookie"]
    assert store.get_session(h.root, sid) is None
    client.cookies.set("skiff_session", sid)
    assert client.get("/").status_code == 401
    logged = [(e["key"], e["kind"], e["command"]) for e in h.state.events(limit=50)]
    assert ("bob", "dashboard", "login (a session started)") in logged and ("bob", "dashboard", "logout") in logged


# -- what a key sees -------------------------------------------------------------------------


def test_a_deployer_sees_only_its_apps_and_an_admin_every_app(h, client, login):
    login("bob")
    page = client.get("/")
    assert '<tr data-app="web">' in page.text and 'data-app="other"' not in page.text
    assert '<td class="processes">web=1 worker=1</td>' in page.text
    assert '<a href="/apps/web">web</a>' in page.text and "2222222" in page.text
    assert one_error(client.get("/apps/other"), 404).startswith("no app 'other' here")
    assert client.get("/apps/other/logs").status_code == 404
    assert client.get("/apps/other/logs/stream").status_code == 404
    assert client.get("/apps/nope").status_code == 404
    client.cookies.clear()
    login("alice")
    page = client.get("/")
    assert '<tr data-app="web">' in page.text and '<tr data-app="other">' in page.text
    assert '<span id="identity">alice (admin)</span>' in page.text


def test_the_app_page_hides_config_values_and_marks_the_current_release(h, client, login):
    login("bob")
    page = client.get("/apps/web")
    assert page.status_code == 200 and "<h1>web</h1>" in page.text
    assert "s3cret-value" not in page.text and '<tr data-key="SECRET">' in page.text and "••••••" in page.text
    assert '<tr data-release="2" class="current">' in page.text
    assert '<tr data-release="1">' in page.text and 'name="version" value="1"' in page.text
    assert '<tr data-process="web">' in page.text and 'input type="number" name="worker"' in page.text
    assert 'id="logs-link" href="/apps/web/logs"' in page.text and 'id="builds-link"' in page.text
    assert '<section id="stats">' in page.text
    for form in re.findall(r'<form[^>]*method="post".*?</form>', page.text, re.S):
        assert 'name="csrf_token"' in form
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_a_reveal_runs_config_get_as_the_key_and_lands_in_the_event_log(h, dash, client, login):
    dash.run = actions.command  # the real path: skiff ssh-command as bob
    login("bob")
    token = csrf_of(client, "/apps/web")
    shown = client.post("/apps/web/config/reveal", data={"csrf_token": token, "key": "SECRET"})
    assert shown.status_code == 200, shown.text
    assert '<td class="value revealed"><code>s3cret-value</code></td>' in shown.text
    logged = [e for e in h.state.events(limit=20) if e["command"] == "config:get web SECRET"]
    assert logged and logged[-1]["key"] == "bob" and logged[-1]["status"] == 0
    refused = client.post("/apps/web/config/reveal", data={"csrf_token": token, "key": "NOPE"})
    assert one_error(refused, 400) == "web has no config key 'NOPE'; nothing was changed"
    crafted = client.post("/apps/other/config/reveal", data={"csrf_token": token, "key": "OTHER_SECRET"})
    assert one_error(crafted, 404).startswith("no app 'other' here") and "other-secret-value" not in crafted.text


# -- actions -----------------------------------------------------------------------------------


def test_scale_runs_ps_scale_as_the_key(client, login, runner):
    login("bob")
    done = client.post(
        "/apps/web/scale", data={"csrf_token": csrf_of(client), "web": "2", "worker": "0"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/apps/web?done=scale"
    assert runner.calls == [("bob", ["ps:scale", "web", "web=2", "worker=0"])]
    assert '<p class="notice">' in client.get(done.headers["location"]).text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "web: '-1' is not a number of processes from 0 to 100"),
        ("101", "web: 101 is more than 100 processes"),
        ("9999", "web: '9999' is not a number of processes from 0 to 100"),
        ("two", "web: 'two' is not a number of processes from 0 to 100"),
        ("", "web: '' is not a number of processes from 0 to 100"),
    ],
)
def test_a_bad_scale_is_refused_and_nothing_runs(client, login, runner, value, message):
    login("bob")
    refused = client.post("/apps/web/scale", data={"csrf_token": csrf_of(client), "web": value})
    assert one_error(refused, 400) == f"{message}; nothing was changed"
    assert runner.calls == []


def test_an_unknown_process_type_is_refused(client, login, runner):
    login("bob")
    refused = client.post("/apps/web/scale", data={"csrf_token": csrf_of(client), "clock": "1"})
    assert one_error(refused, 400) == "web has no process type 'clock'; nothing was changed"
    assert runner.calls == []


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_missing_or_forged_csrf_token_is_refused(client, login, runner, token):
    login("bob")
    data = {"web": "2"} if token is None else {"web": "2", "csrf_token": token}
    refused = client.post("/apps/web/scale", data=data)
    assert one_error(refused, 403).startswith("the form's security token is missing or wrong")
    assert runner.calls == []


def test_another_sessions_csrf_token_is_refused(h, client, login, runner):
    _, other = store.create_session(h.root, "alice", 60)
    login("bob")
    refused = client.post("/apps/web/scale", data={"csrf_token": other.csrf, "web": "2"})
    assert refused.status_code == 403 and runner.calls == []


def test_a_crafted_action_on_another_app_is_404_and_changes_nothing(client, login, runner):
    login("bob")
    token = csrf_of(client)
    for path, data in [
        ("/apps/other/scale", {"web": "2"}),
        ("/apps/other/rollback", {"version": "1"}),
        ("/apps/../other/scale", {"web": "2"}),
    ]:
        refused = client.post(path, data={"csrf_token": token, **data})
        assert one_error(refused, 404), path
    assert runner.calls == []


def test_rollback_takes_only_a_listed_older_release(client, login, runner):
    login("bob")
    token = csrf_of(client)
    for bad in ("2", "9", "v1", "1; rm -rf /"):
        assert client.post("/apps/web/rollback", data={"csrf_token": token, "version": bad}).status_code == 400
    assert runner.calls == []
    done = client.post("/apps/web/rollback", data={"csrf_token": token, "version": "1"}, follow_redirects=False)
    assert done.status_code == 303 and runner.calls == [("bob", ["releases:rollback", "web", "1"])]


def test_with_the_engine_down_an_action_is_503_and_nothing_runs(client, login, runner, engine):
    login("bob")
    token = csrf_of(client)
    engine["up"] = False
    refused = client.post("/apps/web/scale", data={"csrf_token": token, "web": "2"})
    assert one_error(refused, 503).startswith("the container engine does not answer")
    assert runner.calls == []


def test_a_failed_command_shows_its_one_line(client, login, runner):
    login("bob")
    runner.status = 1
    failed = client.post("/apps/web/scale", data={"csrf_token": csrf_of(client), "web": "2"})
    assert one_error(failed, 400) == "it failed"


def test_the_error_line_of_a_real_refusal_is_read(h):
    outcome = actions.command(h.root, "bob", ["ps:scale", "other", "web=2"])
    assert outcome.status == 1
    assert outcome.message == "key 'bob' (deployer) may not run ps:scale on app 'other'"


# -- stats ---------------------------------------------------------------------------------------


class FakeContainer:
    def __init__(self, name: str, total: int, usage: int):
        self.name, self.total, self.usage = name, total, usage

    def stats(self, stream: bool) -> dict:
        assert stream is False
        return {
            "cpu_stats": {"cpu_usage": {"total_usage": self.total}, "system_cpu_usage": 2_000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 1_000},
            "memory_stats": {"usage": self.usage, "stats": {"inactive_file": 1_000}},
        }


class FakeEngine:
    def __init__(self, containers):
        self.containers = self
        self.items = containers

    def list(self):
        return self.items


def test_the_sampler_sums_each_process_and_draws_an_svg():
    engine = FakeEngine(
        [FakeContainer("web.web.1", 100, 11_000), FakeContainer("web.web.2", 50, 5_000), FakeContainer("db", 1, 1)]
    )
    sampler = stats.Sampler(lambda: engine)
    now = time.time()
    sampler.sample_once(now - 20)
    sampler.sample_once(now - 10)
    series = sampler.series("web", "web")
    assert len(series) == 2 and series[-1].cpu == pytest.approx(30.0) and series[-1].memory == 14_000
    assert sampler.series("db", "x") == []
    drawn = stats.svg(series, now=now)
    assert drawn.startswith("<svg") and drawn.count("<polyline") == 2 and "CPU 30.0%" in drawn
    sampler.sample_once(now + stats.WINDOW + 1)
    assert [s.time for s in sampler.series("web", "web")] == [now + stats.WINDOW + 1]  # an hour at most


class EngineDownReport:
    """The docker plugin's answer when the engine does not answer (``ps`` with an error)."""

    @hookimpl
    def skiff_report(self, context, app):
        return {"ps": {"error": "cannot reach the Docker engine"}}


def test_with_the_engine_down_the_pages_are_503(h, client, login):
    login("bob")
    h.pm.register(EngineDownReport(), name="engine-down")
    for path in ("/", "/apps/web"):
        assert one_error(client.get(path), 503).startswith("the container engine does not answer"), path


def test_a_key_removed_after_login_is_logged_out(h, client, login):
    login("bob")
    assert client.get("/").status_code == 200
    assert h.invoke("ssh-keys:remove", "bob").exit_code == 0
    assert one_error(client.get("/"), 401) == "the key 'bob' of this session was removed: you are logged out"
    assert client.get("/apps/web").status_code == 401
    assert h.invoke("dashboard:login", "--as", "bob").stderr.strip() == "!     no SSH key named 'bob' (ssh-keys:list)"


def test_the_builds_pages_show_each_deploys_output_to_the_apps_keys(h, client, login):
    from skiff import builds

    recorder = builds.start(h.context, "web", "push", revision="2222222bbbb")
    recorder.write("-----> Building web <script>alert(1)</script>")
    recorder.finish(True, 2, "2222222bbbb")
    builds.start(h.context, "other", "push").finish(True, 1, None)
    login("bob")
    listed = client.get("/apps/web/builds")
    assert listed.status_code == 200 and '<table id="builds">' in listed.text
    assert '<tr data-build="1">' in listed.text and 'href="/apps/web/builds/1"' in listed.text
    shown = client.get("/apps/web/builds/1")
    assert shown.status_code == 200
    assert '<pre id="build-output">-----&gt; Building web &lt;script&gt;alert(1)&lt;/script&gt;' in shown.text
    assert one_error(client.get("/apps/web/builds/9"), 404)
    assert one_error(client.get("/apps/web/builds/x1"), 404)
    assert one_error(client.get("/apps/other/builds"), 404).startswith("no app 'other' here")
    assert one_error(client.get("/apps/other/builds/1"), 404).startswith("no app 'other' here")


def test_enable_without_a_domain_is_one_line_and_stays_off(skiff, tmp_path, monkeypatch):
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(tmp_path / "authorized_keys"))
    h = skiff(entry_points=True, disabled=("docker", "nginx", "swarm"))
    refused = h.invoke("dashboard:enable")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "!     the dashboard has no domain: set one (dashboard:set --global domain NAME) or a global domain "
        "(domains:set-global NAME)"
    ]
    assert h.state.get_property("dashboard", "enabled") is None
    bad = h.invoke("dashboard:set", "--global", "domain", "dash.example.com;")
    assert bad.exit_code == 1 and "invalid domain" in bad.stderr and h.state.get_property("dashboard", "domain") is None


def test_the_ssh_keys_plugin_answers_skiff_key_exists(h):
    assert h.context.hook.skiff_key_exists(context=h.context, key="bob") is True
    assert h.context.hook.skiff_key_exists(context=h.context, key="carol") is False
    assert h.invoke("ssh-keys:remove", "bob").exit_code == 0
    assert h.context.hook.skiff_key_exists(context=h.context, key="bob") is False


def test_the_log_stream_is_server_sent_events_of_logs_as_the_key(client, login, monkeypatch):
    seen = []

    async def fake_stream(root, key, args, idle=15.0):
        seen.append((key, args))
        for line in ("2026-12-06T21:00:00Z web[web.1]: one", None, "two"):
            yield line

    monkeypatch.setattr(actions, "stream", fake_stream)
    login("bob")
    with client.stream("GET", "/apps/web/logs/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        body = "".join(response.iter_text())
    assert body == "data: 2026-12-06T21:00:00Z web[web.1]: one\n\n: keep-alive\n\ndata: two\n\n"
    assert seen == [("bob", ["logs", "web", "-t", "-n", "100"])]
    page = client.get("/apps/web/logs")
    assert '<pre id="log"></pre>' in page.text and 'new EventSource("/apps/web/logs/stream")' in page.text


def test_a_form_that_is_not_a_form_or_too_large_is_400(client, login, runner):
    login("bob")
    token = csrf_of(client)
    big = client.post("/apps/web/scale", data={"csrf_token": token, "web": "1", "pad": "x" * 70_000})
    assert one_error(big, 400) == "the form is too large"
    as_json = client.post("/apps/web/scale", json={"csrf_token": token, "web": "1"})
    assert one_error(as_json, 400) == "expected a form (application/x-www-form-urlencoded)"
    assert runner.calls == []


# -- HTTPS from a certificate plugin: dashboard:letsencrypt, skiff_site_certificate(_renewed) -------


class FakeIssuer:
    """Answers ``skiff_site_certificate`` as a certificate plugin would: a new pair per call, or a refusal."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.calls: list[tuple[str, list[str]]] = []
        self.refusal: str | None = None

    @hookimpl
    def skiff_site_certificate(self, context, site, domains):
        self.calls.append((site, list(domains)))
        if self.refusal:
            raise SkiffError(self.refusal)
        return self_signed(self.directory / str(len(self.calls)), domains[0])


@pytest.fixture
def issuer(h, tmp_path) -> FakeIssuer:
    """The fake in place of the letsencrypt plugin (which would ask an ACME server)."""
    if h.pm.get_plugin("letsencrypt") is not None:
        h.pm.unregister(name="letsencrypt")
    fake = FakeIssuer(tmp_path / "issued")
    h.pm.register(fake, "issuer")
    return fake


def served(h) -> bytes:
    return (h.root / "dashboard" / "tls" / "server.crt").read_bytes()


def test_dashboard_letsencrypt_installs_what_skiff_site_certificate_returns(h, issuer):
    result = h.invoke("dashboard:letsencrypt")
    assert result.exit_code == 0, result.output
    assert issuer.calls == [("dashboard", ["dash.example.com"])]
    assert served(h) == (issuer.directory / "1" / "dash.example.com.crt").read_bytes()
    key = h.root / "dashboard" / "tls" / "server.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert "https://dash.example.com" in result.stdout
    report = json.loads(h.invoke("dashboard:report", "--format", "json").stdout)
    assert report["https"] is True and report["letsencrypt"] is True
    assert h.ssh("dashboard:login", key="bob").stdout.startswith("https://dash.example.com/login/")


def test_dashboard_letsencrypt_is_for_admins(h, issuer):
    refused = h.ssh("dashboard:letsencrypt", key="bob")
    assert refused.exit_code == 1 and "(deployer) may not run" in refused.stderr
    assert issuer.calls == [] and not (h.root / "dashboard" / "tls" / "server.crt").exists()


def test_no_certificate_plugin_or_a_failed_order_is_one_line_and_the_old_site_stays(h, issuer, tmp_path):
    own = self_signed(tmp_path / "own", "dash.example.com")
    assert h.invoke("dashboard:certs-add", *map(str, own)).exit_code == 0
    issuer.refusal = "could not get a certificate for the dashboard site: dash.example.com: connection refused"
    failed = h.invoke("dashboard:letsencrypt")
    assert failed.exit_code == 1 and failed.stderr.splitlines() == [
        "!     could not get a certificate for the dashboard site: dash.example.com: connection refused; "
        "the dashboard's site is unchanged"
    ]
    assert served(h) == own[0].read_bytes()
    h.pm.unregister(name="issuer")
    nobody = h.invoke("dashboard:letsencrypt")
    assert nobody.exit_code == 1 and len(nobody.stderr.splitlines()) == 1
    assert "no plugin issues certificates for sites" in nobody.stderr
    assert served(h) == own[0].read_bytes()
    assert json.loads(h.invoke("dashboard:report", "--format", "json").stdout)["letsencrypt"] is False


def test_dashboard_letsencrypt_needs_the_dashboard_on(h, issuer):
    assert h.invoke("dashboard:disable").exit_code == 0
    refused = h.invoke("dashboard:letsencrypt")
    assert (
        refused.exit_code == 1 and len(refused.stderr.splitlines()) == 1 and "dashboard:enable first" in refused.stderr
    )
    assert issuer.calls == []


def test_skiff_site_certificate_renewed_installs_the_dashboards_renewal_only_while_it_is_ours(h, issuer, tmp_path):
    new = self_signed(tmp_path / "renewed", "dash.example.com")
    assert not any(
        h.context.hook.skiff_site_certificate_renewed(
            context=h.context, site="dashboard", certificate=new[0], key=new[1]
        )
    )  # none yet
    assert not (h.root / "dashboard" / "tls" / "server.crt").exists()
    assert h.invoke("dashboard:letsencrypt").exit_code == 0
    assert True in h.context.hook.skiff_site_certificate_renewed(
        context=h.context, site="dashboard", certificate=new[0], key=new[1]
    )
    assert served(h) == new[0].read_bytes()
    assert not any(
        h.context.hook.skiff_site_certificate_renewed(
            context=h.context, site="elsewhere", certificate=new[0], key=new[1]
        )
    )
    own = self_signed(tmp_path / "own", "dash.example.com")
    assert h.invoke("dashboard:certs-add", *map(str, own)).exit_code == 0
    assert not any(
        h.context.hook.skiff_site_certificate_renewed(
            context=h.context, site="dashboard", certificate=new[0], key=new[1]
        )
    )
    assert served(h) == own[0].read_bytes()  # a certificate of one's own is not replaced by a renewal
