"""The declared settings of ``dashboard:set --global KEY VALUE`` (all global, admin-level)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, integer, parse_bool

from . import PLUGIN

if TYPE_CHECKING:  # pragma: no cover
    from skiff.context import Context

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DEFAULT_PORT = 5030
DEFAULT_SESSION_TTL = 8 * 3600
DEFAULT_LINK_TTL = 300


def domain(value: str) -> str:
    """A lowercase DNS name (no wildcard, no trailing dot), checked with full matches."""
    text = str(value).strip().lower()
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or not all(LABEL.fullmatch(label) for label in labels):
        raise ValidationError(f"invalid domain {value!r}: a DNS name like dashboard.example.com")
    return text


def _global(name: str, type: Any, default: Any, help: str, env: str | None = None) -> Setting:
    return Setting(name, type=type, default=default, scope="global", level="admin", env=env, help=help)


SITE_SETTINGS = ("enabled", "domain", "port")


def _apply(context: Context, scope: str, setting: Setting, store: Callable[[], None]) -> None:
    """Store the change; a change of the site (on/off, domain, port) rewrites nginx's site, or is undone."""
    if setting.name not in SITE_SETTINGS:
        store()
        return
    from . import site

    before = context.state.get_property(PLUGIN, setting.name)
    was_on = bool(SETTINGS.get(context.state, "enabled"))
    store()  # one site file (site-dashboard.conf): rewritten for the new value, or removed
    try:
        site.sync(context)
    except Exception:
        if before is None:
            context.state.delete_property(PLUGIN, setting.name)
        else:
            context.state.set_property(PLUGIN, setting.name, before)
        if was_on:
            site.sync(context)
        raise


SETTINGS = Namespace(
    PLUGIN,
    (
        _global("enabled", parse_bool, False, "serve the dashboard (dashboard:enable / dashboard:disable)"),
        _global("domain", domain, None, "the dashboard's host name (default: dashboard.GLOBAL_DOMAIN)"),
        _global(
            "port",
            integer(1024, 65535),
            DEFAULT_PORT,
            "the loopback port the server listens on",
            env="SKIFF_DASHBOARD_PORT",
        ),
        _global("session-ttl", integer(60, 30 * 86400), DEFAULT_SESSION_TTL, "seconds a session lasts"),
        _global("link-ttl", integer(10, 3600), DEFAULT_LINK_TTL, "seconds a login link stays valid"),
    ),
    commands=("set",),
    apply=_apply,
)
