"""npm's semver ranges, small: parse versions and ranges, test and pick the best match.

Follows the rules of npm's ``semver`` package (https://github.com/npm/node-semver#ranges),
written from its documentation:

- a range is comparator sets joined by ``||``; a set matches when all its comparators do;
- comparators: ``<``, ``<=``, ``>``, ``>=``, ``=`` or none, on full or partial versions
  (``1``, ``1.2``, ``1.x``, ``1.2.*``); ``~`` and ``~>`` (patch-level changes), ``^``
  (changes that keep the left-most non-zero part), hyphen ranges ``1.2 - 2.3.4``;
  ``*``, ``x`` and the empty range match every release;
- a version with a prerelease tag (``4.0.0-rc.1``) matches only a set that names a
  prerelease of the same ``major.minor.patch``; build metadata (``+abc``) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

NUM = r"0|[1-9][0-9]*"
PART = rf"{NUM}|[xX*]"
IDENT = r"[0-9A-Za-z-]+"
PRE = rf"{IDENT}(?:\.{IDENT})*"
VERSION_RE = re.compile(rf"\A[v=]?\s*({NUM})\.({NUM})\.({NUM})(?:-({PRE}))?(?:\+{PRE})?\Z")
PARTIAL_RE = re.compile(rf"\A[v=]?\s*({PART})(?:\.({PART})(?:\.({PART})(?:-({PRE}))?(?:\+{PRE})?)?)?\Z")
OPERATOR_RE = re.compile(r"\A(<=|>=|<|>|=|~>|~|\^)?\s*(.*)\Z", re.S)
HYPHEN_RE = re.compile(r"\A(\S+)\s+-\s+(\S+)\Z")
MAX_LENGTH = 256


class InvalidRange(ValueError):
    """The text is not an npm semver range."""


def _pre_key(pre: tuple[str, ...]) -> tuple:
    # numeric identifiers sort before alphanumeric ones, numerically; a release sorts after its prereleases
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre)


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        match = VERSION_RE.fullmatch(text.strip())
        if not match:
            raise InvalidRange(f"not a version: {text!r}")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        return (self.release, 0 if self.pre else 1, _pre_key(self.pre))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return ".".join(map(str, self.release)) + ("-" + ".".join(self.pre) if self.pre else "")


def _floor(major: int, minor: int = 0, patch: int = 0) -> Version:
    """The lowest version of a release line, prereleases included (npm's ``X.Y.Z-0``)."""
    return Version(major, minor, patch, ("0",))


@dataclass(frozen=True)
class Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        if self.op == ">=":
            return v >= self.version
        return v == self.version


ANY = (Comparator(">=", Version(0, 0, 0)),)
NOTHING = (Comparator("<", _floor(0)),)


@dataclass(frozen=True)
class Partial:
    """A version with some parts missing or wildcards: ``None`` for each."""

    major: int | None
    minor: int | None
    patch: int | None
    pre: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Partial:
        match = PARTIAL_RE.fullmatch(text)
        if not match:
            raise InvalidRange(f"not a version: {text!r}")
        parts = [None if p is None or p in "xX*" else int(p) for p in match.groups()[:3]]
        # a wildcard makes every part after it a wildcard too (1.x.3 is 1.x)
        for i, p in enumerate(parts):
            if p is None:
                parts[i:] = [None] * (3 - i)
                break
        pre = match.group(4)
        return cls(parts[0], parts[1], parts[2], tuple(pre.split(".")) if pre and parts[2] is not None else ())

    def full(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)


def _x_range(op: str, p: Partial) -> tuple[Comparator, ...]:
    """``op`` applied to a partial version (an X-range when ``op`` is ``=`` or none)."""
    if p.patch is not None:
        return (Comparator(op or "=", p.full()),)
    if p.major is None:
        return NOTHING if op in ("<", ">") else ANY
    major, minor = p.major, p.minor
    upper = _floor(major + 1) if minor is None else _floor(major, minor + 1)
    lower = Version(major, minor or 0, 0)
    if op in ("", "="):
        return (Comparator(">=", lower), Comparator("<", upper))
    if op == ">":
        return (Comparator(">=", Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)),)
    if op == ">=":
        return (Comparator(">=", lower),)
    if op == "<":
        return (Comparator("<", _floor(major, minor or 0)),)
    return (Comparator("<", upper),)  # <=


def _tilde(p: Partial) -> tuple[Comparator, ...]:
    if p.major is None:
        return ANY
    upper = _floor(p.major + 1) if p.minor is None else _floor(p.major, p.minor + 1)
    return (Comparator(">=", p.full()), Comparator("<", upper))


def _caret(p: Partial) -> tuple[Comparator, ...]:
    if p.major is None:
        return ANY
    if p.major > 0 or p.minor is None:
        upper = _floor(p.major + 1)
    elif p.minor > 0 or p.patch is None:
        upper = _floor(0, p.minor + 1)
    else:
        upper = _floor(0, 0, p.patch + 1)
    return (Comparator(">=", p.full()), Comparator("<", upper))


def _comparator(text: str) -> tuple[Comparator, ...]:
    match = OPERATOR_RE.fullmatch(text)
    assert match is not None  # the pattern matches every string
    op, rest = match.group(1) or "", match.group(2)
    partial = Partial.parse(rest)
    if op in ("~", "~>"):
        return _tilde(partial)
    if op == "^":
        return _caret(partial)
    return _x_range(op, partial)


def _hyphen(low: str, high: str) -> tuple[Comparator, ...]:
    lo, hi = Partial.parse(low), Partial.parse(high)
    lower = _x_range(">=", lo)
    upper = _x_range("<=", hi) if hi.major is not None else ()
    return lower + upper


def _tokens(text: str) -> list[str]:
    """Comparators of one set, with the space after an operator (``>= 1.2``) removed."""
    text = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", text.strip())
    return text.split()


def _parse_set(text: str) -> tuple[Comparator, ...]:
    text = text.strip()
    hyphen = HYPHEN_RE.fullmatch(text)
    if hyphen:
        return _hyphen(hyphen.group(1), hyphen.group(2))
    comparators: tuple[Comparator, ...] = ()
    for token in _tokens(text) or ["*"]:
        comparators += _comparator(token)
    return comparators


@dataclass(frozen=True)
class Range:
    sets: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        if len(text) > MAX_LENGTH:
            raise InvalidRange("range too long")
        return cls(tuple(_parse_set(part) for part in text.split("||")))

    def test(self, v: Version) -> bool:
        return any(_set_test(s, v) for s in self.sets)

    def best(self, versions: Iterable[Version]) -> Version | None:
        """The highest of ``versions`` in the range (npm's ``maxSatisfying``)."""
        matching = [v for v in versions if self.test(v)]
        return max(matching) if matching else None


def _set_test(comparators: tuple[Comparator, ...], v: Version) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if not v.pre:
        return True
    # a prerelease only matches a set that names a prerelease of the same release
    return any(c.version.pre and c.version.release == v.release for c in comparators)


def satisfies(version: str, range_text: str) -> bool:
    """``True`` when ``version`` is in ``range_text``; ``False`` for an invalid version or range."""
    try:
        return Range.parse(range_text).test(Version.parse(version))
    except InvalidRange:
        return False
