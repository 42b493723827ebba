"""The hook reference is generated from nothing, so it is checked against everything.

docs/hooks.md documents every core hookspec (core/skiff/hookspecs.py), docs/builders.md every hook
the buildpacks plugin declares, each with its exact parameters, its return annotation and the
first line of its docstring (the docstring is the one source of the hook's text); every example
``def skiff_X(...)`` the docs show takes only parameter names its hookspec has. The
"Who implements what" table in docs/hooks.md names, for every hook, the builtin plugins that
implement it and their tryfirst/trylast/wrapper marker, as the live plugin manager sees them.
"""

from __future__ import annotations

import configparser
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import skiff_buildpacks.hookspecs as buildpack_hookspecs
import skiff_stack.hookspecs as stack_hookspecs
from skiff import hookspecs
from skiff.plugins import build_plugin_manager
from skiff.testing import LIFECYCLE_HOOKS

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MD = ROOT / "docs" / "hooks.md"
HEADING = re.compile(r"^#{3,4} `(skiff_\w+)\((.*?)\)(?: -> (.+?))?`$", re.M)
MARKERS = ("tryfirst", "trylast", "wrapper")


def _specs(*modules: ModuleType) -> dict[str, Callable[..., Any]]:
    return {
        name: obj
        for module in modules
        for name, obj in vars(module).items()
        if name.startswith("skiff_") and callable(obj)
    }


def _sections(doc: Path) -> dict[str, tuple[list[str], str, str]]:
    """``{hook: (parameter names, return annotation, section text)}`` of a doc's hook headings."""
    text = doc.read_text()
    found: dict[str, tuple[list[str], str, str]] = {}
    matches = list(HEADING.finditer(text))
    for match in matches:
        end = re.compile(r"^#{1,4} ", re.M).search(text, match.end())
        body = text[match.end() : end.start() if end else len(text)]
        params = [p.strip() for p in match.group(2).split(",") if p.strip()]
        assert match.group(1) not in found, f"{doc.name}: {match.group(1)} documented twice"
        found[match.group(1)] = (params, match.group(3) or "", body)
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("modules", "doc"),
    [((hookspecs,), HOOKS_MD), ((buildpack_hookspecs, stack_hookspecs), ROOT / "docs" / "builders.md")],
    ids=["core", "buildpacks-and-stack"],
)
def test_every_hookspec_is_documented_with_its_signature_and_docstring(
    modules: tuple[ModuleType, ...], doc: Path
) -> None:
    specs = _specs(*modules)
    sections = _sections(doc)
    assert sorted(sections) == sorted(specs), f"{doc.name} headings differ from {[m.__name__ for m in modules]}"
    for name, spec in specs.items():
        signature = inspect.signature(spec)
        params, returns, body = sections[name]
        assert params == list(signature.parameters), f"{doc.name}: parameters of {name}"
        assert returns == str(signature.return_annotation).strip("'\""), f"{doc.name}: return of {name}"
        first_line = (inspect.getdoc(spec) or "").splitlines()[0]
        assert first_line, f"{name} has no docstring"
        assert _one_line(first_line) in _one_line(body), f"{doc.name}: {name} lacks its docstring's first line"


IMPL = re.compile(r"^\s*def (skiff_\w+)\(([^)]*)\)", re.M)
DOCS_WITH_EXAMPLES = ("hooks.md", "builders.md", "plugins.md", "contracts.md")


def _example_impls(doc: Path) -> list[tuple[str, list[str]]]:
    """``(hook, parameter names)`` of every ``def skiff_X(...)`` a doc shows (``self`` dropped)."""
    found = []
    for match in IMPL.finditer(doc.read_text()):
        names = [p.split(":")[0].split("=")[0].strip() for p in match.group(2).split(",") if p.strip()]
        found.append((match.group(1), [n for n in names if n != "self"]))
    return found


def test_example_hookimpls_in_the_docs_use_the_specs_parameter_names() -> None:
    """pluggy passes arguments by name: an example may take fewer, never other, parameters."""
    specs = _specs(hookspecs, buildpack_hookspecs, stack_hookspecs)
    seen = 0
    for doc in (ROOT / "docs" / name for name in DOCS_WITH_EXAMPLES):
        for hook, names in _example_impls(doc):
            assert hook in specs, f"{doc.name}: an example implements {hook}, which no hookspec declares"
            allowed = list(inspect.signature(specs[hook]).parameters)
            assert set(names) <= set(allowed), f"{doc.name}: {hook}({', '.join(names)}) vs the spec {allowed}"
            seen += 1
    assert seen >= len(_specs(buildpack_hookspecs)), "the example reader found no examples"


def _builtin_plugin_names() -> set[str]:
    """Entry-point names of every distribution in this repository (the builtins and contrib)."""
    names: set[str] = set()
    for setup_cfg in ROOT.glob("plugins/*/*/setup.cfg"):
        cfg = configparser.ConfigParser()
        cfg.read(setup_cfg)
        for line in cfg.get("options.entry_points", "skiff", fallback="").splitlines():  # libraries: none
            if "=" in line:
                names.add(line.split("=")[0].strip())
    return names


def _table() -> dict[str, set[tuple[str, str]]]:
    """``{hook: {(plugin, marker)}}`` from the "Who implements what" table of docs/hooks.md."""
    text = HOOKS_MD.read_text()
    table = text[text.index("### Who implements what") :]
    rows: dict[str, set[tuple[str, str]]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`skiff_\w+`", cells[1]):
            continue
        hook = cells[1].strip("`")
        assert hook not in rows, f"two rows for {hook}"
        rows[hook] = {
            (plugin, marker or "")
            for plugin, marker in re.findall(r"`([\w.-]+)`(?: \((tryfirst|trylast|wrapper)\))?", cells[2])
        }
    return rows


def _marker(impl: Any) -> str:
    if impl.wrapper or impl.hookwrapper:
        return "wrapper"
    return "tryfirst" if impl.tryfirst else "trylast" if impl.trylast else ""


def test_phase_plugin_table_matches_the_live_plugin_manager(skiff_root: Path) -> None:
    builtins = _builtin_plugin_names()
    pm = build_plugin_manager(load_entry_points=True)
    loaded = {name for name, info in pm.infos.items() if info.status == "enabled"}
    assert builtins <= loaded, f"builtin plugins not loaded: {sorted(builtins - loaded)}"
    live = {
        name: {(impl.plugin_name, _marker(impl)) for impl in caller.get_hookimpls() if impl.plugin_name in builtins}
        for name, caller in vars(pm.hook).items()
        if name.startswith("skiff_")
    }
    documented = _table()
    assert sorted(documented) == sorted(live), "the table needs one row per hook"
    for hook, impls in live.items():
        assert documented[hook] == impls, f"docs/hooks.md table row of {hook}"


def test_the_lifecycle_diagram_names_every_lifecycle_hook() -> None:
    text = HOOKS_MD.read_text()
    diagram = text[text.index("```mermaid") :]
    diagram = diagram[: diagram.index("\n```\n")]
    for name in [*LIFECYCLE_HOOKS, "skiff_deploy_failed"]:
        assert f'"{name}<br>' in diagram, name
