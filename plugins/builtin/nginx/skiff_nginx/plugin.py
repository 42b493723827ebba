"""The nginx proxy: every app behind nginx, switched safely at the end of a deploy.

Hooks: ``skiff_post_deploy`` (tryfirst: switch traffic to the new containers
before the scheduler retires the old ones, then add the app's URLs),
``skiff_deploy_failed`` (point nginx back at the previous release if this
deploy had switched it), ``skiff_app_destroyed``, ``skiff_app_renamed`` and
``skiff_report``; for plugins that obtain certificates (letsencrypt):
``skiff_app_domains``, ``skiff_app_certificate`` and
``skiff_certificate_install`` (the path ``certs:add`` takes); for plugins with a web
server of their own (the dashboard): ``skiff_global_domains`` and ``skiff_proxy_site``
(:mod:`skiff_nginx.sites`). Every server
block serves ACME HTTP-01 challenge files from
``skiff.contracts.acme_challenge_dir``. Commands: ``domains:*``, ``ports:*``, ``certs:*``,
``nginx:*`` and ``proxy:*`` (Dokku's names). See docs/proxy.md.
"""

from __future__ import annotations

import shutil
from typing import Any

import click

from skiff import hookimpl
from skiff.context import Context
from skiff.contracts import BackupPart, ProxySite, StashKey
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.settings import Namespace

from . import PLUGIN

SWITCHED: StashKey[bool] = StashKey(PLUGIN, "switched")  # this deploy rewrote the app's nginx config


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def skiff_settings() -> list[Namespace]:
    from .settings import SETTINGS

    return [SETTINGS]


@hookimpl(tryfirst=True)
def skiff_post_deploy(deploy: Deploy) -> None:
    from . import proxy
    from .settings import load

    context = deploy.context
    settings = load(context)
    had_config = settings.app_file(deploy.app).exists()
    if not deploy.upstreams and not had_config:
        return
    deploy.output.step(
        "Switching nginx to the new release" if deploy.upstreams else "Removing the nginx config (no web process)"
    )
    proxy.rebuild(context, [deploy.app], metas={deploy.app: deploy.meta}, settings=settings)
    deploy.stash[SWITCHED] = True
    for url in proxy.urls(context, deploy.app, deploy.meta, settings):
        if url not in deploy.urls:
            deploy.urls.append(url)


@hookimpl
def skiff_deploy_failed(deploy: Deploy, phase: str, error: BaseException) -> None:
    if not deploy.stash.get(SWITCHED):
        return
    from . import proxy

    # The failed release never became current: rebuilding from the current one goes back.
    deploy.output.step("Pointing nginx back at the previous release")
    proxy.rebuild(deploy.context, [deploy.app])


@hookimpl(trylast=True)
def skiff_app_domains(context: Context, app: str) -> list[str]:
    from . import proxy

    return proxy.app_domains(context, app)


@hookimpl(trylast=True)
def skiff_app_certificate(context: Context, app: str) -> bytes | None:
    from . import certs
    from .settings import load

    pair = certs.current(load(context), app)
    return pair[0] if pair else None


@hookimpl(trylast=True)
def skiff_certificate_install(context: Context, app: str, certificate: bytes | None, key: bytes | None) -> bool:
    from .commands.certs import install

    if certificate is not None and key is None:
        raise SkiffError("a certificate needs its key")
    install(context, app, None if certificate is None or key is None else (certificate, key))
    return True


@hookimpl(trylast=True)
def skiff_global_domains(context: Context) -> list[str]:
    from . import proxy

    return proxy.global_domains(context)


@hookimpl(trylast=True)
def skiff_proxy_site(context: Context, site: ProxySite, remove: bool) -> bool:
    from . import sites
    from .settings import load

    sites.apply(load(context), site, remove, context.output, context.root)
    return True


@hookimpl
def skiff_app_destroyed(context: Context, app: str) -> None:
    from . import control
    from .settings import load

    settings = load(context)
    path = settings.app_file(app)
    if path.exists():
        control.apply(settings, {path: None}, context.output, app)
    shutil.rmtree(settings.certs_dir / app, ignore_errors=True)
    for kind in ("access", "error"):
        settings.log_file(app, kind).unlink(missing_ok=True)


@hookimpl
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    from . import control, proxy
    from .settings import load

    settings = load(context)
    if (settings.certs_dir / old).exists():
        shutil.move(str(settings.certs_dir / old), str(settings.certs_dir / new))
    files = {
        settings.app_file(old): None,
        settings.app_file(new): proxy.config_text(context, new, proxy.current_meta(context, new), settings),
    }
    if any(path.exists() for path in files) or files[settings.app_file(new)]:
        control.apply(settings, files, context.output, new)


@hookimpl
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]]:
    from . import proxy
    from .commands import certs, domains, nginx, ports

    meta = proxy.current_meta(context, app) or {}
    return {
        "domains": domains.domains_report_fields(context, app),
        "ports": ports.report_fields(context, app),
        "ssl": certs.report_fields(context, app),
        "proxy": {"upstreams": list(meta.get("upstreams") or []), "urls": proxy.urls(context, app, meta)},
        "nginx": nginx.nginx_report_fields(context, app),
    }


@hookimpl
def skiff_backup_parts(context: Context) -> list[BackupPart]:
    """The apps' certificates and keys (``certs:add``, letsencrypt's installs); the server
    blocks are not kept: every app's redeploy writes them again."""
    from .settings import load

    certs = load(context).certs_dir.relative_to(context.root)
    return [BackupPart("nginx:certs", "the apps' TLS certificates and keys", paths=(certs.as_posix(),))]
