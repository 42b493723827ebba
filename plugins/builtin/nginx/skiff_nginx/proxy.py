"""An app's proxy as stored: domains, port mappings, certificate; rebuilding its config.

Properties of plugin ``nginx`` (``state.get_property("nginx", KEY, app=APP)``):
``domains`` (list), ``vhosts`` (bool, default on), ``ports`` (list of
mappings; empty = defaults), ``auto-port`` (the port of an app without a
domain), ``proxy`` (bool, default on), ``custom-config`` (text) and the per-app
settings of :mod:`settings`. Global: ``global-domains`` (list).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from skiff import contracts
from skiff.context import Context
from skiff.contracts import ReleaseMeta
from skiff.errors import SkiffError
from skiff.lifecycle import app_lock
from skiff.output import Output
from skiff.state import GLOBAL

from . import control, names, render
from .names import Mapping
from .settings import PLUGIN, Settings, app_options, load

DEFAULT_CONTAINER_PORT = contracts.DEFAULT_PORT
AUTO_PORT_RANGE = range(10000, 20000)


def prop(context: Context, key: str, app: str = GLOBAL, default: Any = None) -> Any:
    return context.state.get_property(PLUGIN, key, app=app, default=default)


def set_prop(context: Context, key: str, value: Any, app: str = GLOBAL) -> None:
    context.state.set_property(PLUGIN, key, value, app=app)


# -- domains ----------------------------------------------------------------


def global_domains(context: Context) -> list[str]:
    return list(prop(context, "global-domains", default=[]) or [])


def own_domains(context: Context, app: str) -> list[str]:
    return list(prop(context, "domains", app, default=[]) or [])


def vhosts_enabled(context: Context, app: str) -> bool:
    return bool(prop(context, "vhosts", app, default=True))


def app_domains(context: Context, app: str) -> list[str]:
    """Every name the app answers to: its own, then ``APP.GLOBAL`` for each global domain."""
    if not vhosts_enabled(context, app):
        return []
    result = own_domains(context, app)
    for domain in global_domains(context):
        name = f"{app}.{domain}"
        if len(name) <= 253 and name not in result:
            result.append(name)
    return result


# -- ports --------------------------------------------------------------------


def container_port(meta: ReleaseMeta) -> int:
    """The web container's port: the scheduler's, else the lowest EXPOSE, else 5000 (one core rule)."""
    return contracts.container_port(meta.get("exposed_ports"), meta.get("container_port"))


def explicit_mappings(context: Context, app: str) -> list[Mapping]:
    return [names.mapping(text) for text in prop(context, "ports", app, default=[]) or []]


def auto_port(context: Context, app: str, settings: Settings) -> int:
    """A stable free port for an app that has no domain (allocated once)."""
    port = prop(context, "auto-port", app)
    if port:
        return int(port)
    taken = {prop(context, "auto-port", other) for other in context.state.list_apps()}
    for candidate in AUTO_PORT_RANGE:
        if candidate not in taken and _port_free(settings.listen_addresses[0], candidate):
            set_prop(context, "auto-port", candidate, app)
            return candidate
    raise SkiffError("no free port left for an app without a domain; add a domain (domains:add)")


def _port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if address.startswith("[") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((address.strip("[]"), port))
        except OSError:
            return False
    return True


def mappings(
    context: Context, app: str, meta: ReleaseMeta, settings: Settings, has_cert: bool, allocate: bool = True
) -> list[Mapping]:
    """The app's mappings: explicit ones, or defaults (80/443 with a domain, a port of its own without)."""
    explicit = explicit_mappings(context, app)
    if explicit:
        result = list(explicit)
        if has_cert and not any(m.scheme == "https" for m in result):
            result += [
                Mapping("https", settings.https_port, m.container_port)
                for m in result
                if m.scheme == "http" and m.host_port == settings.http_port
            ][:1]
        return result
    port = container_port(meta)
    if app_domains(context, app):
        result = [Mapping("http", settings.http_port, port)]
        if has_cert:
            result.append(Mapping("https", settings.https_port, port))
        return result
    if not allocate and not prop(context, "auto-port", app):
        return []
    return [Mapping("http", auto_port(context, app, settings), port)]


# -- certificates ---------------------------------------------------------------


def cert_paths(settings: Settings, app: str) -> tuple[Path, Path] | None:
    crt, key = settings.cert_files(app)
    return (crt, key) if crt.exists() and key.exists() else None


# -- building and applying ------------------------------------------------------


def current_meta(context: Context, app: str) -> ReleaseMeta | None:
    release = context.state.current_release(app)
    return ReleaseMeta(**release.meta) if release is not None else None


def build(context: Context, app: str, meta: ReleaseMeta, settings: Settings) -> render.AppProxy | None:
    """The proxy of ``app`` for a release with ``meta``; ``None`` when nothing is proxied."""
    upstreams = [names.upstream(u) for u in meta.get("upstreams") or []]
    if not upstreams or not prop(context, "proxy", app, default=True):
        return None
    cert = cert_paths(settings, app)
    return render.AppProxy(
        app=app,
        domains=app_domains(context, app),
        mappings=mappings(context, app, meta, settings, cert is not None),
        upstreams=upstreams,
        listen_addresses=settings.listen_addresses,
        cert=cert,
        options=app_options(context, app),
        access_log=settings.log_file(app, "access"),
        error_log=settings.log_file(app, "error"),
        custom=prop(context, "custom-config", app, default="") or "",
        challenge_dir=contracts.acme_challenge_dir(context.root),
    )


def config_text(
    context: Context,
    app: str,
    meta: ReleaseMeta | None,
    settings: Settings,
    output: Output | None = None,
    custom: str | None = None,
) -> str | None:
    """The app's config file for a release with ``meta``; ``None``: the app gets no file."""
    if meta is None:
        return None
    proxy = build(context, app, meta, settings)
    if proxy is None:
        return None
    if custom is not None:
        proxy.custom = custom
    text = render.render(proxy)
    for warning in proxy.warnings:
        (output or context.output).warn(warning)
    return text


def rebuild(
    context: Context,
    apps: Iterable[str],
    metas: dict[str, ReleaseMeta] | None = None,
    settings: Settings | None = None,
    custom: dict[str, str] | None = None,
    force: bool = False,
) -> bool:
    """Render and safely apply the config of ``apps`` in one nginx test and reload.

    ``metas`` overrides the release meta an app is rendered from (a deploy in
    progress); other apps use their current release. ``custom`` tries a
    custom-config value before it is stored. Apps without a release or
    without web containers get no config file. ``force`` reloads even when no
    file changed (a certificate was replaced).
    """
    settings = settings or load(context)
    files: dict[Path, str | None] = {}
    apps = list(apps)
    for app in apps:
        meta = (metas or {}).get(app) or current_meta(context, app)
        files[settings.app_file(app)] = config_text(context, app, meta, settings, custom=(custom or {}).get(app))
    what = apps[0] if len(apps) == 1 else f"{len(apps)} apps"
    return control.apply(settings, files, context.output, what, force=force)


def urls(context: Context, app: str, meta: ReleaseMeta | None, settings: Settings | None = None) -> list[str]:
    """The URLs of ``app`` (empty when it has no web containers or no proxy)."""
    settings = settings or load(context)
    if meta is None or not meta.get("upstreams") or not prop(context, "proxy", app, default=True):
        return []
    cert = cert_paths(settings, app)
    domains = app_domains(context, app)
    maps = mappings(context, app, meta, settings, cert is not None, allocate=False)
    host = settings.public_host or next((a for a in settings.listen_addresses if a), "") or socket.getfqdn()
    return render.urls(domains, maps, cert is not None, host)


def apply_change(context: Context, apps: Iterable[str], force: bool = False) -> None:
    """After a settings change: rebuild the deployed ones of ``apps`` and say so (``force``: reload anyway)."""
    deployed = [app for app in apps if context.state.current_release(app) is not None]
    if not deployed:
        return
    context.output.step("Reloading nginx" if len(deployed) > 1 else f"Configuring nginx for {deployed[0]}")
    with ExitStack() as stack:
        # A deploy in progress switches nginx itself; wait for it rather than race it.
        for app in sorted(deployed):
            stack.enter_context(app_lock(context, app))
        rebuild(context, deployed, force=force)
    settings = load(context)
    for app in deployed:
        for url in urls(context, app, current_meta(context, app), settings):
            context.output.info(url)
