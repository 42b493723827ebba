"""End to end: the dashboard's certificate from Pebble (``dashboard:letsencrypt``), served by the real nginx.

No container: the dashboard's server is a loopback HTTP server of the test (its ``port``
setting points nginx at it). Pebble validates the HTTP-01 challenge for real through the
dashboard's own server block (the test DNS says 127.0.0.1 for its domain); the test trusts
Pebble's root, nothing else does. Then ``letsencrypt:auto-renew`` renews the site and the
dashboard installs the renewal (``skiff_site_certificate_renewed``).
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import skiff_dashboard.plugin as dashboard_plugin
import skiff_letsencrypt.plugin as letsencrypt_plugin
import skiff_nginx.plugin as nginx_plugin

pytestmark = pytest.mark.e2e

DOMAIN = "dashboard.skiff.test"


@pytest.fixture
def skiff_root(served_skiff_root):
    """nginx's workers read the challenge files under it, as on an installed server."""
    return served_skiff_root


@pytest.fixture
def h(skiff, private_nginx, pebble, test_dns, http_backend):
    harness = skiff(("nginx", nginx_plugin), ("letsencrypt", letsencrypt_plugin), ("dashboard", dashboard_plugin))
    port = http_backend("the dashboard").rsplit(":", 1)[1]
    for args in (("domain", DOMAIN), ("port", port)):
        assert harness.invoke("dashboard:set", "--global", *args).exit_code == 0
    assert harness.invoke("dashboard:enable").exit_code == 0
    # Pebble's certificates live 2 hours: a grace of 1 hour keeps a new one from being due at once
    for args in (("email", "ops@example.com"), ("server", pebble.directory), ("graceperiod", "3600")):
        result = harness.invoke("letsencrypt:set", "--global", *args)
        assert result.exit_code == 0, result.output
    harness.nginx, harness.pebble, harness.dns = private_nginx, pebble, test_dns
    return harness


def served(h, host: str) -> x509.Certificate:
    """The certificate nginx presents for ``host``, verified against Pebble's root only."""
    context = ssl.create_default_context(cafile=str(h.pebble.root))
    with socket.create_connection(("127.0.0.1", h.nginx.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def test_the_dashboard_gets_its_certificate_from_pebble_nginx_serves_it_and_a_renewal_replaces_it(h):
    assert h.nginx.request(host=DOMAIN).body == "the dashboard"  # HTTP before

    # its name resolves nowhere: the challenge fails, one line, the HTTP site stays
    failed = h.invoke("dashboard:letsencrypt")
    assert failed.exit_code == 1 and len(failed.stderr.splitlines()) == 1, failed.output
    assert "could not get a certificate for the dashboard site" in failed.stderr
    assert "the dashboard's site is unchanged" in failed.stderr
    assert h.nginx.request(host=DOMAIN).body == "the dashboard"
    assert not (h.root / "dashboard" / "tls" / "server.crt").exists()

    h.dns.resolvable.add(DOMAIN)
    issued = h.invoke("dashboard:letsencrypt")
    assert issued.exit_code == 0, issued.output
    assert "an admin runs letsencrypt:cron-job --add" in issued.stderr  # renewals are not scheduled yet
    first = served(h, DOMAIN)  # verified against Pebble's root, for this name
    assert "Pebble Intermediate" in first.issuer.rfc4514_string()
    names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [DOMAIN]
    answer = h.nginx.request(host=DOMAIN, https=True, cafile=str(h.pebble.root))
    assert (answer.status, answer.body) == (200, "the dashboard")
    plain = h.nginx.request("/", host=DOMAIN)
    assert plain.status == 301 and plain.headers["location"].startswith(f"https://{DOMAIN}:")
    challenge = h.nginx.request("/.well-known/acme-challenge/" + "A" * 43, host=DOMAIN)
    assert challenge.status == 404  # served from the challenge directory over HTTP, not redirected
    report = json.loads(h.invoke("dashboard:report", "--format", "json").stdout)
    assert report["https"] is True and report["letsencrypt"] is True and report["url"] == f"https://{DOMAIN}"

    # a renewal that is not due orders nothing; within the grace period it renews and nginx serves it
    assert h.invoke("letsencrypt:auto-renew").exit_code == 0
    assert served(h, DOMAIN).serial_number == first.serial_number
    assert h.invoke("letsencrypt:set", "--global", "graceperiod", str(3 * 3600)).exit_code == 0  # > 2 h validity
    renewed = h.invoke("letsencrypt:auto-renew")
    assert renewed.exit_code == 0, renewed.output
    assert "the dashboard serves its renewed certificate" in renewed.stdout
    second = served(h, DOMAIN)
    assert second.serial_number != first.serial_number
    installed = (h.root / "dashboard" / "tls" / "server.crt").read_bytes()
    assert installed.startswith(second.public_bytes(serialization.Encoding.PEM))
