"""Every plugin in this repository follows one layout (docs/plugins.md, "Layout of a plugin").

- ``skiff_<name>/__init__.py`` holds the plugin's name, ``PLUGIN``, equal to its entry-point
  name; no other module assigns it (they import it);
- its commands live in ``commands.py`` or a ``commands/`` package, which exports ``COMMANDS``,
  and ``plugin.py`` registers exactly that list in ``skiff_commands``;
- a command's function is named after the command (``git:report`` -> ``git_report``);
- no ``cmd_*.py`` / ``commands_*.py`` modules, and no one- or two-letter module aliases.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALL_DISTRIBUTIONS = sorted(p.parent for p in ROOT.glob("plugins/*/*/setup.cfg"))


def entry_points(dist: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(dist / "setup.cfg")
    lines = parser.get("options.entry_points", "skiff", fallback="").strip().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {name.strip(): target.strip() for name, target in pairs}


# plugins (a ``skiff`` entry point) and libraries that plugins depend on (none: skiff_services)
DISTRIBUTIONS = [d for d in ALL_DISTRIBUTIONS if entry_points(d)]
LIBRARIES = [d for d in ALL_DISTRIBUTIONS if not entry_points(d)]


def package_of(dist: Path) -> Path:
    (package,) = [p.parent for p in dist.glob("skiff_*/__init__.py")]
    return package


def modules(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def assigned_names(tree: ast.Module) -> set[str]:
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def command_functions(tree: ast.Module) -> list[tuple[str, str]]:
    """(command name, function name) of every ``@click.command("NAME")`` in a module."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and ast.unparse(decorator.func) == "click.command"
                and decorator.args
                and isinstance(decorator.args[0], ast.Constant)
            ):
                found.append((decorator.args[0].value, node.name))
    return found


def test_the_repository_has_plugins() -> None:
    assert len(DISTRIBUTIONS) >= 12


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_the_plugin_name_lives_in_the_package_init(dist: Path) -> None:
    package = package_of(dist)
    init = ast.parse((package / "__init__.py").read_text())
    constants = [n for n in init.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "PLUGIN"]
    assert len(constants) == 1, f"{package.name}/__init__.py must define PLUGIN"
    name = ast.literal_eval(constants[0].value)
    assert entry_points(dist).get(name, "").startswith(package.name), f"no entry point named {name!r}"
    for module in modules(package):
        if module.name != "__init__.py" or module.parent != package:
            assert "PLUGIN" not in assigned_names(ast.parse(module.read_text())), f"{module} assigns PLUGIN"


@pytest.mark.parametrize("dist", LIBRARIES, ids=lambda d: d.name)
def test_a_library_is_no_plugin(dist: Path) -> None:
    """A library has no PLUGIN, no plugin.py and no commands module: its users register what it makes."""
    package = package_of(dist)
    assert not (package / "plugin.py").exists() and not (package / "commands.py").exists()
    for module in modules(package):
        assert "PLUGIN" not in assigned_names(ast.parse(module.read_text())), f"{module} assigns PLUGIN"


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_commands_live_in_the_commands_module(dist: Path) -> None:
    package = package_of(dist)
    for module in modules(package):
        assert not re.fullmatch(r"(cmd_.*|commands_.*)\.py", module.name), f"{module}: use commands.py or commands/"
        if module.name == "__init__.py" and module.parent.name == "commands":
            continue
        in_commands = module.name == "commands.py" or module.parent.name == "commands"
        found = command_functions(ast.parse(module.read_text()))
        assert in_commands or not found, f"{module} defines commands {[c for c, _ in found]}"


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_command_functions_are_named_after_their_command(dist: Path) -> None:
    for module in modules(package_of(dist)):
        for command, function in command_functions(ast.parse(module.read_text())):
            assert function == re.sub(r"[:-]", "_", command), f"{module}: {command!r} is defined by {function}()"


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_plugin_registers_exactly_its_commands_list(dist: Path) -> None:
    import importlib

    package = package_of(dist)
    has_commands = (package / "commands.py").exists() or (package / "commands").is_dir()
    plugin_source = (package / "plugin.py").read_text()
    assert has_commands == ("def skiff_commands" in plugin_source)
    if not has_commands:
        return
    commands = importlib.import_module(f"{package.name}.commands").COMMANDS
    declared = {c.name for c in commands}
    defined = {
        name
        for module in modules(package)
        if module.name == "commands.py" or module.parent.name == "commands"
        for name, _ in command_functions(ast.parse(module.read_text()))
    }
    assert defined <= declared, f"COMMANDS misses {defined - declared}"
    for command in commands:  # decorated or made by a factory: held by a name that says which
        module = importlib.import_module(command.callback.__module__)
        assert module.__name__.startswith(f"{package.name}.commands"), f"{command.name} lives in {module.__name__}"
        holder = re.sub(r"[:-]", "_", command.name)
        assert getattr(module, holder, None) is command, f"{module.__name__}: {command.name!r} is not named {holder}"
    registered = _registered(package.name)
    assert registered == declared


def _registered(package: str) -> set[str]:
    import importlib

    import click

    group = click.Group("skiff")
    importlib.import_module(f"{package}.plugin").skiff_commands(cli=group)
    return set(group.commands)


@pytest.mark.parametrize("dist", ALL_DISTRIBUTIONS, ids=lambda d: d.name)
def test_no_cryptic_module_aliases(dist: Path) -> None:
    for module in modules(package_of(dist)):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for alias in node.names:
                    assert alias.asname is None or len(alias.asname) > 3, (
                        f"{module}: import {alias.name} as {alias.asname}"
                    )


@pytest.mark.parametrize("dist", ALL_DISTRIBUTIONS, ids=lambda d: d.name)
def test_every_subpackage_is_packaged(dist: Path) -> None:
    """A non-editable install (make install) ships every package of the plugin, commands/ too."""
    parser = configparser.ConfigParser()
    parser.read(dist / "setup.cfg")
    declared = {
        name.strip() for name in parser.get("options", "packages").replace("\n", ",").split(",") if name.strip()
    }
    package = package_of(dist)
    present = {".".join(init.parent.relative_to(dist).parts) for init in package.rglob("__init__.py")}
    assert present <= declared, f"setup.cfg packages misses {sorted(present - declared)}"
