"""End to end against Pebble, Let's Encrypt's ACME test server, through the real nginx.

Pebble validates every HTTP-01 challenge for real: it resolves the app's names
through the test's DNS answerer (127.0.0.1) and fetches the token from the
private nginx's HTTP port, which serves it from the challenge directory (the
requests are in the app's nginx access log). The app is a loopback HTTP
server standing in for its web container (the deploy pipeline runs with a
scheduler that points nginx at it). The test trusts Pebble's root; nothing
else does.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from cryptography import x509

import skiff_apps.plugin as apps_plugin
import skiff_letsencrypt.plugin as letsencrypt_plugin
import skiff_nginx.plugin as nginx_plugin
from skiff import hookimpl, lifecycle
from skiff.deploy import Deploy
from skiff.testing import DirReceiver, StubBuilder, dir_source

pytestmark = pytest.mark.e2e

APP = "shop"
HOST = "shop.skiff.test"
LATER = "www.shop.skiff.test"  # added after the first certificate
NOWHERE = "nowhere.skiff.test"  # resolves nowhere: its challenge fails


class BackendScheduler:
    """Runs nothing: the app's web upstream is a loopback HTTP server of the test."""

    upstream = ""

    @hookimpl(trylast=True)
    def skiff_deploy(self, deploy: Deploy) -> bool:
        deploy.meta["upstreams"] = [self.upstream]
        deploy.meta["container_port"] = 5000
        return True


@pytest.fixture
def skiff_root(served_skiff_root):
    """nginx's workers read the challenge files under it, as on an installed server."""
    return served_skiff_root


@pytest.fixture
def h(skiff, private_nginx, pebble, test_dns, http_backend, tmp_path):
    scheduler = BackendScheduler()
    scheduler.upstream = http_backend("the shop")
    harness = skiff(
        ("apps", apps_plugin),
        ("nginx", nginx_plugin),
        ("letsencrypt", letsencrypt_plugin),
        DirReceiver(),
        StubBuilder(),
        scheduler,
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_text("web: true\n")
    harness.create_app(APP)
    assert harness.invoke("domains:add", APP, HOST).exit_code == 0
    lifecycle.deploy(harness.context, APP, dir_source(src))
    test_dns.resolvable |= {HOST, LATER}
    for args in (("email", "ops@example.com"), ("server", pebble.directory)):
        result = harness.invoke("letsencrypt:set", "--global", *args)
        assert result.exit_code == 0, result.output
    harness.nginx, harness.pebble = private_nginx, pebble
    return harness


def served(h, host: str) -> x509.Certificate:
    """The certificate nginx presents for ``host``, verified against Pebble's root only."""
    context = ssl.create_default_context(cafile=str(h.pebble.root))
    with socket.create_connection(("127.0.0.1", h.nginx.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def challenge_requests(h, more_than: int = 0) -> list[str]:
    """The challenge requests in the app's access log, once there are more than ``more_than``
    (nginx buffers the log: a line reaches the file within a second, see docs/proxy.md, or when
    the worker that served it exits after the certificate's reload, which may take longer)."""
    log = h.root / "nginx" / "logs" / f"{APP}-access.log"
    deadline = time.monotonic() + 20
    while True:
        lines = [line for line in log.read_text().splitlines() if "/.well-known/acme-challenge/" in line]
        if len(lines) > more_than or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_enable_renew_by_expiry_and_forced_new_domains_failed_challenge_and_revoke(h):
    # without Pebble's root the chain is not trusted: nothing else trusts it
    assert h.nginx.request(host=HOST).body == "the shop"

    enabled = h.invoke("letsencrypt:enable", APP)
    assert enabled.exit_code == 0, enabled.output
    first = served(h, HOST)  # verified against Pebble's root, for this name
    assert "Pebble Intermediate" in first.issuer.rfc4514_string()
    answer = h.nginx.request(host=HOST, https=True, cafile=str(h.pebble.root))
    assert (answer.status, answer.body) == (200, "the shop")
    with pytest.raises(ssl.SSLCertVerificationError):
        h.nginx.request(host=HOST, https=True, cafile="/etc/ssl/certs/ca-certificates.crt")
    plain = h.nginx.request("/", host=HOST)
    assert plain.status == 301 and plain.headers["location"].startswith(f"https://{HOST}:")
    validations = challenge_requests(h)
    assert validations and all(" 200 " in line and "LetsEncrypt-Pebble-VA" in line for line in validations), validations
    assert h.invoke("letsencrypt:active", APP).stdout == "true\n"
    account_keys = list((h.root / "letsencrypt" / "accounts").glob("*/account.key"))
    assert len(account_keys) == 1 and account_keys[0].stat().st_mode & 0o777 == 0o600
    assert (h.root / "letsencrypt" / "apps" / APP / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert not any((h.root / "acme-challenge").iterdir())  # tokens removed after the order

    # by expiry: Pebble's certificates live 2 hours; with a 1-hour grace period it is not due ...
    assert h.invoke("letsencrypt:set", APP, "graceperiod", "3600").exit_code == 0
    quiet = h.invoke("letsencrypt:auto-renew")
    assert quiet.exit_code == 0, quiet.output
    assert "not due" in quiet.stdout and serial(served(h, HOST)) == serial(first)
    # ... with a 3-hour one it is, and auto-renew renews it through a new validation
    assert h.invoke("letsencrypt:set", APP, "graceperiod", "10800").exit_code == 0
    renewed = h.invoke("letsencrypt:auto-renew")
    assert renewed.exit_code == 0, renewed.output
    assert "within the grace period" in renewed.stdout
    second = served(h, HOST)
    assert serial(second) != serial(first)
    assert len(challenge_requests(h, more_than=len(validations))) > len(validations)
    assert h.invoke("letsencrypt:set", APP, "graceperiod", "3600").exit_code == 0

    # forced, though not due
    forced = h.invoke("letsencrypt:auto-renew", APP, "--force")
    assert forced.exit_code == 0, forced.output
    third = served(h, HOST)
    assert serial(third) not in (serial(first), serial(second))

    # a domain added later is in the next renewal
    assert h.invoke("domains:add", APP, LATER).exit_code == 0
    later = h.invoke("letsencrypt:auto-renew", APP)
    assert later.exit_code == 0, later.output
    assert f"new domain {LATER}" in later.stdout
    fourth = served(h, LATER)
    names = fourth.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([HOST, LATER])

    # a failing challenge (a name that resolves nowhere) leaves the current certificate serving
    assert h.invoke("domains:add", APP, NOWHERE).exit_code == 0
    failed = h.invoke("letsencrypt:auto-renew", APP)
    assert failed.exit_code != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("!")]
    assert errors and NOWHERE in errors[0] and "the current one keeps serving" in errors[0], failed.stderr
    assert serial(served(h, HOST)) == serial(fourth)
    assert h.nginx.request(host=HOST, https=True, cafile=str(h.pebble.root)).body == "the shop"
    report = h.invoke("letsencrypt:report", APP, "--format", "json")
    assert NOWHERE in report.stdout  # last_error
    assert h.invoke("domains:remove", APP, NOWHERE).exit_code == 0

    # revoke: Pebble says revoked; the app answers on HTTP again
    assert h.pebble.status(serial(fourth)) == "Valid"
    revoked = h.invoke("letsencrypt:revoke", APP)
    assert revoked.exit_code == 0, revoked.output
    assert h.pebble.status(serial(fourth)) == "Revoked"
    assert h.nginx.request(host=HOST).body == "the shop"
    assert h.invoke("letsencrypt:active", APP).stdout == "false\n"


def test_a_wildcard_domain_is_refused_in_one_line(h):
    assert h.invoke("domains:add", APP, "*.shop.skiff.test").exit_code == 0
    refused = h.invoke("letsencrypt:enable", APP)
    assert refused.exit_code != 0
    assert refused.stderr.strip().splitlines() == [
        f"!     app {APP} has the wildcard domain *.shop.skiff.test: HTTP-01 cannot prove it; "
        "remove it (domains:remove) or add a certificate yourself (certs:add)"
    ]
    assert h.nginx.request(host=HOST).body == "the shop"  # nothing changed


def test_disable_removes_only_its_own_certificate(h, tmp_path):
    assert h.invoke("letsencrypt:enable", APP).exit_code == 0
    assert "Pebble Intermediate" in served(h, HOST).issuer.rfc4514_string()
    disabled = h.invoke("letsencrypt:disable", APP)
    assert disabled.exit_code == 0, disabled.output
    assert h.nginx.request(host=HOST).body == "the shop"  # HTTP again, no redirect
    assert h.invoke("letsencrypt:active", APP).stdout == "false\n"

    # a certificate added by hand after enable stays when letsencrypt is disabled
    assert h.invoke("letsencrypt:enable", APP).exit_code == 0
    assert h.invoke("certs:generate", APP, HOST).exit_code == 0
    assert h.invoke("letsencrypt:active", APP).stdout == "false\n"
    assert h.invoke("letsencrypt:disable", APP).exit_code == 0
    pem = tmp_path / "own.pem"
    pem.write_text(h.invoke("certs:show", APP).stdout)
    assert h.nginx.request(host=HOST, https=True, cafile=str(pem)).body == "the shop"
