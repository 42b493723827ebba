"""Render an app's nginx config from validated parts (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from skiff import contracts
from skiff.errors import SkiffError

from . import names
from .names import Mapping

SHARED_FILE = "00-skiff.conf"
ACCESS_LOG_BUFFER = "32k"  # per app: nginx:set APP access-log-buffer SIZE (0: unbuffered)
ACCESS_LOG_FLUSH = "1s"  # a buffered line reaches the file at the latest this long after its request

SHARED = """\
# Written by skiff; do not edit. Shared by every app's config in this directory.
map $http_upgrade $skiff_connection_upgrade {
    default upgrade;
    ''      '';
}
server_names_hash_bucket_size 128;
"""


@dataclass
class AppProxy:
    """Everything one app's config is made of (already validated)."""

    app: str
    domains: list[str]
    mappings: list[Mapping]
    upstreams: list[str]
    listen_addresses: list[str] = field(default_factory=lambda: [""])
    cert: tuple[Path, Path] | None = None
    options: dict[str, str] = field(default_factory=dict)
    access_log: Path | None = None
    error_log: Path | None = None
    custom: str = ""  # raw directives, set by the server's admin only (nginx:custom-config)
    challenge_dir: Path | None = None  # ACME HTTP-01 files, served on every server block (contracts)
    warnings: list[str] = field(default_factory=list)

    @property
    def upstream_name(self) -> str:
        return f"skiff-{self.app}"

    def https_port(self) -> int | None:
        ports = sorted({m.host_port for m in self.mappings if m.scheme == "https"})
        return ports[0] if ports else None


def _listen(address: str, port: int, tls: bool) -> str:
    where = f"{address}:{port}" if address else str(port)
    return f"    listen {where}{' ssl http2' if tls else ''};"


def _server_head(p: AppProxy, port: int, tls: bool) -> list[str]:
    lines = ["server {"] + [_listen(address, port, tls) for address in p.listen_addresses]
    if p.domains:
        lines.append(f"    server_name {' '.join(p.domains)};")
    if p.access_log:
        lines.append(_access_log(p))
    if p.error_log:
        lines.append(f"    error_log {p.error_log};")
    return lines


def _access_log(p: AppProxy) -> str:
    """The app's access log, buffered by default: one write per ``access-log-buffer`` bytes or
    second instead of one per request (the lines reach the file within a second, and when nginx
    reloads, reopens its logs or stops). ``access-log-buffer 0`` writes every line at once."""
    buffer = names.log_buffer(p.options.get("access-log-buffer", ACCESS_LOG_BUFFER))
    if names.size_bytes(buffer) == 0:
        return f"    access_log {p.access_log};"
    return f"    access_log {p.access_log} combined buffer={buffer} flush={ACCESS_LOG_FLUSH};"


def _challenge(p: AppProxy) -> list[str]:
    """ACME HTTP-01 challenge files: answered by nginx from a directory, never by the app."""
    if p.challenge_dir is None:
        return []
    if not re.fullmatch(r"/[A-Za-z0-9._/+-]*", str(p.challenge_dir)):
        raise SkiffError(f"the ACME challenge directory {str(p.challenge_dir)!r} cannot go in an nginx config")
    return [
        f"    location ^~ {contracts.ACME_CHALLENGE_PATH} {{",
        f"        alias {p.challenge_dir}/;",
        "        default_type text/plain;",
        "    }",
    ]


def _tls(p: AppProxy) -> list[str]:
    assert p.cert is not None
    crt, key = p.cert
    return [
        f"    ssl_certificate {crt};",
        f"    ssl_certificate_key {key};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache shared:skiff_ssl:10m;",
        "    ssl_session_timeout 1h;",
    ]


def _proxy(p: AppProxy) -> list[str]:
    o = p.options
    lines = [
        f"    client_max_body_size {names.size(o.get('client-max-body-size', '1m'))};",
        "    location / {",
        f"        proxy_pass http://{p.upstream_name};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $skiff_connection_upgrade;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-Port $server_port;",
        '        proxy_set_header X-Request-Start "t=${msec}";',
        f"        proxy_connect_timeout {names.duration(o.get('proxy-connect-timeout', '5s'))};",
        f"        proxy_read_timeout {names.duration(o.get('proxy-read-timeout', '60s'))};",
        # Idempotent requests that hit a container going away are retried on another.
        "        proxy_next_upstream error timeout http_502 http_503 http_504;",
        "        proxy_next_upstream_tries 3;",
        "    }",
    ]
    if p.custom.strip():
        lines += ["    # custom config (nginx:custom-config)"]
        lines += [f"    {line}" if line.strip() else "" for line in p.custom.strip().splitlines()]
    return lines


def render(p: AppProxy) -> str:
    """The whole config file of one app."""
    for address in p.upstreams:
        names.upstream(address)
    for name in p.domains:
        names.domain(name)
    for address in p.listen_addresses:
        names.address(address)
    keepalive = int(p.options.get("keepalive", "16"))
    out = [
        f"# Written by skiff for app {p.app}; do not edit (nginx:show-config {p.app}).",
        f"upstream {p.upstream_name} {{",
    ]
    out += [f"    server {address};" for address in p.upstreams]
    # Idle upstream connections close before the app server's own keep-alive timeout
    # (gunicorn: 2 s), so nginx never sends a request on a connection the app is closing.
    out += [f"    keepalive {keepalive};", "    keepalive_timeout 1s;", "}", ""]
    https_port = p.https_port() if p.cert else None
    seen: set[tuple[str, int]] = set()
    for m in sorted(p.mappings, key=lambda m: (m.scheme, m.host_port)):
        if (m.scheme, m.host_port) in seen:
            continue
        seen.add((m.scheme, m.host_port))
        if m.scheme == "https":
            if not p.cert:
                p.warnings.append(f"{m} needs a certificate (certs:add or certs:generate); skipped")
                continue
            out += _server_head(p, m.host_port, True) + _tls(p) + _challenge(p) + _proxy(p) + ["}", ""]
        elif https_port:
            # In a location, not at server level: a server-level return would answer the challenges too.
            target = "https://$host" + ("" if https_port == 443 else f":{https_port}") + "$request_uri"
            redirect = ["    location / {", f"        return 301 {target};", "    }"]
            out += _server_head(p, m.host_port, False) + _challenge(p) + redirect + ["}", ""]
        else:
            out += _server_head(p, m.host_port, False) + _challenge(p) + _proxy(p) + ["}", ""]
    return "\n".join(out).rstrip() + "\n"


def urls(domains: list[str], mappings: list[Mapping], has_cert: bool, fallback_host: str) -> list[str]:
    """The URLs an app answers on, for the end of a deploy and the reports."""
    schemes = ["https"] if has_cert and any(m.scheme == "https" for m in mappings) else ["http"]
    result = []
    for scheme in schemes:
        ports = sorted({m.host_port for m in mappings if m.scheme == scheme})
        for port in ports:
            default = {"http": 80, "https": 443}[scheme]
            suffix = "" if port == default else f":{port}"
            hosts = [d for d in domains if not d.startswith("*.")] or ([] if domains else [fallback_host])
            result += [f"{scheme}://{host}{suffix}" for host in hosts]
    return result
