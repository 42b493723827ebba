"""The declared settings of ``letsencrypt:set [--global|APP] email|server|graceperiod VALUE``."""

from __future__ import annotations

import re

from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, integer

from . import PLUGIN

#: ``server`` names Dokku's two shortcuts; any other value is an ACME directory URL.
SERVERS = {
    "default": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
DEFAULT_GRACE = 30 * 86400  # seconds, as dokku-letsencrypt's graceperiod

EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+"
)
DIRECTORY_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+=-]*)?")


def email(value: str) -> str:
    if len(value) > 254 or not EMAIL.fullmatch(value):
        raise ValidationError(f"invalid email address {value!r}")
    return value


def server(value: str) -> str:
    if value in SERVERS or (len(value) <= 500 and DIRECTORY_URL.fullmatch(value)):
        return value
    raise ValidationError(f"invalid ACME server {value!r}: expected default, staging or an https:// directory URL")


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting("email", type=email, scope="both", help="the ACME account's contact address (required)"),
        # A URL skiff fetches from the server: an admin's choice, never a deployer's.
        Setting(
            "server",
            type=server,
            default="default",
            scope="both",
            level="admin",
            help="default, staging or an ACME directory URL",
        ),
        Setting(
            "graceperiod",
            type=integer(3600, 365 * 86400),
            default=DEFAULT_GRACE,
            scope="both",
            help="seconds before expiry a certificate is renewed (default 2592000: 30 days)",
        ),
    ),
    commands=("set",),
)


def directory_url(value: str) -> str:
    """The directory URL of a ``server`` setting."""
    return SERVERS.get(value, value)
