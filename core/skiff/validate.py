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
