"""The acl plugin: access lists, the create setting and its answers to skiff_app_access."""

import json

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
from skiff import hookimpl
from skiff.testing import KeyRole


def _ssh(h, command, key="bob"):
    return h.ssh(command, key=key)


def test_lists_answer_skiff_app_access(skiff):
    h = skiff(apps_plugin, acl_plugin, KeyRole())
    h.create_app("web")
    access = h.context.hook.skiff_app_access
    assert access(context=h.context, key="bob", app="web", creating=False) is False
    assert h.invoke("acl:add", "web", "bob").exit_code == 0
    assert h.invoke("acl:add", "web", "bob").stdout.endswith("already in the access list of web\n")
    assert access(context=h.context, key="bob", app="web", creating=False) is True
    assert access(context=h.context, key="eve", app="web", creating=False) is False
    assert access(context=h.context, key="bob", app="new", creating=True) is False
    assert h.invoke("acl:set", "--global", "deployer-create-apps", "yes").exit_code == 0
    assert access(context=h.context, key="eve", app="new", creating=True) is True
    assert h.invoke("acl:set", "--global", "deployer-create-apps").exit_code == 0
    assert access(context=h.context, key="eve", app="new", creating=True) is False


def test_acl_commands_validate_and_report(skiff):
    h = skiff(apps_plugin, acl_plugin)
    h.create_app("web")
    for args in (
        ("acl:add", "nope", "bob"),
        ("acl:add", "web", "-x"),
        ("acl:add", "web", "a b"),
        ("acl:set", "deployer-create-apps", "true"),
        ("acl:set", "--global", "deployer-create-apps", "maybe"),
        ("acl:list", "nope"),
    ):
        result = h.invoke(*args)
        assert result.exit_code != 0 and len(result.stderr.splitlines()) == 1, args
    assert h.state.get_property("acl", "deployer-create-apps") is None
    assert h.invoke("acl:add", "web", "carol@laptop").exit_code == 0
    assert json.loads(h.invoke("acl:list", "web", "--format", "json").stdout) == ["carol@laptop"]
    assert "carol@laptop" in h.invoke("apps:report", "web").stdout


def test_another_plugin_may_answer_first(skiff):
    class Everyone:
        @hookimpl
        def skiff_app_access(self, context, key, app, creating):
            return True

    h = skiff(apps_plugin, acl_plugin, KeyRole(), Everyone())
    h.create_app("web")
    assert _ssh(h, "apps:exists web").exit_code == 0
    assert _ssh(h, "apps:list").exit_code == 1  # admin commands stay admin
