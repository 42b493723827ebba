"""Version requests against a stack's versions: Python pins and PEP 440 specifiers, npm ranges."""

from __future__ import annotations

import re

from skiff.errors import SkiffError


def version_satisfies(available: str, requested: str) -> bool:
    """``3`` / ``3.13`` / ``3.13.5`` (or ``3.13.x``) match ``3.13.5`` component-wise."""
    want = [p for p in requested.split(".") if p not in ("x", "*", "")]
    have = available.split(".")
    return bool(want) and len(want) <= len(have) and have[: len(want)] == want


VERSION_RE = re.compile(r"\A(?:python-?)?([0-9]+(?:\.[0-9]+){0,2}(?:\.[x*])?)\Z")


def parse_requested(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            match = VERSION_RE.fullmatch(line)
            return match.group(1) if match else line
    return None


PIN_RE = re.compile(r"\A([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+|[x*]))?\Z")  # 3, 3.13, 3.13.5, 3.13.x
RUNTIME_RE = re.compile(r"\Apython-([0-9][0-9.x*]*)\Z")
CLAUSE_RE = re.compile(r"\A(~=|===|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\Z")


def first_line(text: str) -> str:
    """The first line that is neither blank nor a ``#`` comment (``""`` if none)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    return ""


def parse_pin(value: str, where: str) -> str:
    """A Python version pin (``3.13``, ``3.13.5``, ``3.13.x``), normalised; one clear line if it is not one."""
    match = PIN_RE.fullmatch(value.strip())
    if not match:
        raise SkiffError(f"{where}: {value.strip()!r} is not a Python version (expected e.g. 3.13 or 3.13.5)")
    return ".".join(p for p in match.groups() if p and p not in ("x", "*"))


def parse_python_version_file(text: str) -> str:
    """``.python-version``: its first line, a pin (``3.13``); pyenv names like ``pypy3.10`` are refused."""
    line = first_line(text)
    if not line:
        raise SkiffError(".python-version is empty (expected a Python version such as 3.13)")
    return parse_pin(line, ".python-version")


def parse_runtime_txt(text: str) -> str:
    """``runtime.txt``: ``python-3.12.0``, ``python-3.11.x``."""
    line = first_line(text)
    match = RUNTIME_RE.fullmatch(line)
    if not match:
        raise SkiffError(f"runtime.txt: {line!r} is not a Python runtime (expected e.g. python-3.13.5)")
    return parse_pin(match.group(1), "runtime.txt")


def minor_of(version: str) -> tuple[int, ...]:
    """``(3, 13)`` for ``3.13.5`` (or ``(3,)`` for ``3``)."""
    return tuple(_parts(version)[:2])


def parse_specifier(spec: str, where: str) -> list[tuple[str, list[int], bool]]:
    """A PEP 440 specifier set (``>=3.10,<3.14``, ``~=3.11``, ``==3.13.*``) as ``(op, release, wildcard)``."""
    clauses = []
    for raw in spec.split(","):
        match = CLAUSE_RE.fullmatch(raw.strip())
        wildcard = bool(match and match.group(3))
        if (
            not match
            or (wildcard and match.group(1) not in ("==", "!="))
            or (match.group(1) == "~=" and "." not in match.group(2))
        ):
            raise SkiffError(f"{where}: {spec.strip()!r} is not a version specifier (expected e.g. >=3.11)")
        clauses.append((match.group(1), [int(p) for p in match.group(2).split(".")], wildcard))
    return clauses


def specifier_allows(spec: str, version: str, where: str = "requires-python") -> bool:
    """True if release ``version`` (``3.13.5``) satisfies every clause of the PEP 440 ``spec``."""
    have = _parts(version)
    return bool(have) and all(_clause(have, *clause) for clause in parse_specifier(spec, where))


def _clause(have: list[int], op: str, want: list[int], wildcard: bool) -> bool:
    width = max(len(have), len(want))
    a, b = have + [0] * (width - len(have)), want + [0] * (width - len(want))
    if op in ("==", "!=", "==="):
        same = have[: len(want)] == want if wildcard else a == b
        return same if op != "!=" else not same
    if op == "~=":
        return a >= b and have[: len(want) - 1] == want[:-1]
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]


def _parts(text: str) -> list[int]:
    out = []
    for piece in text.split(".")[:3]:
        if not (piece.isascii() and piece.isdigit()):
            break
        out.append(int(piece))
    return out


def _comparator(available: list[int], spec: str) -> bool:
    """One npm-style comparator: ``>=18``, ``<21``, ``^20.1``, ``~20.19``, ``20.x``, ``20``, ``20.19.2``."""
    for op in (">=", "<=", ">", "<", "=", "^", "~"):
        if spec.startswith(op):
            rest = spec[len(op) :].lstrip("v")
            break
    else:
        op, rest = "", spec.lstrip("v")
    want = _parts(rest.replace("x", "").replace("*", "").rstrip("."))
    if not want:
        return op in ("", "=") and rest in ("", "x", "*")
    have = (available + [0, 0, 0])[:3]
    padded = (want + [0, 0, 0])[:3]
    if op == ">=":
        return have >= padded
    if op == ">":
        return have > padded
    if op == "<=":
        return have <= padded
    if op == "<":
        return have < padded
    if op == "^":
        return have >= padded and have[0] == padded[0]
    if op == "~":
        return have >= padded and have[: min(2, len(want))] == want[: min(2, len(want))]
    return have[: len(want)] == want


def node_satisfies(available: str, requested: str) -> bool:
    """``engines.node`` ranges as npm reads them (``>=18 <21``, ``20.x``, ``^20``, ``18 || 20``)."""
    from .semver import satisfies

    return satisfies(available, requested)
