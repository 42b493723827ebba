"""Python version requests (.python-version, runtime.txt) against a stack's version."""

from __future__ import annotations

import re


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
    """``engines.node`` ranges: ``||`` of space-separated comparators (``>=18 <21``, ``20.x``, ``^20``)."""
    have = _parts(available)
    if not have:
        return False
    for alternative in requested.split("||"):
        specs = alternative.split()
        if specs and all(_comparator(have, spec) for spec in specs):
            return True
    return False
