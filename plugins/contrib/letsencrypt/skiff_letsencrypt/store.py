"""What the plugin keeps: account keys, each app's certificate, its state.

Under ``SKIFF_ROOT/letsencrypt`` (0700):

- ``accounts/<id>/account.key``: the ACME account key (0600) of one server
  and email (``<id>`` is a hash of both);
- ``apps/<app>/fullchain.pem`` and ``privkey.pem`` (0600): the certificate
  issued last (also installed in the proxy through ``skiff_certificate_install``);
- ``apps/<app>/archive/``: certificates a renewal replaced (``letsencrypt:cleanup``
  removes them);
- ``sites/<site>/fullchain.pem`` and ``privkey.pem`` (0600): the certificate of a
  plugin's own site (``skiff_site_certificate``: the dashboard), copied by that plugin.

Properties of plugin ``letsencrypt``, per app: ``enabled`` (bool), ``last-error``
(one line, cleared by a success), ``account`` (the id of the account that
issued the certificate, for revocation). Global: ``cron-job`` (bool), ``sites``
(``{site: {"domains": [...], "account": {...}, "last-error": "...", "handover": bool}}``, the
sites renewed; ``handover``: a renewed certificate its plugin has not taken yet).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.context import Context

from . import PLUGIN


def base(context: Context) -> Path:
    path = context.path(PLUGIN)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def app_dir(context: Context, app: str) -> Path:
    return base(context) / "apps" / app


def account_dir(context: Context, account: str) -> Path:
    return base(context) / "accounts" / account


def account_id(directory_url: str, email: str) -> str:
    return hashlib.sha256(f"{directory_url}\n{email}".encode()).hexdigest()[:16]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file, atomically (readers see the old or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass
class Certificate:
    fullchain: bytes
    key: bytes

    @property
    def leaf(self) -> Any:
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.fullchain)

    @property
    def not_after(self) -> datetime.datetime:
        return self.leaf.not_valid_after_utc  # type: ignore[no-any-return]

    @property
    def names(self) -> list[str]:
        from cryptography import x509

        try:
            ext = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return list(ext.value.get_values_for_type(x509.DNSName))

    @property
    def serial(self) -> str:
        return format(self.leaf.serial_number, "x")


def site_dir(context: Context, site: str) -> Path:
    return base(context) / "sites" / site


def site_files(context: Context, site: str) -> tuple[Path, Path]:
    """``(fullchain, key)`` of a site's certificate (what ``skiff_site_certificate`` returns)."""
    directory = site_dir(context, site)
    return directory / "fullchain.pem", directory / "privkey.pem"


def _load(directory: Path) -> Certificate | None:
    try:
        return Certificate((directory / "fullchain.pem").read_bytes(), (directory / "privkey.pem").read_bytes())
    except OSError:
        return None


def _save(directory: Path, cert: Certificate) -> None:
    """Keep ``cert`` in ``directory``; the one it replaces goes to ``archive/``."""
    old = _load(directory)
    if old is not None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        write_private(directory / "archive" / f"{stamp}-{old.serial}.pem", old.fullchain + old.key)
    write_private(directory / "privkey.pem", cert.key)
    write_private(directory / "fullchain.pem", cert.fullchain)


def current(context: Context, app: str) -> Certificate | None:
    return _load(app_dir(context, app))


def save(context: Context, app: str, cert: Certificate) -> None:
    """Keep ``cert`` as the app's certificate; the one it replaces goes to ``archive/``."""
    _save(app_dir(context, app), cert)


def current_site(context: Context, site: str) -> Certificate | None:
    return _load(site_dir(context, site))


def save_site(context: Context, site: str, cert: Certificate) -> None:
    _save(site_dir(context, site), cert)


def sites(context: Context) -> dict[str, dict[str, Any]]:
    """The sites this plugin renews: ``{site: {"domains", "account", "last-error"}}``."""
    value = prop(context, "sites", default={})
    return dict(value) if isinstance(value, dict) else {}


def set_site(context: Context, site: str, record: dict[str, Any] | None) -> None:
    """Store (``None``: forget, with its files) what is known of ``site``."""
    known = sites(context)
    if record is None:
        known.pop(site, None)
        shutil.rmtree(site_dir(context, site), ignore_errors=True)
    else:
        known[site] = record
    set_prop(context, "sites", known or None)


def forget(context: Context, app: str) -> None:
    shutil.rmtree(app_dir(context, app), ignore_errors=True)


def archived(context: Context, app: str) -> list[Path]:
    directory = app_dir(context, app) / "archive"
    return sorted(directory.iterdir()) if directory.is_dir() else []


def prop(context: Context, key: str, app: str = "", default: Any = None) -> Any:
    return context.state.get_property(PLUGIN, key, app=app, default=default)


def set_prop(context: Context, key: str, value: Any, app: str = "") -> None:
    if value is None:
        context.state.delete_property(PLUGIN, key, app=app)
    else:
        context.state.set_property(PLUGIN, key, value, app=app)


def enabled(context: Context, app: str) -> bool:
    return bool(prop(context, "enabled", app, default=False))


def enabled_apps(context: Context) -> list[str]:
    return [app for app in context.state.list_apps() if enabled(context, app)]
