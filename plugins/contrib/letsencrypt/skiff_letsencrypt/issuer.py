"""Issue, renew and revoke an app's certificate over ACME v2 (the ``acme`` library, certbot's).

HTTP-01 only: the token files go to :func:`skiff.contracts.acme_challenge_dir`,
which the proxy (nginx) serves on every server block of every app, over HTTP,
from that directory and never from the app. The certificate goes into the
proxy through ``skiff_certificate_install``, the path ``certs:add`` takes.
Every failure is one :class:`SkiffError` line and changes nothing that serves.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from skiff import contracts
from skiff.context import Context
from skiff.errors import SkiffError
from skiff.locks import file_lock, lock_path

from . import PLUGIN, store
from .settings import SETTINGS, directory_url

USER_AGENT = "skiff-letsencrypt"
TIMEOUT = 30  # seconds per ACME request
DEADLINE = 120  # seconds for the server to validate and issue
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")  # RFC 8555 8.3: at least 128 bits of base64url
SITE = re.compile(contracts.PROXY_SITE_NAME)
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DNS_NAME = re.compile(rf"{LABEL}(?:\.{LABEL})+")


class IssueError(SkiffError):
    """An order failed: the current certificate keeps serving."""


@contextmanager
def app_lock(context: Context, app: str) -> Iterator[None]:
    """One issuance of an app at a time (a second waits)."""
    with file_lock(lock_path(context.root, f"{PLUGIN}-{app}"), timeout=DEADLINE + 60):
        yield


def domains_of(context: Context, app: str) -> list[str]:
    """The names the certificate must cover: every domain the proxy serves for ``app``."""
    names = context.hook.skiff_app_domains(context=context, app=app)
    if names is None:
        raise SkiffError("no proxy plugin answers for the app's domains (is the nginx plugin enabled?)")
    wildcards = [name for name in names if name.startswith("*.")]
    if wildcards:
        raise SkiffError(
            f"app {app} has the wildcard domain {wildcards[0]}: HTTP-01 cannot prove it; "
            "remove it (domains:remove) or add a certificate yourself (certs:add)"
        )
    if not names:
        raise SkiffError(f"app {app} has no domain: add one (domains:add {app} NAME) first")
    return list(names)


def due(context: Context, app: str, now: datetime.datetime | None = None) -> str | None:
    """Why ``app``'s certificate needs renewing now (``None``: it does not)."""
    cert = store.current(context, app)
    if cert is None:
        return "no certificate yet"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    grace = datetime.timedelta(seconds=int(SETTINGS.get(context.state, "graceperiod", app=app)))
    if cert.not_after - grace <= now:
        return f"expires {cert.not_after:%Y-%m-%d %H:%M:%S} UTC, within the grace period"
    missing = sorted(set(domains_of(context, app)) - set(cert.names))
    if missing:
        return f"new domain {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    return None


# -- ACME ---------------------------------------------------------------------------------------


def _new_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _account_key(context: Context, account: str) -> Any:
    """The account's JWK, made (0600) on first use."""
    import josepy as jose
    from cryptography.hazmat.primitives import serialization

    path = store.account_dir(context, account) / "account.key"
    if not path.exists():
        store.write_private(path, _new_key_pem())
    os.chmod(path, 0o600)
    return jose.JWKRSA(key=serialization.load_pem_private_key(path.read_bytes(), password=None))


def _client(context: Context, app: str, account: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    """An ACME client logged in with an account: the app's (registered when new), or ``account``.

    ``account`` (``{"id", "server"}``, as stored when a certificate was issued)
    finds the account that holds a certificate, whatever the settings are now.
    """
    from acme import client, errors, messages

    if account is None:
        email = SETTINGS.get(context.state, "email", app=app)
        if not email:
            where = f"{app} email ADDRESS (or --global)" if app else "--global email ADDRESS"
            raise SkiffError(f"set an email first: letsencrypt:set {where}")
        url = directory_url(SETTINGS.get(context.state, "server", app=app))
        account = {"id": store.account_id(url, email), "server": url}
        registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    else:
        registration = messages.NewRegistration(only_return_existing=True)
    net = client.ClientNetwork(_account_key(context, account["id"]), user_agent=USER_AGENT, timeout=TIMEOUT)
    acme = client.ClientV2(client.ClientV2.get_directory(account["server"], net), net=net)
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # the key has an account already: use it
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    return acme, account


def reason(exc: BaseException) -> str:
    """One line saying why an ACME exchange failed."""
    from acme import errors, messages

    if isinstance(exc, errors.ValidationError):
        for authzr in exc.failed_authzrs:
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    return f"{authzr.body.identifier.value}: {_problem(challb.error)}"
        return "a challenge failed"
    if isinstance(exc, messages.Error):
        return _problem(exc)
    if isinstance(exc, errors.TimeoutError):
        return "the ACME server did not finish in time"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _problem(error: Any) -> str:
    detail = " ".join(str(error.detail or error.description or error.typ).split())
    return detail if len(detail) < 300 else detail[:297] + "..."


def _write_challenge(root: Path, token: str, validation: str) -> Path:
    """The token's file, world-readable; the token (from the server) names a file: base64url only."""
    if not TOKEN.fullmatch(token):
        raise IssueError("the ACME server sent a challenge token that is not base64url")
    directory = contracts.acme_challenge_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # nginx's workers read it
    path = directory / token
    path.write_text(validation)
    os.chmod(path, 0o644)
    return path


def _order(context: Context, app: str, domains: list[str]) -> tuple[store.Certificate, dict[str, str]]:
    """Run one order for ``domains``; the new certificate and the account that holds it."""
    from acme import challenges, crypto_util

    acme, account = _client(context, app)
    key_pem = _new_key_pem()
    order = acme.new_order(crypto_util.make_csr(key_pem, domains))
    written: list[Path] = []
    try:
        for authz in order.authorizations:
            if authz.body.status.name == "valid":
                continue  # the server reuses a recent validation
            challb = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challb is None:
                raise IssueError(f"{authz.body.identifier.value}: the ACME server offers no HTTP-01 challenge")
            response, validation = challb.response_and_validation(acme.net.key)
            written.append(_write_challenge(context.root, challb.chall.encode("token"), validation))
            acme.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=DEADLINE)
        order = acme.poll_and_finalize(order, deadline=deadline)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return store.Certificate(order.fullchain_pem.encode(), key_pem), account


def issue(context: Context, app: str, why: str) -> store.Certificate:
    """Order a certificate for every domain of ``app`` and install it; on failure raise one line.

    The certificate that served before keeps serving when anything fails.
    """
    context.state.require_app(app)
    if context.state.current_release(app) is None:
        raise SkiffError(f"app {app} is not deployed: nginx cannot answer the challenges yet")
    domains = domains_of(context, app)
    context.output.step(
        f"Getting a certificate for {app} from {SETTINGS.get(context.state, 'server', app=app)} ({why})"
    )
    context.output.info(f"domains: {', '.join(domains)}")
    with app_lock(context, app):
        try:
            cert, account = _order(context, app, domains)
        except SkiffError as exc:
            store.set_prop(context, "last-error", str(exc), app)
            raise IssueError(f"could not get a certificate for {app}: {exc}; the current one keeps serving") from None
        except Exception as exc:  # the acme library, requests, josepy: any of them is one line here
            line = reason(exc)
            store.set_prop(context, "last-error", line, app)
            raise IssueError(f"could not get a certificate for {app}: {line}; the current one keeps serving") from None
        try:
            installed = context.hook.skiff_certificate_install(
                context=context, app=app, certificate=cert.fullchain, key=cert.key
            )
        except SkiffError as exc:
            store.set_prop(context, "last-error", str(exc), app)
            raise IssueError(f"could not install the new certificate of {app}: {exc}") from None
        if not installed:
            raise SkiffError("no proxy plugin installs certificates (is the nginx plugin enabled?)")
        store.save(context, app, cert)
        store.set_prop(context, "account", account, app)
        store.set_prop(context, "last-error", None, app)
    context.output.info(f"certificate for {app} valid until {cert.not_after:%Y-%m-%d %H:%M:%S} UTC")
    return cert


def revoke(context: Context, app: str) -> store.Certificate:
    """Revoke the app's certificate at the server that issued it (the account that asked for it)."""
    cert = store.current(context, app)
    if cert is None:
        raise SkiffError(f"app {app} has no Let's Encrypt certificate")
    account = store.prop(context, "account", app)
    if not isinstance(account, dict):
        raise SkiffError(f"the account that holds the certificate of {app} is unknown")
    with app_lock(context, app):
        try:
            acme, _ = _client(context, app, account=account)
            acme.revoke(cert.leaf, 0)
        except Exception as exc:  # the acme library, requests: one line
            raise SkiffError(f"could not revoke the certificate of {app}: {reason(exc)}") from None
    return cert


# -- sites (a plugin's own site, not an app: skiff_site_certificate) ----------------------------


def check_site(site: str, domains: list[str]) -> list[str]:
    """Refuse a site name or a domain that is not plain (full matches); the names, deduplicated."""
    if not isinstance(site, str) or not SITE.fullmatch(site):
        raise SkiffError(f"invalid site name {site!r}")
    names = list(dict.fromkeys(domains))
    if not names:
        raise SkiffError(f"site {site} has no domain to certify")
    for name in names:
        if not isinstance(name, str) or len(name) > 253 or not DNS_NAME.fullmatch(name):
            raise SkiffError(f"invalid domain {name!r} for site {site}: HTTP-01 needs a plain DNS name")
    return names


def site_due(context: Context, site: str, domains: list[str], now: datetime.datetime | None = None) -> str | None:
    """Why ``site``'s certificate needs an order now (``None``: the kept one covers ``domains``)."""
    cert = store.current_site(context, site)
    if cert is None:
        return "no certificate yet"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    grace = datetime.timedelta(seconds=int(SETTINGS.get(context.state, "graceperiod")))
    if cert.not_after - grace <= now:
        return f"expires {cert.not_after:%Y-%m-%d %H:%M:%S} UTC, within the grace period"
    missing = sorted(set(domains) - set(cert.names))
    if missing:
        return f"new domain {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    return None


def issue_site(context: Context, site: str, domains: list[str], why: str) -> store.Certificate:
    """Order a certificate for ``domains`` of ``site`` and keep it (the site's plugin installs it)."""
    server = SETTINGS.get(context.state, "server")
    context.output.step(f"Getting a certificate for the {site} site from {server} ({why})")
    context.output.info(f"domains: {', '.join(domains)}")
    record = store.sites(context).get(site, {})
    with app_lock(context, f"site-{site}"):
        try:
            cert, account = _order(context, "", domains)
        except Exception as exc:  # SkiffError, the acme library, requests: one line
            line = str(exc) if isinstance(exc, SkiffError) else reason(exc)
            store.set_site(context, site, {**record, "domains": domains, "last-error": line})
            raise IssueError(f"could not get a certificate for the {site} site: {line}") from None
        store.save_site(context, site, cert)
        store.set_site(context, site, {"domains": domains, "account": account})
    context.output.info(f"certificate for the {site} site valid until {cert.not_after:%Y-%m-%d %H:%M:%S} UTC")
    return cert


def site_certificate(context: Context, site: str, domains: list[str]) -> tuple[Path, Path]:
    """The answer to ``skiff_site_certificate``: order when needed, then the kept files."""
    names = check_site(site, domains)
    why = site_due(context, site, names)
    if why is not None:
        issue_site(context, site, names, why)
    if not store.prop(context, "cron-job", default=False):
        context.output.warn("nothing renews it on a schedule yet: an admin runs letsencrypt:cron-job --add")
    elif store.sites(context).get(site, {}).get("domains") != names:
        store.set_site(context, site, {**store.sites(context).get(site, {}), "domains": names})
    return store.site_files(context, site)


def renew_site(context: Context, site: str, force: bool) -> bool:
    """Renew ``site`` when due (or ``force``) and hand the files to its plugin; False: it failed (one line)."""
    record = store.sites(context).get(site, {})
    try:
        names = check_site(site, list(record.get("domains") or []))
        why = "forced" if force else site_due(context, site, names)
        if why is None and not record.get("handover"):
            context.output.info(f"the {site} site: not due")
            return True
        if why is not None:
            issue_site(context, site, names, why)
        # until the site's plugin took the files, every run hands them over again
        store.set_site(context, site, {**store.sites(context)[site], "handover": True})
        crt, key = store.site_files(context, site)
        taken = context.hook.skiff_site_certificate_renewed(context=context, site=site, certificate=crt, key=key)
    except SkiffError as exc:
        context.output.error(str(exc))
        return False
    if not any(taken):
        context.output.info(f"no plugin serves the {site} site with this certificate any more: no longer renewed")
        store.set_site(context, site, None)
        return True
    store.set_site(context, site, {**store.sites(context)[site], "handover": False})
    return True
