"""Every core hook is exercised by a test (docs/hooks.md is checked in test_hook_docs.py)."""

import ast
import re
from pathlib import Path

import click

import skiff_apps.plugin as apps_plugin
from skiff import hookimpl, hookspecs
from skiff.testing import LIFECYCLE_HOOKS

ROOT = Path(__file__).resolve().parents[2]


def _hook_names() -> list[str]:
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("skiff_")]


# What makes the core call a hook besides ``pm.hook.skiff_X(...)``: calls whose name is one of these.
LIFECYCLE_DRIVERS = {"deploy", "redeploy"}  # skiff.lifecycle.deploy / redeploy
DRIVERS = {
    **{name: LIFECYCLE_DRIVERS for name in (*LIFECYCLE_HOOKS, "skiff_deploy_failed")},
    "skiff_commands": {"invoke", "run_skiff", "build_cli"},
    "skiff_settings": {"invoke", "run_skiff", "build_cli", "ssh", "namespaces"},
    "skiff_app_created": {"invoke", "run_skiff"},
    "skiff_app_destroyed": {"invoke", "run_skiff"},
    "skiff_app_renamed": {"invoke", "run_skiff"},
    "skiff_report": {"invoke", "run_skiff"},
    "skiff_addhooks": {"make_plugin_manager", "build_plugin_manager"},
    "skiff_upgrade": {"invoke", "run_skiff"},  # state:migrate
    "skiff_builders": {*LIFECYCLE_DRIVERS, "invoke", "run_skiff", "installed_builders", "choose"},
    # asked by the SSH dispatch (skiff ssh-command) before a command runs
    **{
        name: {"invoke", "run_skiff", "ssh", "_ssh", "over_ssh"}
        for name in ("skiff_key_role", "skiff_app_access", "skiff_service_apps")
    },
}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _direct_hook_calls(node: ast.AST) -> set[str]:
    """Hooks called as ``<...>.hook.skiff_X(...)`` or ``<...>.hook.skiff_X.call_historic(...)``."""
    called = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        func = call.func
        if func.attr == "call_historic" and isinstance(func.value, ast.Attribute):
            func = func.value
        if func.attr.startswith("skiff_") and isinstance(func.value, (ast.Attribute, ast.Name)):
            owner = func.value.attr if isinstance(func.value, ast.Attribute) else func.value.id
            if owner == "hook":
                called.add(func.attr)
    return called


def _mentioned(node: ast.AST, classes: dict[str, set[str]]) -> set[str]:
    """Hook names a test names: identifiers, strings, LIFECYCLE_HOOKS, hookimpls of classes it uses."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
            found.update(classes.get(sub.id, ()))
            if sub.id == "LIFECYCLE_HOOKS":
                found.update(LIFECYCLE_HOOKS)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.update(re.findall(r"skiff_[a-z_]+", sub.value))
    return found


def _asserts(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Assert) for sub in ast.walk(node)) or "raises" in _called_names(node)


def _tested_hooks(path: Path) -> set[str]:
    """Hooks that some test function of ``path`` both triggers and checks."""
    tree = ast.parse(path.read_text())
    classes = {
        node.name: {
            item.name for item in node.body if isinstance(item, ast.FunctionDef) and item.name.startswith("skiff_")
        }
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    tested = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and _asserts(node)):
            continue
        mentioned, called = _mentioned(node, classes), _called_names(node)
        tested |= _direct_hook_calls(node)
        tested |= {hook for hook, drivers in DRIVERS.items() if hook in mentioned and called & drivers}
    return tested


def test_every_hook_has_a_test():
    """Each core hook is called by some test (directly, or through what calls it) that also names it and asserts."""
    files = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/*/tests/test_*.py")]
    tested = set().union(*(_tested_hooks(path) for path in files))
    assert [name for name in _hook_names() if name not in tested] == []


def test_the_hook_test_finder_needs_a_call_and_an_assert(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "def test_named_only():\n    assert 'skiff_report'\n"
        "def test_called_without_assert(h):\n    h.context.hook.skiff_app_created(context=None, app='a')\n"
        "def test_direct(h):\n    assert h.context.hook.skiff_receive(deploy=None) is None\n"
        "def test_driven(h):\n    release = lifecycle.deploy(h.context, 'web', None)\n"
        "    assert recorder.names == list(LIFECYCLE_HOOKS)\n"
    )
    assert _tested_hooks(probe) == {"skiff_receive", *LIFECYCLE_HOOKS}


class AppEvents:
    def __init__(self):
        self.events = []

    @hookimpl
    def skiff_app_created(self, context, app):
        self.events.append(("skiff_app_created", app))

    @hookimpl
    def skiff_app_destroyed(self, context, app):
        # called before the state is removed: the plugin can still read it
        self.events.append(("skiff_app_destroyed", app, context.state.get_config(app)))

    @hookimpl
    def skiff_app_renamed(self, context, old, new):
        self.events.append(("skiff_app_renamed", old, new))

    @hookimpl
    def skiff_report(self, context, app):
        return {"events": {"count": len(self.events)}}

    @hookimpl
    def skiff_commands(self, cli: click.Group):
        @cli.command("events:count")
        def count():
            """Print how many app events were seen."""
            click.echo(str(len(self.events)))


def test_app_event_hooks_and_report_and_commands(skiff):
    events = AppEvents()
    h = skiff(("apps", apps_plugin), ("events", events))
    assert h.invoke("apps:create", "one").exit_code == 0
    h.state.set_config("one", {"A": "1"})
    assert h.invoke("apps:rename", "one", "two").exit_code == 0
    report = h.invoke("apps:report", "two", "--format", "json")
    assert '"count": 2' in report.stdout and '"name": "two"' in report.stdout
    assert h.invoke("apps:destroy", "two", "--force").exit_code == 0
    assert events.events == [
        ("skiff_app_created", "one"),
        ("skiff_app_renamed", "one", "two"),
        ("skiff_app_destroyed", "two", {"A": "1"}),
    ]
    assert h.invoke("events:count").stdout.strip() == "3"
    assert "events:count" in h.invoke("--help").stdout
