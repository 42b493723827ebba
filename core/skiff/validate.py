"""Validation of names that reach paths, databases and other programs."""

import functools
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


@functools.cache
def _image_reference() -> re.Pattern[str]:
    """The pattern of an image reference (compiled on first use: it costs milliseconds at every start)."""
    return re.compile(
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
    match = _image_reference().fullmatch(ref) if isinstance(ref, str) else None
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
    match = _image_reference().fullmatch(image_reference(ref))
    assert match is not None
    if match.group("digest"):
        return match.group("name"), "@" + match.group("digest")
    return match.group("name"), match.group("tag") or "latest"


# -- cron schedules (app.json ``cron``, periodic tasks) -------------------------------------

#: Dokku's @-macros and the five fields they stand for.
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (name, lowest, highest, names for lowest.., in order) of the five fields
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


@functools.cache
def _cron_item() -> re.Pattern[str]:
    return re.compile(
        r"\A(?:\*|(?P<a>[0-9]{1,2}|[a-z]{3})(?:-(?P<b>[0-9]{1,2}|[a-z]{3}))?)(?:/(?P<step>[0-9]{1,2}))?\Z"
    )


MAX_CRON_SCHEDULE = 200


def _cron_value(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> int:
    name, low, high, names = field
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = names.index(text) + low
    else:
        raise ValidationError(f"{name}: {text!r} is not a number" + (" or a name" if names else ""))
    if not low <= value <= high:
        raise ValidationError(f"{name}: {value} is out of range {low}-{high}")
    return value


def cron_schedule(schedule: str) -> str:
    """The five-field form of a cron ``schedule``, or :class:`ValidationError` saying what is wrong.

    Five fields (minute, hour, day of month, month, day of week), each a comma list of
    ``*``, ``N``, ``A-B``, optionally ``/STEP``; months and weekdays by number or by
    three-letter name (any case); or one of :data:`CRON_MACROS` (``@daily``, ...).
    """
    if not isinstance(schedule, str) or len(schedule) > MAX_CRON_SCHEDULE:
        raise ValidationError(f"invalid cron schedule {shown(schedule)}")
    text = schedule.strip(" ").lower()
    if text.startswith("@"):
        if text not in CRON_MACROS:
            raise ValidationError(f"invalid cron schedule {shown(schedule)}: use one of {', '.join(CRON_MACROS)}")
        return CRON_MACROS[text]
    if not re.fullmatch(r"[0-9a-z*/,-]+(?: +[0-9a-z*/,-]+){4}", text):
        raise ValidationError(
            f"invalid cron schedule {shown(schedule)}: give five fields (minute hour day month weekday) or a @-macro"
        )
    fields = text.split()
    values = []
    for part, field in zip(fields, _CRON_FIELDS):
        try:
            values.append(_cron_field(part, field))
        except ValidationError as exc:
            raise ValidationError(f"invalid cron schedule {shown(schedule)}: {exc}") from None
    days, months = values[2], values[3]
    if fields[4] == "*" and not any(min(days) <= _MONTH_DAYS[month - 1] for month in months):
        raise ValidationError(f"invalid cron schedule {shown(schedule)}: no month of it has day {min(days)}")
    return " ".join(fields)


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _cron_field(part: str, field: tuple[str, int, int, tuple[str, ...]]) -> set[int]:
    """The values one field names (``A/STEP`` is ``A-HIGHEST/STEP``, as cronie reads it)."""
    name, low, high, _ = field
    found: set[int] = set()
    for item in part.split(","):
        match = _cron_item().fullmatch(item)
        if match is None:
            raise ValidationError(f"{name}: {item!r} is not *, N, A-B or one of them /STEP")
        a, b = low, high
        if match["a"] is not None:
            a = _cron_value(match["a"], field)
            b = _cron_value(match["b"], field) if match["b"] is not None else (high if match["step"] else a)
            if b < a:
                raise ValidationError(f"{name}: the range {item!r} runs backwards")
        step = int(match["step"] or 1)
        if not 1 <= step <= high:
            raise ValidationError(f"{name}: the step in {item!r} must be 1 to {high}")
        found.update(range(a, b + 1, step))
    return found


def cron_command(command: str, what: str = "cron command") -> str:
    """Return ``command`` if it can be a job's command: one line of text, no NUL, bounded."""
    if not isinstance(command, str) or not command.strip():
        raise ValidationError(f"invalid {what}: it must be a non-empty string")
    if "\x00" in command:
        raise ValidationError(f"invalid {what} {shown(command)}: it holds a NUL byte")
    if "\n" in command or "\r" in command:
        raise ValidationError(f"invalid {what} {shown(command)}: it holds a line break (one line only)")
    if len(command.encode("utf-8", "surrogateescape")) > MAX_CONFIG_VALUE:
        raise ValidationError(f"invalid {what}: longer than {MAX_CONFIG_VALUE} bytes")
    return command
