"""Validation of names that reach paths, databases and other programs."""

import re

from .errors import ValidationError

APP_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,47}\Z")
CONFIG_KEY = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
PLUGIN_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
MAX_CONFIG_VALUE = 64 * 1024
SHOWN = 60  # characters of a refused input repeated in an error message


def shown(value: object) -> str:
    """``repr`` of a refused input, cut short so a huge value never floods the error line."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 5] + "...'" + f" ({len(str(value))} chars)"


def app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise ValidationError."""
    if not isinstance(name, str) or not APP_NAME.fullmatch(name) or name.endswith("-"):
        raise ValidationError(
            f"invalid app name {shown(name)}: use lowercase letters, digits and dashes, "
            "start with a letter, at most 48 characters, no trailing dash"
        )
    return name


def config_key(key: str) -> str:
    """Return ``key`` if it is a valid environment variable name."""
    if not isinstance(key, str) or not CONFIG_KEY.fullmatch(key):
        raise ValidationError(
            f"invalid config key {shown(key)}: use letters, digits and underscores, not starting with a digit"
        )
    return key


def config_value(key: str, value: str) -> str:
    """Return ``value`` if it can be stored as a config value (any text, bounded size)."""
    if "\x00" in value:
        raise ValidationError(f"invalid value for {key}: NUL bytes are not allowed")
    if len(value.encode("utf-8", "surrogateescape")) > MAX_CONFIG_VALUE:
        raise ValidationError(f"value of {key} is too large (limit {MAX_CONFIG_VALUE} bytes)")
    return value


def plugin_name(name: str) -> str:
    """Return ``name`` if it is a plausible plugin (entry point) name."""
    if not PLUGIN_NAME.fullmatch(name or ""):
        raise ValidationError(f"invalid plugin name {shown(name)}")
    return name


# Docker's image reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?"
IMAGE_REFERENCE = re.compile(
    rf"\A(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?\Z"
)
IMAGE_ID = re.compile(r"\A(?:sha256:)?[0-9a-f]{12,64}\Z")
MAX_IMAGE_NAME = 255


def image_reference(ref: str, what: str = "image") -> str:
    """Return ``ref`` if it is a docker image reference (``name[:tag][@digest]``), else raise.

    A first component with a dot or a port, or ``localhost``, is a registry
    (``127.0.0.1:5000/app:1``); names are lowercase, as the engine requires.
    """
    match = IMAGE_REFERENCE.fullmatch(ref) if isinstance(ref, str) else None
    if match and match.group("domain") and not _is_domain(match.group("domain")):
        match = None  # "a/b": "a" is a path component, and the pattern allowed uppercase there
    if match is None or len(match.group("name")) > MAX_IMAGE_NAME:
        raise ValidationError(f"invalid {what} reference {shown(ref)}: give NAME[:TAG][@DIGEST], e.g. debian:12")
    return ref


def _is_domain(first: str) -> bool:
    """Whether the first component of a reference names a registry (docker's rule), or is a lowercase path."""
    if "." in first or ":" in first or first == "localhost":
        return True
    return first == first.lower()


def image_name(ref: str) -> tuple[str, str]:
    """``(repository, tag or digest)`` of a valid reference: ``debian`` -> ``("debian", "latest")``."""
    match = IMAGE_REFERENCE.fullmatch(image_reference(ref))
    assert match is not None
    if match.group("digest"):
        return match.group("name"), "@" + match.group("digest")
    return match.group("name"), match.group("tag") or "latest"
