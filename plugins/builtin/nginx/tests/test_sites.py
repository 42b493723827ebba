"""Proxy sites (``skiff_proxy_site``): a plugin's own server behind a private nginx."""

from __future__ import annotations

from pathlib import Path

import pytest

import skiff_nginx.plugin as nginx_plugin
from skiff.contracts import ProxySite
from skiff.errors import SkiffError, ValidationError
from skiff.testing.nginx import self_signed
from skiff_nginx import sites
from skiff_nginx.settings import load

STREAM = r"^/apps/[a-z0-9-]+/logs/stream$"


@pytest.fixture
def h(skiff, private_nginx):
    harness = skiff(nginx_plugin)
    harness.nginx = private_nginx
    return harness


def site(upstream: str, **fields) -> ProxySite:
    return ProxySite(**{"name": "dash", "domain": "dash.skiff.test", "upstream": upstream, **fields})


def test_a_site_is_served_with_its_stream_path_unbuffered_then_removed(h, http_backend):
    backend = http_backend("hello from the site")
    assert h.context.hook.skiff_proxy_site(context=h.context, site=site(backend, stream_paths=(STREAM,)), remove=False)
    served = h.nginx.request("/", host="dash.skiff.test")
    assert served.status == 200 and served.body == "hello from the site"
    text = sites.site_file(load(h.context), "dash").read_text()
    assert f"location ~ {STREAM} {{" in text and "proxy_buffering off;" in text
    assert h.nginx.request("/", host="other.skiff.test").status == 404
    assert h.context.hook.skiff_proxy_site(context=h.context, site=site(backend), remove=True)
    assert not sites.site_file(load(h.context), "dash").exists()
    assert h.nginx.request("/", host="dash.skiff.test").status == 404


def test_with_a_certificate_it_is_https_and_http_redirects(h, http_backend, tmp_path):
    backend = http_backend("secure site")
    crt, key = self_signed(tmp_path, "dash.skiff.test")
    h.context.hook.skiff_proxy_site(context=h.context, site=site(backend, certificate=(crt, key)), remove=False)
    plain = h.nginx.request("/x", host="dash.skiff.test")
    assert plain.status == 301 and plain.headers["location"] == f"https://dash.skiff.test:{h.nginx.https_port}/x"
    secure = h.nginx.request(
        "/", host="dash.skiff.test", https=True, cafile=str(crt), server_hostname="dash.skiff.test"
    )
    assert secure.status == 200 and secure.body == "secure site"


def test_a_key_that_does_not_match_is_refused_and_the_old_site_stays(h, http_backend, tmp_path):
    backend = http_backend("old site")
    h.context.hook.skiff_proxy_site(context=h.context, site=site(backend), remove=False)
    crt, _ = self_signed(tmp_path, "dash.skiff.test")
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = self_signed(other, "dash.skiff.test")
    with pytest.raises(SkiffError, match="nginx rejected"):
        h.context.hook.skiff_proxy_site(
            context=h.context, site=site(backend, certificate=(crt, wrong_key)), remove=False
        )
    assert h.nginx.request("/", host="dash.skiff.test").body == "old site"


@pytest.mark.parametrize(
    "fields",
    [
        {"domain": "dash.skiff.test; include /etc/passwd"},
        {"domain": "*.skiff.test"},
        {"domain": "DASH.skiff.test"},
        {"upstream": "10.0.0.1:80"},
        {"upstream": "127.0.0.1:80; return 200"},
        {"name": "../x"},
        {"stream_paths": ("^/a { return 200; }$",)},
        {"stream_paths": ("/no-anchor",)},
        {"certificate": (Path("/tmp/a b.crt"), Path("/tmp/k.key"))},
    ],
)
def test_fields_that_could_not_go_in_a_config_are_refused(h, fields):
    with pytest.raises(ValidationError):
        sites.check(site(**{"upstream": "127.0.0.1:5030", **fields}))


def test_global_domains_are_the_proxys(h):
    assert h.invoke("domains:set-global", "a.test").exit_code == 0
    assert h.context.hook.skiff_global_domains(context=h.context) == ["a.test"]
