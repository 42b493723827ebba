"""What the pages show, read in the server's process through the core's public API.

Apps come from :func:`skiff.access.visible_apps` (the key's role and access list, asked
on every request); everything else from the state store and ``skiff_report`` (the same
sections ``apps:report`` prints). Nothing here changes anything: changes are
:mod:`.actions`.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from skiff import access
from skiff.context import Context
from skiff.errors import SkiffError

CONTAINER = re.compile(r"(?P<app>[a-z0-9-]+)\.(?P<process>[a-z0-9_-]+)\.(?P<index>[0-9]+)")


class EngineDown(SkiffError):
    """The container engine does not answer."""


class NotVisible(SkiffError):
    """The app does not exist, or the key may not see it (the same answer for both: 404)."""


@dataclass
class AppRow:
    name: str
    status: str
    processes: dict[str, int]
    running: dict[str, int]
    last_deploy: str
    revision: str
    urls: list[str]


@dataclass
class ReleaseRow:
    version: int
    when: str
    revision: str
    description: str
    status: str
    current: bool


@dataclass
class AppPage:
    row: AppRow
    releases: list[ReleaseRow]
    config_keys: list[str]
    domains: list[dict[str, str]]
    services: list[dict[str, str]]
    extra: dict[str, Any] = field(default_factory=dict)


def when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def role(context: Context, key: str) -> str:
    return access.key_role(context, key)


def visible(context: Context, key: str) -> list[str]:
    return access.visible_apps(context, key)


def require_visible(context: Context, key: str, app: str) -> str:
    """``app`` if the key may see it; :class:`NotVisible` otherwise (unknown apps alike)."""
    if app not in visible(context, key):
        raise NotVisible(f"no app {app!r} here")
    return app


def report(context: Context, app: str) -> dict[str, Any]:
    """The merged ``skiff_report`` sections of ``app``."""
    merged: dict[str, Any] = {}
    for answer in context.hook.skiff_report(context=context, app=app):
        for section, fields in (answer or {}).items():
            merged.setdefault(section, {}).update(fields)
    return merged


def _running(containers: list[str], app: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in containers:
        match = CONTAINER.fullmatch(name)
        if match and match["app"] == app:
            counts[match["process"]] = counts.get(match["process"], 0) + 1
    return counts


def app_row(context: Context, app: str, sections: dict[str, Any] | None = None) -> AppRow:
    """One row of the apps list; :class:`EngineDown` when the engine does not answer."""
    sections = report(context, app) if sections is None else sections
    ps = sections.get("ps") or {}
    if "error" in ps:
        raise EngineDown(f"the container engine does not answer ({ps['error']}); try again when it is back")
    release = context.state.current_release(app)
    wanted = ps.get("formation") or (release.formation if release else {})
    formation = {k: int(v) for k, v in wanted.items()}
    running = _running(list(ps.get("containers") or []), app)
    if release is None:
        status = "not deployed"
    elif ps.get("stopped"):
        status = "stopped"
    elif sum(running.values()) and all(running.get(p, 0) >= n for p, n in formation.items()):
        status = "running"
    elif sum(running.values()):
        status = "degraded"
    else:
        status = "down"
    return AppRow(
        name=app,
        status=status,
        processes=formation,
        running=running,
        last_deploy=when(release.created) if release else "",
        revision=(release.revision or "")[:7] if release else "",
        urls=list((sections.get("proxy") or {}).get("urls") or []),
    )


def apps(context: Context, key: str) -> list[AppRow]:
    return [app_row(context, app) for app in visible(context, key)]


def _services(sections: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for kind, fields in sorted(sections.items()):
        links = fields.get("links") if isinstance(fields, dict) else None
        if isinstance(links, dict):
            for name, how in sorted(links.items()):
                rows.append({"kind": kind, "name": str(name), "how": how if isinstance(how, str) else ""})
    return rows


def _domains(context: Context, app: str, sections: dict[str, Any]) -> list[dict[str, str]]:
    """The app's domains (``skiff_app_domains``) with the expiry of the certificate that covers them."""
    names = context.hook.skiff_app_domains(context=context, app=app) or []
    ssl = sections.get("ssl") or {}
    expiry = str(ssl.get("expires") or "") if ssl.get("enabled") else ""
    covered = set(ssl.get("names") or [])
    return [
        {"domain": name, "expires": expiry if expiry and (not covered or name in covered) else ""}
        for name in dict.fromkeys(names)
    ]


def app_page(context: Context, key: str, app: str) -> AppPage:
    require_visible(context, key, app)
    sections = report(context, app)
    row = app_row(context, app, sections)
    current = context.state.current_release(app)
    releases = [
        ReleaseRow(
            version=r.version,
            when=when(r.created),
            revision=(r.revision or "")[:7],
            description=r.description,
            status=r.status,
            current=current is not None and r.version == current.version,
        )
        for r in context.state.releases(app)
    ]
    releases.sort(key=lambda r: -r.version)
    return AppPage(
        row=row,
        releases=releases,
        config_keys=sorted(context.state.get_config(app)),
        domains=_domains(context, app, sections),
        services=_services(sections),
    )
