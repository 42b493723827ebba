"""Every core hook is documented in docs/hooks.md and exercised by a test."""
import ast
import re
from pathlib import Path

import click

from skiff import hookimpl, hookspecs
from skiff.testing import LIFECYCLE_HOOKS
import skiff_apps.plugin as apps_plugin

ROOT = Path(__file__).resolve().parents[2]


def _hook_names() -> list[str]:
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("skiff_")]


def test_every_hook_is_documented_with_its_docstring():
    docs = (ROOT / "docs" / "hooks.md").read_text()
    documented = re.findall(r"^### `(skiff_[a-z_]+)", docs, re.M)
    names = _hook_names()
    assert sorted(documented) == sorted(names)
    for name in names:
        assert getattr(hookspecs, name).__doc__.strip(), name


def test_every_hook_has_a_test():
    sources = "\n".join(p.read_text() for p in [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/*/tests/test_*.py")])
    untested = [name for name in _hook_names() if name not in sources and name not in LIFECYCLE_HOOKS]
    assert untested == []


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
