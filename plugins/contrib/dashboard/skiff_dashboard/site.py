"""The dashboard's nginx site: its domain, its certificate, and the ``skiff_proxy_site`` call."""

from __future__ import annotations

import os
from pathlib import Path

from skiff.context import Context
from skiff.contracts import ProxySite
from skiff.errors import SkiffError

from . import PLUGIN, store
from .settings import SETTINGS

#: the log stream of every app: nginx passes it on as it comes (no buffering)
STREAM_PATHS = (r"^/apps/[a-z0-9-]+/logs/stream$",)


def domain(context: Context) -> str:
    """``domain``, else ``dashboard.`` + the first global domain; one line when neither is set."""
    configured = SETTINGS.get(context.state, "domain")
    if configured:
        return str(configured)
    globals_ = context.hook.skiff_global_domains(context=context) or []
    usable = [d for d in globals_ if not d.startswith("*.")]
    if not usable:
        raise SkiffError(
            "the dashboard has no domain: set one (dashboard:set --global domain NAME) or a global domain "
            "(domains:set-global NAME)"
        )
    return f"dashboard.{usable[0]}"


def port(context: Context) -> int:
    return int(SETTINGS.get(context.state, "port"))


def cert_files(root: Path) -> tuple[Path, Path]:
    tls = store.directory(root) / "tls"
    return tls / "server.crt", tls / "server.key"


def has_certificate(root: Path) -> bool:
    crt, key = cert_files(root)
    return crt.is_file() and key.is_file()


def base_url(context: Context) -> str:
    scheme = "https" if has_certificate(context.root) else "http"
    return f"{scheme}://{domain(context)}"


def proxy_site(context: Context) -> ProxySite:
    return ProxySite(
        name=PLUGIN,
        domain=domain(context),
        upstream=f"127.0.0.1:{port(context)}",
        certificate=cert_files(context.root) if has_certificate(context.root) else None,
        stream_paths=STREAM_PATHS,
    )


def sync(context: Context, enabled: bool | None = None) -> None:
    """Write the site when the dashboard is enabled, remove it when not."""
    on = bool(SETTINGS.get(context.state, "enabled")) if enabled is None else enabled
    if on:
        answered = context.hook.skiff_proxy_site(context=context, site=proxy_site(context), remove=False)
    else:
        try:
            site = proxy_site(context)
        except SkiffError:
            return  # no domain: no site was written
        answered = context.hook.skiff_proxy_site(context=context, site=site, remove=True)
    if answered is None and on:
        context.output.warn(f"no proxy plugin answers: the dashboard is only on 127.0.0.1:{port(context)}")


def install_certificate(context: Context, crt: bytes | None, key: bytes | None) -> None:
    """Store (or, with ``None``, remove) the site's pair, then rewrite the site; nginx checks the pair."""
    crt_path, key_path = cert_files(context.root)
    old = (crt_path.read_bytes(), key_path.read_bytes()) if has_certificate(context.root) else None
    _write_pair(crt_path, key_path, (crt, key) if crt is not None and key is not None else None)
    try:
        sync(context)
    except Exception:
        _write_pair(crt_path, key_path, old)
        raise


def _write_pair(crt_path: Path, key_path: Path, pair: tuple[bytes, bytes] | None) -> None:
    if pair is None:
        crt_path.unlink(missing_ok=True)
        key_path.unlink(missing_ok=True)
        return
    crt_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, data, mode in ((key_path, pair[1], 0o600), (crt_path, pair[0], 0o644)):
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


LETSENCRYPT = "certificate-from"  # property: "letsencrypt" while the certificate is renewed by a plugin


def from_authority(context: Context) -> bool:
    """The certificate came from ``skiff_site_certificate`` (and its renewals are taken)."""
    return bool(context.state.get_property(PLUGIN, LETSENCRYPT)) and has_certificate(context.root)


def install_files(context: Context, crt: Path, key: Path) -> None:
    """Install the pair a certificate plugin keeps (read from its files), as ``certs-add`` does."""
    try:
        pair = crt.read_bytes(), key.read_bytes()
    except OSError as exc:
        raise SkiffError(f"cannot read the certificate files: {exc.strerror}: {exc.filename}") from None
    if not all(b"-----BEGIN " in data for data in pair):
        raise SkiffError("the certificate plugin returned files that are not PEM")
    install_certificate(context, *pair)


def mark_authority(context: Context, on: bool) -> None:
    if on:
        context.state.set_property(PLUGIN, LETSENCRYPT, "letsencrypt")
    else:
        context.state.delete_property(PLUGIN, LETSENCRYPT)
