"""The event log: every SSH command and every deploy, with the key that ran it.

Commands are redacted before they are written: the value of every
``KEY=VALUE`` argument becomes ``***`` (unless the command declares its
assignments harmless, like ``ps:scale web=2``), credentials in URLs become
``scheme://***@host``, and the value of any option whose name says password,
secret or token is dropped. Nothing else is stored; the table is in the
state database (0600).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context

MASK = "***"
KEY_NAME_ENV = "SKIFF_KEY_NAME"


# The patterns are compiled on first use, and only for an argument that could match (a URL
# with "://", an option starting with "-", an assignment with "="): the case-insensitive one
# alone costs about a millisecond to compile, and most commands have none of them.
@functools.cache
def _assignment() -> re.Pattern[str]:
    return re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>.*)", re.DOTALL)


@functools.cache
def _url_credentials() -> re.Pattern[str]:
    return re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


@functools.cache
def _secret_option() -> re.Pattern[str]:
    return re.compile(r"--?[A-Za-z0-9-]*(password|passwd|secret|token)[A-Za-z0-9-]*", re.IGNORECASE)


def _is_secret_option(text: str) -> bool:
    return text.startswith("-") and _secret_option().fullmatch(text) is not None


def redact_arg(arg: str, log_assignments: bool = False) -> str:
    if "://" in arg:
        arg = _url_credentials().sub(lambda m: f"{m['scheme']}{MASK}@", arg)
    option, eq, _ = arg.partition("=")
    if not eq:
        return arg
    if _is_secret_option(option):
        return f"{option}={MASK}"
    match = _assignment().fullmatch(arg)
    if match and not log_assignments and not arg.startswith("-"):
        return f"{match['key']}={MASK}"
    return arg


def redact(args: Sequence[str], log_assignments: bool = False) -> list[str]:
    """``args`` with every secret replaced by ``***``."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if _is_secret_option(arg):
            hide_next = True
        out.append(redact_arg(arg, log_assignments))
    return out


@functools.cache
def _plain() -> re.Pattern[str]:
    return re.compile(r"[\w@%+=:,./*-]+")


def _quote(arg: str) -> str:
    return arg if _plain().fullmatch(arg) else shlex.quote(arg)


def command_line(args: Sequence[str], log_assignments: bool = False) -> str:
    """The redacted command as one line, quoted like a shell would need (``*`` left bare)."""
    return " ".join(_quote(arg) for arg in redact(args, log_assignments))


def who(context: Any) -> str:
    """The key of this session (or of the push whose hook runs), else ``local:USER``."""
    key = getattr(context, "ssh_key_name", None) or os.environ.get(KEY_NAME_ENV)
    if key:
        return key
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except Exception:
        return f"local:{os.geteuid()}"


def start(context: Context, kind: str, command: str, app: str | None = None) -> int:
    return context.state.add_event(who(context), kind, command, app)


def finish(context: Context, event_id: int, status: int) -> None:
    context.state.finish_event(event_id, status)


def format_event(event: dict[str, Any]) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(event["time"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = event["status"]
    result = "started" if status is None else ("ok" if status == 0 else f"exit {status}")
    return f"{when}  {event['key']}  {event['kind']}  {result}  {event['command']}"
