"""Validation of everything that reaches an nginx config file.

Nothing a user typed is written into a config unless it matched one of
these patterns first: domains (RFC 1123 host names, ``*.`` wildcard),
port mappings, upstream addresses and the values of per-app settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skiff.errors import ValidationError
from skiff.validate import shown

LABEL = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
UPSTREAM = re.compile(r"\A(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[a-z0-9][a-z0-9.-]{0,252}|\[[0-9a-f:]+\]):([0-9]{1,5})\Z")
SIZE = re.compile(r"\A[0-9]{1,9}[kKmMgG]?\Z")
DURATION = re.compile(r"\A[0-9]{1,7}(?:ms|s|m|h)?\Z")
ADDRESS = re.compile(r"\A(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[[0-9a-f:]+\])\Z")
SCHEMES = ("http", "https")


def domain(name: str) -> str:
    """Return ``name`` lowercased if it is a DNS name (RFC 1123, optional ``*.`` prefix)."""
    if not isinstance(name, str):
        raise ValidationError(f"invalid domain {shown(name)}")
    value = name.lower()
    if value.endswith(".") and not value.endswith(".."):
        value = value[:-1]
    labels = value.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            raise ValidationError(f"invalid domain {shown(name)}: a wildcard needs at least two labels after '*.'")
    ok = bool(labels) and len(value) <= 253 and all(LABEL.fullmatch(label) for label in labels)
    if not ok:
        raise ValidationError(
            f"invalid domain {shown(name)}: use DNS names (letters, digits, dashes and dots, "
            "labels of at most 63 characters, optional '*.' wildcard prefix)"
        )
    return value


def domains(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validate every name; keep their order, drop duplicates."""
    seen: list[str] = []
    for name in names:
        value = domain(name)
        if value not in seen:
            seen.append(value)
    return seen


def port(value: str | int, what: str = "port") -> int:
    try:
        number = int(str(value), 10)
    except ValueError:
        raise ValidationError(f"invalid {what} {shown(value)}: expected a number from 1 to 65535") from None
    if not 1 <= number <= 65535 or str(value).strip() != str(value):
        raise ValidationError(f"invalid {what} {shown(value)}: expected a number from 1 to 65535")
    return number


@dataclass(frozen=True, order=True)
class Mapping:
    """One port mapping: ``scheme:host_port:container_port`` (Dokku's format)."""

    scheme: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.scheme}:{self.host_port}:{self.container_port}"


def mapping(text: str) -> Mapping:
    """Parse ``http:80:5000``; refuse anything else."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 3 or parts[0] not in SCHEMES:
        raise ValidationError(
            f"invalid port mapping {shown(text)}: expected SCHEME:HOST_PORT:CONTAINER_PORT "
            "with SCHEME http or https, e.g. http:80:5000"
        )
    return Mapping(parts[0], port(parts[1], "host port"), port(parts[2], "container port"))


def upstream(address: str) -> str:
    """An upstream ``host:port`` as the scheduler reports it."""
    match = UPSTREAM.fullmatch(address) if isinstance(address, str) else None
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise ValidationError(f"invalid upstream address {shown(address)} (expected HOST:PORT)")
    return address


def size(value: str) -> str:
    """An nginx size (``1m``, ``512k``, ``0`` for unlimited)."""
    if not SIZE.fullmatch(value or ""):
        raise ValidationError(f"invalid size {shown(value)}: expected a number with an optional k, m or g suffix")
    return value


def size_bytes(value: str) -> int:
    """The number of bytes of a :func:`size`."""
    value = size(value)
    unit = value[-1].lower()
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(unit, 1)
    return int(value.rstrip("kKmMgG")) * factor


LOG_BUFFER_MAX = 1 << 20  # nginx allocates it per worker and per app


def log_buffer(value: str) -> str:
    """An access log buffer size: ``0`` (unbuffered) up to ``1m``."""
    if size_bytes(value) > LOG_BUFFER_MAX:
        raise ValidationError(f"invalid access log buffer {shown(value)}: at most 1m")
    return value


def duration(value: str) -> str:
    """An nginx time (``60s``, ``500ms``, ``2m``)."""
    if not DURATION.fullmatch(value or ""):
        raise ValidationError(
            f"invalid duration {shown(value)}: expected a number with an optional ms, s, m or h suffix"
        )
    return value


def address(value: str) -> str:
    """A listen address: empty (all addresses), an IPv4 address or a bracketed IPv6 one."""
    if value and not ADDRESS.fullmatch(value):
        raise ValidationError(f"invalid listen address {shown(value)}: expected an IP address or nothing")
    return value


def addresses(value: str) -> str:
    """Comma-separated listen addresses (each as :func:`address`)."""
    for part in (value or "").split(","):
        if value and not part.strip(" "):
            raise ValidationError(f"invalid listen addresses {shown(value)}")
        address(part.strip(" "))  # spaces around commas only: a line break is refused
    return value
