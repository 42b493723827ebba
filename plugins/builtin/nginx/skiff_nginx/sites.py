"""Server blocks of sites that are not apps: a plugin's own web server (``skiff_proxy_site``).

A site is a :class:`skiff.contracts.ProxySite` (the dashboard). Every field is checked
with a full match before it is written; the file is ``conf.d/site-NAME.conf`` and goes
through :func:`skiff_nginx.control.apply` like an app's (tested, reloaded, rolled back).
"""

from __future__ import annotations

import re
from pathlib import Path

from skiff import contracts
from skiff.contracts import ProxySite
from skiff.errors import ValidationError
from skiff.output import Output

from . import control, names
from .settings import Settings

PATH = re.compile(r"/[A-Za-z0-9._/+-]{1,400}")
LOOPBACK = re.compile(r"127\.0\.0\.1:([0-9]{1,5})")


def site_file(settings: Settings, name: str) -> Path:
    return settings.conf_dir / f"site-{name}.conf"


def check(site: ProxySite) -> None:
    """Refuse a site any of whose fields could not go in an nginx config as it is."""
    if not re.fullmatch(contracts.PROXY_SITE_NAME, site.name):
        raise ValidationError(f"invalid site name {site.name!r}")
    if site.domain.startswith("*.") or names.domain(site.domain) != site.domain:
        raise ValidationError(f"invalid site domain {site.domain!r}: a lowercase DNS name without a wildcard")
    match = LOOPBACK.fullmatch(site.upstream)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise ValidationError(f"invalid site upstream {site.upstream!r}: expected 127.0.0.1:PORT")
    for path in site.certificate or ():
        if not PATH.fullmatch(str(path)):
            raise ValidationError(f"the certificate path {str(path)!r} cannot go in an nginx config")
    for pattern in site.stream_paths:
        if not re.fullmatch(contracts.PROXY_STREAM_PATH, pattern):
            raise ValidationError(f"invalid stream path {pattern!r}")


def _location(site: ProxySite, where: str, stream: bool) -> list[str]:
    lines = [
        f"    location {where} {{",
        f"        proxy_pass http://{site.upstream};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        '        proxy_set_header Connection "";',
    ]
    if stream:
        lines += ["        proxy_buffering off;", "        proxy_cache off;", "        proxy_read_timeout 1h;"]
    return lines + ["    }"]


def _listen(settings: Settings, port: int, tls: bool) -> list[str]:
    lines = []
    for address in settings.listen_addresses:
        where = f"{address}:{port}" if address else str(port)
        lines.append(f"    listen {where}{' ssl http2' if tls else ''};")
    return lines


def _challenge(root: Path) -> list[str]:
    directory = contracts.acme_challenge_dir(root)
    if not PATH.fullmatch(str(directory)):
        return []
    return [
        f"    location ^~ {contracts.ACME_CHALLENGE_PATH} {{",
        f"        alias {directory}/;",
        "        default_type text/plain;",
        "    }",
    ]


def render(settings: Settings, site: ProxySite, skiff_root: Path) -> str:
    """The config file of ``site`` (checked first)."""
    check(site)
    out = [f"# Written by skiff for the {site.name} site; do not edit."]
    head = [f"    server_name {site.domain};"]
    body = _location(site, "/", False)
    for pattern in site.stream_paths:
        body += _location(site, f"~ {pattern}", True)
    if site.certificate:
        crt, key = site.certificate
        https = settings.https_port
        target = "https://$host" + ("" if https == 443 else f":{https}") + "$request_uri"
        out += ["server {", *_listen(settings, settings.http_port, False), *head, *_challenge(skiff_root)]
        out += ["    location / {", f"        return 301 {target};", "    }", "}", ""]
        out += ["server {", *_listen(settings, https, True), *head]
        out += [f"    ssl_certificate {crt};", f"    ssl_certificate_key {key};", "    ssl_protocols TLSv1.2 TLSv1.3;"]
        out += [*_challenge(skiff_root), *body, "}", ""]
    else:
        out += ["server {", *_listen(settings, settings.http_port, False), *head, *_challenge(skiff_root), *body]
        out += ["}", ""]
    return "\n".join(out).rstrip() + "\n"


def apply(settings: Settings, site: ProxySite, remove: bool, output: Output, skiff_root: Path) -> None:
    """Write (or remove) the site's file, test, reload; nginx's refusal leaves the old one."""
    check(site)
    text = None if remove else render(settings, site, skiff_root)
    control.apply(settings, {site_file(settings, site.name): text}, output, f"the {site.name} site", force=True)
