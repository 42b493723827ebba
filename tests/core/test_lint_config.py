"""The quality gates stay in place: ruff's rule sets, strict mypy for the core, lint before the tests.

``make test`` runs ``make lint`` (ruff check, ruff format --check, mypy) first and stops on a finding;
these checks fail when someone drops a rule set, loosens the core's mypy settings, silences a
module with ``ignore_errors`` or takes lint out of ``make test``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"

RUFF_RULE_SETS = {"F", "E", "W", "I", "B", "UP"}
# every per-module flag that `mypy --strict` turns on
STRICT_FLAGS = (
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "check_untyped_defs",
    "disallow_untyped_decorators",
    "warn_unused_ignores",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
)


def _pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _rules(makefile: str) -> dict[str, tuple[list[str], list[str]]]:
    """``{target: (prerequisites, recipe lines)}`` of a Makefile's explicit rules."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in re.sub(r"\\\n\s*", " ", makefile).splitlines():
        match = re.match(r"^([\w.-]+):(?!=)(.*)$", line)
        if match and not line.startswith("\t"):
            current = []
            rules[match.group(1)] = (match.group(2).split(), current)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return rules


def test_ruff_selects_the_rule_sets() -> None:
    ruff = _pyproject()["tool"]["ruff"]
    lint = ruff.get("lint", {})
    selected = {*lint.get("select", ruff.get("select", [])), *lint.get("extend-select", [])}
    assert RUFF_RULE_SETS <= selected
    ignored = {*lint.get("ignore", []), *ruff.get("ignore", [])}
    assert not RUFF_RULE_SETS & ignored, "a whole rule set is ignored"


def test_mypy_is_strict_for_the_core_and_ignores_no_errors() -> None:
    mypy = _pyproject()["tool"]["mypy"]
    assert "ignore_errors" not in mypy
    overrides = mypy.get("overrides", [])
    assert all("ignore_errors" not in override for override in overrides)
    assert "ignore_errors" not in (ROOT / "pyproject.toml").read_text()
    core = [o for o in overrides if {"skiff", "skiff.*"} <= set(_modules(o))]
    assert core, "no [[tool.mypy.overrides]] for skiff and skiff.*"
    for override in core:
        if override.get("strict") is True:
            continue
        loose = [flag for flag in STRICT_FLAGS if override.get(flag) is not True]
        assert not loose, f"core/skiff is not strict: {loose}"
    makefile = MAKEFILE.read_text()
    assert re.search(r"^MYPY_PATHS \?= core/skiff ", makefile, re.M), "make lint checks core/skiff"
    assert "/bin/mypy $(MYPY_PATHS)" in " ".join(_rules(makefile)["lint"][1])


def _modules(override: dict[str, Any]) -> list[str]:
    module = override.get("module", [])
    return [module] if isinstance(module, str) else list(module)


def test_no_other_mypy_configuration_silences_errors() -> None:
    for path in [ROOT / "setup.cfg", ROOT / "mypy.ini", *ROOT.glob("plugins/*/*/setup.cfg")]:
        if path.exists():
            assert "ignore_errors" not in path.read_text(), path
    for path in ROOT.glob("plugins/*/*/pyproject.toml"):
        assert "[tool.mypy" not in path.read_text(), f"{path}: the plugins use the repository's mypy settings"


def test_make_test_runs_lint_first() -> None:
    rules = _rules(MAKEFILE.read_text())
    prerequisites, _ = rules["test"]
    assert "lint" in prerequisites, "make test must depend on lint"
    for slow in ("docker", "stack"):
        assert prerequisites.index("lint") < prerequisites.index(slow), f"lint runs before {slow}"
    recipe = " ".join(rules["lint"][1])
    for tool in ("ruff check", "ruff format --check", "mypy"):
        assert f"/bin/{tool}" in recipe, f"make lint runs {tool}"
    assert "exit $$rc" in recipe, "make lint fails when a tool found something"
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M), "CI runs make test"


def test_the_makefile_reader_sees_prerequisites_and_recipes() -> None:
    rules = _rules("VENV ?= x\n# c\nall: a b\n\techo 1 \\\n\t  2\n\techo 3\n\nb:\n\ttrue\n")
    assert rules == {"all": (["a", "b"], ["echo 1  2", "echo 3"]), "b": ([], ["true"])}
