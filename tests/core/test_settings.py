"""Declared settings: parsers, precedence, and the generated NS:set / NS:report with their access levels."""

from __future__ import annotations

import json

import click
import pytest

from skiff import hookimpl
from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, choice, integer, namespaces, number, parse_bool

CHECKED = []

SETTINGS = Namespace(
    "demo",
    (
        Setting("colour", default="blue", scope="both", env="DEMO_COLOUR", type=choice("blue", "red", "green")),
        Setting("size", type=integer(1, 10), default=3, help="how big"),
        Setting("loud", type=bool, default=False, scope="both", level="admin"),
        Setting("limit", type=int, default=100, scope="global"),
        Setting("path", default="", scope="global", level="root", validate=lambda c, v: CHECKED.append(v)),
    ),
)


class Declares:
    """A plugin declaring the ``demo`` settings; bob is a deployer of web, alice an admin."""

    @hookimpl
    def skiff_settings(self):
        return [SETTINGS]

    @hookimpl
    def skiff_key_role(self, context, key):
        return "admin" if key == "alice" else "deployer"

    @hookimpl
    def skiff_app_access(self, context, key, app, creating):
        return key == "bob" and app == "web"


@pytest.fixture
def h(skiff):
    harness = skiff(Declares())
    harness.create_app("web")
    harness.create_app("other")
    return harness


def report(h, *args: str) -> dict:
    result = h.invoke("demo:report", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- parsers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("true", True), ("ON", True), ("1", True), ("no", False), ("0", False)])
def test_one_bool_parser(text, value):
    assert parse_bool(text) is value


def test_parsers_refuse_in_one_line():
    for parse, bad in [(parse_bool, "maybe"), (integer(1, 10), "11"), (integer(), "1.5"), (number(0, 1), "nan")]:
        with pytest.raises(ValidationError) as info:
            parse(bad)
        assert "\n" not in str(info.value)
    assert integer(1, 10)("7") == 7 and number(0, 86400)("2.5") == 2.5
    with pytest.raises(ValidationError, match="size must be a number from 1 to 10, got 0"):
        SETTINGS.setting("size").parse("0")


def test_a_bad_declaration_is_refused():
    with pytest.raises(ValueError, match="scope"):
        Setting("x", scope="everywhere")
    with pytest.raises(ValueError, match="level"):
        Setting("x", level="god")
    with pytest.raises(ValueError, match="twice"):
        Namespace("x", (Setting("a"), Setting("a")))


# -- precedence: app, env, global, default ----------------------------------------------------------


def test_values_resolve_app_then_env_then_global_then_default(h, monkeypatch):
    state = h.state
    assert SETTINGS.get(state, "colour", app="web") == "blue"
    SETTINGS.set(h.context, "colour", "red")
    assert SETTINGS.get(state, "colour", app="web") == "red"
    monkeypatch.setenv("DEMO_COLOUR", "green")
    assert SETTINGS.get(state, "colour", app="web") == "green" and SETTINGS.get(state, "colour") == "green"
    SETTINGS.set(h.context, "colour", "blue", app="web")
    assert SETTINGS.get(state, "colour", app="web") == "blue"
    assert SETTINGS.get(state, "colour", app="other") == "green"
    SETTINGS.unset(h.context, "colour", app="web")
    monkeypatch.delenv("DEMO_COLOUR")
    assert SETTINGS.get(state, "colour", app="web") == "red"
    assert state.get_property("demo", "colour") == "red"  # stored as plugin properties
    SETTINGS.set(h.context, "loud", "yes", app="web")
    assert state.get_property("demo", "loud", app="web") is True  # stored typed
    assert SETTINGS.get(state, "size", app="web") == 3


# -- the generated commands ---------------------------------------------------------------------------


def test_set_and_report_for_free(h):
    """What a plugin declares with ``skiff_settings`` gets ``NS:set`` and ``NS:report``."""
    assert h.invoke("demo:set", "web", "size", "7").exit_code == 0
    assert h.invoke("demo:set", "--global", "loud", "on").exit_code == 0
    assert report(h, "web") == {"colour": "blue", "size": 7, "loud": True, "limit": 100, "path": ""}
    assert report(h) == {"colour": "blue", "loud": True, "limit": 100, "path": ""}
    text = h.invoke("demo:report", "web").stdout.splitlines()
    assert text[0] == "=====> web demo information" and "Size:" in text[2]
    assert h.invoke("demo:set", "web", "size").exit_code == 0  # no VALUE: the default
    assert report(h, "web")["size"] == 3 and h.state.get_property("demo", "size", app="web") is None
    assert h.invoke("demo:set", "--global", "path", "/x").exit_code == 0 and CHECKED[-1] == "/x"


def test_set_refuses_unknown_keys_wrong_scopes_and_bad_values_in_one_line(h):
    cases = [
        (("web", "colour", "pink"), "colour must be one of blue, red, green, got 'pink'"),
        (("web", "shape", "round"), "unknown demo setting 'shape'; known: colour, loud, size"),
        (("web", "limit", "5"), "limit can only be set with --global (demo:set --global limit VALUE)"),
        (("--global", "size", "5"), "size can only be set per app (demo:set APP size VALUE)"),
        (("nope", "size", "5"), "app nope does not exist"),
    ]
    for args, line in cases:
        result = h.invoke("demo:set", *args)
        assert result.exit_code == 1 and line in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert h.state.properties("demo", app="web") == {}


def test_a_deployer_sets_app_settings_of_its_apps_only(h):
    assert h.ssh("demo:set web size 5", key="bob").exit_code == 0
    assert h.ssh("demo:report web --format json", key="bob").exit_code == 0
    refused = h.ssh("demo:set other size 5", key="bob")
    assert refused.stderr == "!     key 'bob' (deployer) may not run demo:set on app 'other'\n"
    refused = h.ssh("demo:set web loud true", key="bob")  # admin level, even per app
    assert refused.stderr == "!     key 'bob' (deployer) may not change demo loud\n"
    refused = h.ssh("demo:set --global colour red", key="bob")
    assert refused.stderr == "!     key 'bob' (deployer) may not run demo:set --global\n"
    assert h.ssh("demo:set web loud true", key="alice").exit_code == 0
    assert h.ssh("demo:set --global colour red", key="alice").exit_code == 0
    refused = h.ssh("demo:set --global path /x", key="alice")  # root level: never over SSH
    assert refused.exit_code == 1 and "can only be changed on the server itself" in refused.stderr
    assert h.state.properties("demo", app="web") == {"size": 5, "loud": True}
    assert h.state.properties("demo") == {"colour": "red"}


def test_global_only_namespaces_say_so_and_a_plugins_own_command_wins(skiff):
    stack = Namespace("only", (Setting("image", scope="global", level="root"),), commands=("set",))

    class Plugin:
        @hookimpl
        def skiff_settings(self):
            return [stack]

        @hookimpl
        def skiff_commands(self, cli):
            cli.add_command(click.Command("only:report", callback=lambda: click.echo("mine")))

    h = skiff(Plugin())
    result = h.invoke("only:set", "image", "x")
    assert result.exit_code == 1 and "--global" in result.stderr
    assert h.invoke("only:set", "--global", "image", "x").exit_code == 0
    assert h.invoke("only:report").stdout == "mine\n"
    assert getattr(h.cli.commands["only:set"], "skiff_local_only", False)  # root: refused over SSH
    assert list(namespaces(h.context)) == ["only"]
