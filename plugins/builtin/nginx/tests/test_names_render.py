"""Validation and rendering, without nginx."""

from pathlib import Path

import pytest

from skiff.errors import SkiffError, ValidationError
from skiff_nginx import names, render
from skiff_nginx.names import Mapping


@pytest.mark.parametrize(
    "good",
    [
        "example.com",
        "catmeow.skiff.localhost",
        "*.example.com",
        "a.b-c.d9",
        "localhost",
        "127.0.0.1",
        "EXAMPLE.com",
        "x" * 63 + ".com",
        "example.com.",
    ],
)
def test_valid_domains(good):
    assert names.domain(good) == good.lower().rstrip(".")


@pytest.mark.parametrize(
    "bad",
    [
        "x;} server { listen 81; }",
        "a b",
        "",
        ".",
        "-a.com",
        "a-.com",
        "a..b",
        "a_b.com",
        "*.com",
        "a.*.com",
        "x" * 64 + ".com",
        "ex\nample.com",
        "exa$host.com",
        "a/b",
        " a.com",
        "a.com ",
        "a.com..",
        "*",
    ],
)
def test_invalid_domains(bad):
    with pytest.raises(ValidationError):
        names.domain(bad)


def test_mappings():
    assert names.mapping("http:80:5000") == Mapping("http", 80, 5000)
    assert str(names.mapping("https:443:8000")) == "https:443:8000"
    for bad in (
        "http:80",
        "ftp:21:21",
        "http:0:5000",
        "http:80:70000",
        "http:80:5000;",
        "http: 80:5000",
        "http:80:5000:1",
    ):
        with pytest.raises(ValidationError):
            names.mapping(bad)


def test_values():
    assert names.size("10m") == "10m" and names.duration("500ms") == "500ms"
    for bad in ("10m;", "1 m", "10x", ""):
        with pytest.raises(ValidationError):
            names.size(bad)
    with pytest.raises(ValidationError):
        names.upstream("127.0.0.1:80; }")
    with pytest.raises(ValidationError):
        names.address("0.0.0.0:80")
    assert names.addresses("127.0.0.1,[::1]") == "127.0.0.1,[::1]"
    with pytest.raises(ValidationError):
        names.addresses("127.0.0.1,,")


def _proxy(**kw):
    base = dict(
        app="catmeow",
        domains=["catmeow.example.com"],
        mappings=[Mapping("http", 80, 5000)],
        upstreams=["127.0.0.1:32768", "127.0.0.1:32769"],
        options={"client-max-body-size": "20m", "keepalive": "8"},
    )
    base.update(kw)
    return render.AppProxy(**base)


def test_render_http():
    text = render.render(_proxy())
    assert "upstream skiff-catmeow {" in text
    assert "server 127.0.0.1:32768;" in text and "server 127.0.0.1:32769;" in text
    assert "keepalive 8;" in text
    assert "listen 80;" in text and "server_name catmeow.example.com;" in text
    assert "listen [::]:80;" in render.render(_proxy(listen_addresses=["", "[::]"]))
    assert "proxy_pass http://skiff-catmeow;" in text
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Request-Start", "Upgrade"):
        assert f"proxy_set_header {header}" in text
    assert "client_max_body_size 20m;" in text
    assert "proxy_next_upstream error timeout" in text
    assert "ssl" not in text and "return 301" not in text


def test_access_log_is_buffered_by_default_and_unbuffered_with_0():
    log = Path("/logs/catmeow-access.log")
    text = render.render(_proxy(access_log=log))
    assert f"access_log {log} combined buffer=32k flush=1s;" in text
    text = render.render(_proxy(access_log=log, options={"access-log-buffer": "64k"}))
    assert f"access_log {log} combined buffer=64k flush=1s;" in text
    for off in ("0", "0k"):
        text = render.render(_proxy(access_log=log, options={"access-log-buffer": off}))
        assert f"access_log {log};" in text and "buffer=" not in text
    assert "access_log" not in render.render(_proxy())


def test_access_log_buffer_is_validated():
    assert names.size_bytes("64k") == 65536 and names.size_bytes("1m") == 1 << 20 and names.size_bytes("0") == 0
    assert names.log_buffer("1m") == "1m"
    for bad in ("2m", "1g", "64k; include /etc/shadow", "", "-1"):
        with pytest.raises(ValidationError):
            names.log_buffer(bad)
    with pytest.raises(ValidationError):
        render.render(_proxy(access_log=Path("/l.log"), options={"access-log-buffer": "1g"}))


def test_render_tls_redirects_http():
    p = _proxy(
        mappings=[Mapping("http", 80, 5000), Mapping("https", 443, 5000)],
        cert=(Path("/c/server.crt"), Path("/c/server.key")),
        listen_addresses=["127.0.0.1"],
    )
    text = render.render(p)
    assert "listen 127.0.0.1:443 ssl http2;" in text
    assert "ssl_certificate /c/server.crt;" in text
    assert "return 301 https://$host$request_uri;" in text
    p = _proxy(
        mappings=[Mapping("http", 8080, 5000), Mapping("https", 8443, 5000)],
        cert=(Path("/c/server.crt"), Path("/c/server.key")),
    )
    assert "return 301 https://$host:8443$request_uri;" in render.render(p)


def test_render_https_without_cert_is_skipped_with_a_warning():
    p = _proxy(mappings=[Mapping("https", 443, 5000)])
    text = render.render(p)
    assert "listen" not in text and p.warnings


def test_render_refuses_bad_parts():
    with pytest.raises(ValidationError):
        render.render(_proxy(domains=["a b"]))
    with pytest.raises(ValidationError):
        render.render(_proxy(upstreams=["127.0.0.1:1; }"]))
    with pytest.raises(ValidationError):
        render.render(_proxy(options={"client-max-body-size": "1m; include /etc/shadow"}))


def test_urls():
    maps = [Mapping("http", 80, 5000)]
    assert render.urls(["a.example.com", "*.b.com"], maps, False, "h") == ["http://a.example.com"]
    assert render.urls([], [Mapping("http", 10001, 5000)], False, "host") == ["http://host:10001"]
    tls = [Mapping("http", 80, 5000), Mapping("https", 8443, 5000)]
    assert render.urls(["a.com"], tls, True, "h") == ["https://a.com:8443"]


def test_container_port_from_scheduler_then_expose_then_default():
    from skiff_nginx.proxy import container_port

    assert container_port({"container_port": 3000, "exposed_ports": [8000]}) == 3000
    assert container_port({"exposed_ports": [8080, 8000]}) == 8000
    assert container_port({}) == 5000


def test_render_serves_acme_challenges_on_every_server_block_and_redirects_the_rest():
    p = _proxy(
        mappings=[Mapping("http", 80, 5000), Mapping("https", 443, 5000)],
        cert=(Path("/c/server.crt"), Path("/c/server.key")),
        challenge_dir=Path("/var/lib/skiff/acme-challenge"),
    )
    text = render.render(p)
    location = "location ^~ /.well-known/acme-challenge/ {\n        alias /var/lib/skiff/acme-challenge/;"
    assert text.count(location) == 2  # the HTTP block (which redirects the rest) and the HTTPS one
    http_block = text.split("server {")[1]
    assert "proxy_pass" not in http_block
    assert "    location / {\n        return 301 https://$host$request_uri;" in http_block
    assert "\n    return 301" not in text  # a server-level return would answer the challenges too


def test_render_refuses_a_challenge_dir_that_cannot_go_in_a_config():
    with pytest.raises(SkiffError, match="cannot go in an nginx config"):
        render.render(_proxy(challenge_dir=Path("/x; } server {")))
