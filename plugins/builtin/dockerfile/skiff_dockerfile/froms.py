"""The base images of a Dockerfile: its ``FROM`` lines (and ``COPY --from=IMAGE``).

Only what the build would pull is returned: build stages named with
``FROM ... AS name`` (and stage numbers in ``COPY --from=0``) are not images,
``scratch`` is no image. ``ARG`` lines before the first ``FROM`` give defaults
that build args override, as in ``docker build``; ``$NAME``, ``${NAME}``,
``${NAME:-word}`` and ``${NAME:+word}`` are substituted. Line continuations,
comments and the ``# escape=`` parser directive are honoured. A ``FROM`` line
that does not full-match ``FROM [--flag=value]... IMAGE [AS NAME]``, or whose
image is no valid reference once substituted, is a :class:`ValidationError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from skiff import validate
from skiff.errors import ValidationError

MAX_DOCKERFILE = 1024 * 1024  # bytes read; a Dockerfile is small
DIRECTIVE = re.compile(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*")
FLAG = r"--[a-zA-Z][a-zA-Z0-9-]*=\S+"
FROM_ARGS = re.compile(rf"(?P<flags>(?:{FLAG}\s+)*)(?P<image>[^\s-]\S*)(?:\s+[aA][sS]\s+(?P<stage>\S+))?")
STAGE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]{0,127}")
ARG_ITEM = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<value>\"[^\"]*\"|'[^']*'|\S*))?")
VARIABLE = re.compile(r"\\\$|\$(?:(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\{(?P<braced>[^}]*)\})")
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\+|-|\+)(?P<word>.*))?", re.S)
COPY_FROM = re.compile(r"--from=(\S+)")


@dataclass(frozen=True)
class BaseImage:
    """An image the build needs from the engine (or a registry)."""

    reference: str
    line: int  # 1-based line of the instruction in the Dockerfile


def base_images(text: str, build_args: Mapping[str, str] | None = None) -> list[BaseImage]:
    """The external images ``text`` builds from, in order, each once."""
    args: dict[str, str | None] = {}
    stages: set[str] = set()
    seen_from = False
    found: dict[str, BaseImage] = {}
    given = dict(build_args or {})
    for number, keyword, rest in instructions(text):
        if keyword == "ARG" and not seen_from:
            for name, default in _arg_items(rest, number):
                args[name] = given.get(name, default)
        elif keyword == "FROM":
            seen_from = True
            image, stage = _from_line(rest, number, args)
            if image.lower() not in stages and image != "scratch":
                found.setdefault(image, BaseImage(validate.image_reference(image, "base image"), number))
            if stage:
                stages.add(stage.lower())
        elif keyword in ("COPY", "ADD"):
            match = COPY_FROM.match(rest)
            source = match.group(1) if match else None
            if source and not source.isdigit() and source.lower() not in stages and "$" not in source:
                found.setdefault(source, BaseImage(validate.image_reference(source, "COPY --from image"), number))
    return list(found.values())


def instructions(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, KEYWORD, arguments)`` of each instruction, continuations joined."""
    lines = text.splitlines()
    escape = _escape_char(lines)
    pending: list[str] = []
    start = 0
    for index, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # docker skips empty and comment lines inside a continuation
        if not pending:
            start = index
        if stripped.endswith(escape):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        yield _instruction(start, pending)
        pending = []
    if pending:
        yield _instruction(start, pending)


def _instruction(start: int, parts: list[str]) -> tuple[int, str, str]:
    keyword, *rest = " ".join(part for part in parts if part).split(None, 1)
    return start, keyword.upper(), rest[0].strip() if rest else ""


def _escape_char(lines: list[str]) -> str:
    """The ``# escape=`` parser directive among the leading comment lines (default backslash)."""
    for line in lines:
        match = DIRECTIVE.fullmatch(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            return match.group(2)
    return "\\"


def _arg_items(rest: str, number: int) -> Iterator[tuple[str, str | None]]:
    for item in rest.split():
        match = ARG_ITEM.fullmatch(item)
        if not match:
            raise ValidationError(f"Dockerfile line {number}: cannot parse ARG {validate.shown(item)}")
        value = match.group("value")
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        yield match.group("name"), value


def _from_line(rest: str, number: int, args: Mapping[str, str | None]) -> tuple[str, str | None]:
    match = FROM_ARGS.fullmatch(rest)
    if not match:
        raise ValidationError(
            f"Dockerfile line {number}: cannot parse FROM {validate.shown(rest)}; "
            "expected FROM [--platform=...] IMAGE [AS NAME]"
        )
    stage = match.group("stage")
    if stage is not None and not STAGE.fullmatch(stage):
        raise ValidationError(f"Dockerfile line {number}: invalid stage name {validate.shown(stage)}")
    return substitute(match.group("image"), args, number), stage


def substitute(word: str, args: Mapping[str, str | None], number: int = 0) -> str:
    """``word`` with ``$NAME`` / ``${NAME}`` / ``${NAME:-x}`` / ``${NAME:+x}`` replaced from ``args``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        if match.group("plain"):
            return args.get(match.group("plain")) or ""
        braced = BRACED.fullmatch(match.group("braced"))
        if not braced:
            raise ValidationError(
                f"Dockerfile line {number}: unsupported substitution {validate.shown(match.group(0))} in FROM"
            )
        value = args.get(braced.group("name"))
        op, alternative = braced.group("op"), braced.group("word") or ""
        if op == ":-":
            return value or alternative
        if op == "-":
            return alternative if value is None else value
        if op == ":+":
            return alternative if value else ""
        if op == "+":
            return "" if value is None else alternative
        return value or ""

    return VARIABLE.sub(replace, word)
