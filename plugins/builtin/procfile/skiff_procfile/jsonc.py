"""JSON as Heroku and Dokku accept it in app.json: comments, trailing commas, a BOM.

:func:`strip` blanks out ``//`` and ``/* */`` comments and the comma before a
closing ``]`` or ``}`` (each replaced by spaces, line ends kept), so the text
keeps its length and layout and :func:`json.loads` reports errors at the
line and column the user sees. Text inside strings, escaped quotes included,
is never touched. :func:`loads` strips a leading UTF-8 BOM, then parses;
every error is one :class:`JsoncError` with a line and a column.
"""

from __future__ import annotations

import json
from typing import Any

BOM = "\ufeff"
_OPENERS = "[{"
_CLOSERS = "]}"
_SPACE = " \t\r\n"


class JsoncError(ValueError):
    """A parse error at ``line``:``column`` (both from 1)."""

    def __init__(self, msg: str, line: int, column: int):
        super().__init__(f"{msg} (at {line}:{column})")
        self.msg, self.line, self.column = msg, line, column


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(start, end):
        if chars[i] not in "\r\n":
            chars[i] = " "


def _string_end(text: str, start: int) -> int:
    """The index just past the string opened by the quote at ``start`` (or the text's end)."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "\n":  # JSON strings never span lines: json.loads reports it there
            return i
        i += 1
    return len(text)


def _comment_end(text: str, start: int) -> int:
    """The index just past the comment at ``start`` (``//`` up to the line end, or ``/* ... */``)."""
    if text[start + 1] == "/":
        newline = text.find("\n", start)
        return len(text) if newline < 0 else newline
    close = text.find("*/", start + 2)
    if close < 0:
        raise JsoncError("unterminated /* comment", *_position(text, start))
    return close + 2


def strip(text: str) -> str:
    """``text`` with comments and trailing commas replaced by spaces (same length, same lines)."""
    chars = list(text)
    pending_comma = -1  # index of a comma that is trailing if a closer comes next
    last = ""  # the last significant character kept
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            pending_comma, last = -1, '"'
            i = _string_end(text, i)
        elif c == "/" and text[i + 1 : i + 2] in ("/", "*"):
            end = _comment_end(text, i)
            _blank(chars, i, end)
            i = end
        elif c in _SPACE:
            i += 1
        else:
            if c in _CLOSERS and pending_comma >= 0:
                chars[pending_comma] = " "
            # a comma right after an opener, a colon or another comma is an error json.loads reports
            pending_comma = i if c == "," and last not in (*_OPENERS, ":", ",", "") else -1
            last = c
            i += 1
    return "".join(chars)


def loads(text: str) -> Any:
    """Parse JSON with comments, trailing commas and a leading BOM; raise :class:`JsoncError`."""
    if text.startswith(BOM):
        text = text[len(BOM) :]
    cleaned = strip(text)
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise JsoncError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise JsoncError("nested too deeply", 1, 1) from None
