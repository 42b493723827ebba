"""The letsencrypt plugin without an ACME server: settings, refusals, access levels, the periodic task."""

from __future__ import annotations

import datetime
import json
import re

import pytest

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_letsencrypt.plugin as letsencrypt_plugin
import skiff_nginx.plugin as nginx_plugin
from skiff import hookimpl, validate
from skiff.contracts import PeriodicTask
from skiff.errors import SkiffError
from skiff.testing import KeyRole
from skiff_letsencrypt import issuer, store
from skiff_letsencrypt.settings import SETTINGS


@pytest.fixture
def h(skiff):
    harness = skiff(apps_plugin, acl_plugin, nginx_plugin, letsencrypt_plugin, KeyRole())
    for app in ("web", "other"):
        harness.create_app(app)
    harness.invoke("acl:add", "web", "bob")
    return harness


def _self_signed(days: float, names: list[str]) -> store.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return store.Certificate(
        pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def test_settings_are_declared_validated_and_resolved(h):
    assert h.invoke("letsencrypt:set", "--global", "email", "ops@example.com").exit_code == 0
    assert h.invoke("letsencrypt:set", "web", "server", "staging").exit_code == 0
    assert h.invoke("letsencrypt:set", "other", "server", "https://acme.example.com:8443/dir").exit_code == 0
    assert SETTINGS.get(h.state, "email", app="web") == "ops@example.com"
    assert SETTINGS.get(h.state, "server", app="web") == "staging"
    assert SETTINGS.get(h.state, "server", app="x") == "default"
    assert SETTINGS.get(h.state, "graceperiod", app="web") == 30 * 86400
    for args, message in (
        (("web", "email", "not-an-address"), "invalid email address 'not-an-address'"),
        (("web", "server", "http://plain.example.com/dir"), "invalid ACME server"),
        (("web", "server", "https://x.example.com/$(reboot)"), "invalid ACME server"),
        (("web", "graceperiod", "ten"), "graceperiod"),
        (("web", "graceperiod", "5"), "graceperiod"),
        (("web", "colour", "red"), "unknown letsencrypt setting 'colour'"),
    ):
        result = h.invoke("letsencrypt:set", *args)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert message in result.stderr, (args, result.stderr)
    assert SETTINGS.get(h.state, "server", app="web") == "staging"


def test_every_command_declares_its_level_and_a_deployer_reaches_only_its_apps(h):
    for command in ("letsencrypt:report web", "letsencrypt:active web", "letsencrypt:cleanup web"):
        result = h.ssh(command, key="bob")
        assert result.exit_code == 0, (command, result.output)
    for command, refusal in (
        ("letsencrypt:enable other", "on app 'other'"),
        ("letsencrypt:revoke other", "on app 'other'"),
        ("letsencrypt:auto-renew", "without an app"),
        ("letsencrypt:report", "without an app"),
        ("letsencrypt:list", ""),
        ("letsencrypt:cron-job --add", ""),
        ("letsencrypt:set --global email a@example.com", ""),
    ):
        result = h.ssh(command, key="bob")
        assert result.exit_code == 1 and "(deployer) may not run" in result.stderr and refusal in result.stderr, (
            command,
            result.stderr,
        )
    server = h.ssh("letsencrypt:set web server staging", key="bob")  # a URL skiff would fetch: admin only
    assert server.stderr.splitlines() == ["!     key 'bob' (deployer) may not change letsencrypt server"]
    assert h.ssh("letsencrypt:set web email me@example.com", key="bob").exit_code == 0
    assert not h.state.get_property("letsencrypt", "cron-job")


def test_cron_job_turns_the_periodic_task_on_and_off(h):
    def tasks():
        return [t for answer in h.context.hook.skiff_periodic_tasks(context=h.context) for t in answer or []]

    assert tasks() == []
    added = h.invoke("letsencrypt:cron-job", "--add")
    assert added.exit_code == 0, added.output
    assert tasks() == [PeriodicTask("letsencrypt:auto-renew", "@daily", ("letsencrypt:auto-renew",))]
    assert validate.cron_schedule(tasks()[0].schedule)
    assert '"cron_job": true' in h.invoke("letsencrypt:report", "--format", "json").stdout
    assert h.invoke("letsencrypt:cron-job", "--remove").exit_code == 0
    assert tasks() == []
    assert "give --add or --remove" in h.invoke("letsencrypt:cron-job").stderr


def test_enable_refuses_in_one_line_before_any_request(h):
    result = h.invoke("letsencrypt:enable", "web")
    assert result.stderr.splitlines() == ["!     app web is not deployed: nginx cannot answer the challenges yet"]
    assert h.invoke("letsencrypt:enable", "nope").exit_code == 1


def test_domains_refuses_wildcards_and_no_domains(h):
    with pytest.raises(Exception, match="has no domain"):
        issuer.domains_of(h.context, "web")
    h.invoke("domains:add", "web", "*.web.example.com")
    with pytest.raises(Exception, match=r"wildcard domain \*\.web\.example\.com: HTTP-01 cannot prove it"):
        issuer.domains_of(h.context, "web")


def test_due_after_the_grace_period_or_when_a_domain_is_new(h):
    h.invoke("domains:add", "web", "web.example.com")
    assert issuer.due(h.context, "web") == "no certificate yet"
    store.save(h.context, "web", _self_signed(60, ["web.example.com"]))
    assert issuer.due(h.context, "web") is None  # 60 days left, 30 days of grace
    h.invoke("letsencrypt:set", "web", "graceperiod", str(61 * 86400))
    assert "within the grace period" in (issuer.due(h.context, "web") or "")
    h.invoke("letsencrypt:set", "web", "graceperiod", "")
    h.invoke("domains:add", "web", "www.web.example.com")
    assert issuer.due(h.context, "web") == "new domain www.web.example.com"


def test_store_keeps_keys_private_archives_replaced_ones_and_cleanup_removes_them(h):
    store.save(h.context, "web", _self_signed(60, ["web.example.com"]))
    store.save(h.context, "web", _self_signed(60, ["web.example.com"]))
    directory = store.app_dir(h.context, "web")
    assert (directory / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert (h.root / "letsencrypt").stat().st_mode & 0o777 == 0o700
    assert len(store.archived(h.context, "web")) == 1
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in store.archived(h.context, "web"))
    result = h.invoke("letsencrypt:cleanup", "web")
    assert result.exit_code == 0 and "Removed 1 stale file of web" in result.stdout
    assert store.archived(h.context, "web") == [] and store.current(h.context, "web") is not None


def test_rename_moves_and_destroy_forgets_the_certificates(h):
    store.save(h.context, "web", _self_signed(60, ["web.example.com"]))
    h.state.set_property("letsencrypt", "enabled", True, app="web")
    assert h.invoke("apps:rename", "web", "shop").exit_code == 0
    assert store.current(h.context, "shop") is not None and store.current(h.context, "web") is None
    assert store.enabled(h.context, "shop")
    assert h.invoke("apps:destroy", "shop", "--force").exit_code == 0
    assert not store.app_dir(h.context, "shop").exists()


def test_a_failed_order_is_one_line_and_recorded(h, monkeypatch):
    from acme import messages

    h.invoke("domains:add", "web", "web.example.com")
    monkeypatch.setattr(h.state, "current_release", lambda app: object())

    def refuse(context, app, domains):
        raise messages.Error(typ="urn:ietf:params:acme:error:rateLimited", detail="too many\\ncertificates")

    monkeypatch.setattr(issuer, "_order", refuse)
    result = h.invoke("letsencrypt:enable", "web")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "!     could not get a certificate for web: too many\\ncertificates; the current one keeps serving"
    ]
    assert store.prop(h.context, "last-error", "web") == "too many\\ncertificates"
    assert not store.enabled(h.context, "web")


def test_a_challenge_token_names_a_file_only_when_it_is_base64url(h):
    path = issuer._write_challenge(h.root, "A" * 43, "A" * 43 + ".thumb")
    assert path == h.root / "acme-challenge" / ("A" * 43)
    assert path.stat().st_mode & 0o777 == 0o644 and path.parent.stat().st_mode & 0o777 == 0o755
    for token in ("../../etc/passwd-xxxxxxxxxxxx", "short", "A" * 40 + "/x"):
        with pytest.raises(issuer.IssueError, match="not base64url"):
            issuer._write_challenge(h.root, token, "x")
    assert sorted(p.name for p in (h.root / "acme-challenge").iterdir()) == ["A" * 43]


# -- sites: skiff_site_certificate, and their renewal ---------------------------------------------


class FakeOrders:
    """Stands in for the ACME order (``issuer._order``): a self-signed certificate per call."""

    def __init__(self, days: float = 60) -> None:
        self.orders: list[tuple[str, list[str]]] = []
        self.days = days
        self.refusal: Exception | None = None

    def __call__(self, context, app, domains):
        self.orders.append((app, list(domains)))
        if self.refusal is not None:
            raise self.refusal
        return _self_signed(self.days, list(domains)), {"id": "acct", "server": "https://acme.test/dir"}


class SiteOwner:
    """A plugin that owns the site ``dashboard``: takes renewals (answer True), or refuses them."""

    def __init__(self) -> None:
        self.renewed: list[tuple[str, bytes]] = []
        self.answer: bool | None = True
        self.refuse = False

    @hookimpl
    def skiff_site_certificate_renewed(self, context, site, certificate, key):
        if self.refuse:
            raise SkiffError("nginx refused the pair")
        self.renewed.append((site, certificate.read_bytes()))
        return self.answer


@pytest.fixture
def orders(monkeypatch) -> FakeOrders:
    fake = FakeOrders()
    monkeypatch.setattr(issuer, "_order", fake)
    return fake


def test_a_site_certificate_is_ordered_once_kept_private_and_ordered_again_for_a_new_name(h, orders):
    crt, key = h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"])
    assert (crt, key) == store.site_files(h.context, "dashboard")
    assert orders.orders == [("", ["dash.example.com"])]  # the global settings' account, not an app's
    assert store.current_site(h.context, "dashboard").names == ["dash.example.com"]
    assert key.stat().st_mode & 0o777 == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert store.sites(h.context)["dashboard"]["domains"] == ["dash.example.com"]
    first = crt.read_bytes()
    assert h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"]) == (
        crt,
        key,
    )
    assert len(orders.orders) == 1 and crt.read_bytes() == first  # not due: the kept one
    h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.org"])
    assert orders.orders[-1] == ("", ["dash.example.org"]) and crt.read_bytes() != first
    report = json.loads(h.invoke("letsencrypt:report", "--format", "json").stdout)
    assert report["global"]["sites"]["dashboard"]["domains"] == ["dash.example.org"]


@pytest.mark.parametrize(
    ("site", "domains", "message"),
    [
        ("Dash/../x", ["dash.example.com"], "invalid site name 'Dash/../x'"),
        ("dashboard", [], "site dashboard has no domain to certify"),
        ("dashboard", ["*.example.com"], "invalid domain '*.example.com' for site dashboard"),
        ("dashboard", ["dash.example.com;\nreturn"], "invalid domain"),
    ],
)
def test_a_bad_site_or_domain_is_refused_before_any_order(h, orders, site, domains, message):
    with pytest.raises(SkiffError, match=re.escape(message)):
        h.context.hook.skiff_site_certificate(context=h.context, site=site, domains=domains)
    assert orders.orders == [] and store.sites(h.context) == {}


def test_a_failed_site_order_is_one_line_recorded_and_keeps_nothing(h, orders):
    from acme import messages

    orders.refusal = messages.Error(typ="urn:ietf:params:acme:error:rateLimited", detail="too many certificates")
    with pytest.raises(issuer.IssueError) as caught:
        h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"])
    assert str(caught.value) == "could not get a certificate for the dashboard site: too many certificates"
    assert store.current_site(h.context, "dashboard") is None
    assert store.sites(h.context)["dashboard"]["last-error"] == "too many certificates"


def test_without_an_email_a_site_order_names_the_global_setting(h):
    with pytest.raises(SkiffError, match=r"set an email first: letsencrypt:set --global email ADDRESS"):
        issuer._client(h.context, "")


def test_auto_renew_renews_a_due_site_and_hands_the_files_to_its_plugin(skiff, orders):
    owner = SiteOwner()
    h = skiff(apps_plugin, nginx_plugin, letsencrypt_plugin, ("owner", owner))
    h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"])
    quiet = h.invoke("letsencrypt:auto-renew")
    assert quiet.exit_code == 0 and "the dashboard site: not due" in quiet.stdout, quiet.output
    assert len(orders.orders) == 1 and owner.renewed == []
    h.invoke("letsencrypt:set", "--global", "graceperiod", str(61 * 86400))  # 60 days left: due
    renewed = h.invoke("letsencrypt:auto-renew")
    assert renewed.exit_code == 0, renewed.output
    assert "0 apps with letsencrypt, 1 sites" in renewed.stdout
    assert len(orders.orders) == 2
    assert owner.renewed == [("dashboard", store.current_site(h.context, "dashboard").fullchain)]
    assert not store.sites(h.context)["dashboard"]["handover"]


def test_a_refused_handover_fails_the_run_and_the_next_run_hands_over_again_without_an_order(skiff, orders):
    owner = SiteOwner()
    h = skiff(apps_plugin, nginx_plugin, letsencrypt_plugin, ("owner", owner))
    h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"])
    owner.refuse = True
    failed = h.invoke("letsencrypt:auto-renew", "--force")
    assert failed.exit_code == 1 and "nginx refused the pair" in failed.stderr
    assert "renewal failed for the dashboard site" in failed.stderr
    assert len(orders.orders) == 2 and store.sites(h.context)["dashboard"]["handover"]
    owner.refuse = False
    again = h.invoke("letsencrypt:auto-renew")
    assert again.exit_code == 0, again.output
    assert len(orders.orders) == 2 and len(owner.renewed) == 1  # handed over, not ordered again
    assert not store.sites(h.context)["dashboard"]["handover"]


def test_a_site_no_plugin_takes_any_more_is_forgotten(skiff, orders):
    owner = SiteOwner()
    owner.answer = None  # the owner serves a certificate of its own now
    h = skiff(apps_plugin, nginx_plugin, letsencrypt_plugin, ("owner", owner))
    h.context.hook.skiff_site_certificate(context=h.context, site="dashboard", domains=["dash.example.com"])
    result = h.invoke("letsencrypt:auto-renew", "--force")
    assert result.exit_code == 0 and "no longer renewed" in result.stdout, result.output
    assert store.sites(h.context) == {} and not store.site_dir(h.context, "dashboard").exists()
    assert h.invoke("letsencrypt:auto-renew").exit_code == 0 and len(orders.orders) == 2
