"""Every validator refuses a trailing newline (``re.match('...$')`` accepts ``'name\\n'``).

Each case is a real validator of a plugin's (or the core's) public module, called
with a good value (accepted) and the same value plus ``\\n``, ``\\r\\n`` or ``\\r``
(refused with a ValidationError). The CLI cases go through the harness and check
for exit code 1, one ``!`` line and nothing stored.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_docker.plugin as docker_plugin
import skiff_nginx.plugin as nginx_plugin
import skiff_ssh_keys.plugin as keys_plugin
from skiff import validate
from skiff.errors import ValidationError
from skiff_buildpacks import plugin as buildpacks
from skiff_docker import options, scheduler
from skiff_docker import settings as docker_settings
from skiff_docker.commands import process_settings
from skiff_git import repo as git_repo
from skiff_nginx import names
from skiff_nginx import settings as nginx_settings
from skiff_procfile import parse
from skiff_services import commandset as service_commands
from skiff_services import record as service
from skiff_ssh_keys import keys
from skiff_stack import build as stack_build
from skiff_stack import commands as stack_commands

ENDINGS = ["\n", "\r\n", "\r", "\n\n", " \n"]


def _app_json_process(name: str) -> str:
    parse.parse_app_json(json.dumps({"formation": {name: {"quantity": 1}}}))
    return name


def _app_json_env(key: str) -> str:
    parse.parse_app_json(json.dumps({"env": {key: "v"}}))
    return key


def _app_json_cron(field: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        job = {"command": "true", "schedule": "@daily", field: value}
        parse.parse_app_json(json.dumps({"cron": [job]}))
        return value

    return check


def _setting(key: str) -> Callable[[str], Any]:
    return lambda value: nginx_settings.SETTINGS.setting(key).parse(value)


def _docker_option(flag: str) -> Callable[[str], str]:
    return lambda value: options.normalise("deploy", [f"{flag}={value}"])


#: (id, validator, a value it accepts)
VALIDATORS: list[tuple[str, Callable[[str], Any], str]] = [
    ("core app name", validate.app_name, "shop"),
    ("core config key", validate.config_key, "GREETING"),
    ("core plugin name", validate.plugin_name, "skiff-hello"),
    ("core cron schedule", validate.cron_schedule, "*/5 * * * *"),
    ("core cron macro", validate.cron_schedule, "@daily"),
    ("core cron command", validate.cron_command, "echo tick | tr a-z A-Z"),
    ("procfile app.json cron schedule", _app_json_cron("schedule"), "0 4 * * mon"),
    ("procfile app.json cron command", _app_json_cron("command"), "echo $DYNO && date"),
    ("docker logs max-size", lambda v: docker_settings.LOGS.setting("max-size").parse(v), "10m"),
    ("docker cleanup schedule", lambda v: docker_settings.CLEANUP.setting("schedule").parse(v), "0 4 * * *"),
    ("nginx domain", names.domain, "shop.example.com"),
    ("nginx wildcard domain", names.domain, "*.example.com"),
    ("nginx domains", lambda v: names.domains([v]), "shop.example.com"),
    ("nginx upstream", names.upstream, "127.0.0.1:5000"),
    ("nginx size", names.size, "1m"),
    ("nginx duration", names.duration, "60s"),
    ("nginx address", names.address, "127.0.0.1"),
    ("nginx addresses", names.addresses, "127.0.0.1,[::1]"),
    ("nginx port", names.port, "8080"),
    ("nginx mapping", names.mapping, "http:80:5000"),
    ("nginx setting body size", _setting("client-max-body-size"), "10m"),
    ("nginx setting read timeout", _setting("proxy-read-timeout"), "30s"),
    ("nginx setting keepalive", _setting("keepalive"), "16"),
    ("nginx global http-port", _setting("http-port"), "8080"),
    ("nginx global listen-address", _setting("listen-address"), "127.0.0.1"),
    ("nginx global public-host", _setting("public-host"), "example.com"),
    ("nginx global bin", _setting("bin"), "/usr/sbin/nginx"),
    ("nginx global sudo", _setting("sudo"), "never"),
    ("ssh-keys key name", keys.validate_name, "alice"),
    ("docker process name", scheduler.validate_process, "web"),
    ("docker option add-host", _docker_option("--add-host"), "db:10.0.0.2"),
    ("docker option shm-size", _docker_option("--shm-size"), "64m"),
    ("docker option ulimit", _docker_option("--ulimit"), "nofile=1024:2048"),
    ("procfile app.json process", _app_json_process, "web"),
    ("procfile app.json env key", _app_json_env, "SECRET_KEY"),
    ("stack suite", stack_build.validate_suite, "bookworm"),
    ("stack image", stack_commands.image_name, "skiff/stack:trixie"),
    ("service name (postgres, redis)", service.service_name, "db"),
    ("service link alias", service.alias_key, "BLUE_DB"),
    ("git branch name", git_repo.branch_name, "main"),
    ("git revision", git_repo.revision_arg, "v1.0"),
]

#: Compiled patterns used for validation (a caller using ``.match`` must not accept a newline either).
PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("core APP_NAME", validate.APP_NAME, "shop"),
    ("core CONFIG_KEY", validate.CONFIG_KEY, "GREETING"),
    ("core PLUGIN_NAME", validate.PLUGIN_NAME, "skiff-hello"),
    ("nginx LABEL", names.LABEL, "shop"),
    ("nginx UPSTREAM", names.UPSTREAM, "127.0.0.1:5000"),
    ("nginx SIZE", names.SIZE, "1m"),
    ("nginx DURATION", names.DURATION, "60s"),
    ("nginx ADDRESS", names.ADDRESS, "127.0.0.1"),
    ("ssh-keys KEY_NAME", keys.KEY_NAME, "alice"),
    ("ssh-keys KEY_TYPE", keys.KEY_TYPE, "ssh-ed25519"),
    ("ssh-keys KEY_BLOB", keys.KEY_BLOB, "AAAAC3NzaC1lZDI1NTE5AAAAIE9o0ZKqVDd3Qd1s2Y7k4m5d+3b5bq8vVh2D8m3Ag/0g"),
    ("ssh-keys FINGERPRINT", keys.FINGERPRINT, "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
    ("docker PROCESS_NAME", scheduler.PROCESS_NAME, "web"),
    ("docker CANONICAL", scheduler.CANONICAL, "shop.web.1"),
    ("docker MEMORY", process_settings.MEMORY, "512m"),
    ("docker LOG_SIZE", docker_settings.LOG_SIZE, "10m"),
    ("docker CPU", process_settings.CPU, "0.5"),
    ("docker option VALUE", options.VALUE, "db:10.0.0.2"),
    ("docker option CAP", options.CAP, "NET_ADMIN"),
    ("docker option KEYVALUE", options.KEYVALUE, "a=b"),
    ("procfile PROCESS_NAME", parse.PROCESS_NAME, "web"),
    ("stack IMAGE_RE", stack_commands.IMAGE_RE, "skiff/stack:trixie"),
    ("stack OWN_IMAGE_RE", stack_commands.OWN_IMAGE_RE, "skiff/stack:trixie"),
    ("stack SUITE_RE", stack_build.SUITE_RE, "trixie"),
    ("buildpacks PACK_NAME", buildpacks.PACK_NAME, "python"),
    ("services ALIAS_RE", service.ALIAS_RE, "DATABASE"),
]


@pytest.mark.parametrize("check, good", [(v, g) for _, v, g in VALIDATORS], ids=[i for i, _, _ in VALIDATORS])
@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
def test_validator_refuses_a_trailing_line_break(check: Callable[[str], Any], good: str, ending: str) -> None:
    check(good)  # the good value passes: the refusal below is about the ending only
    with pytest.raises(ValidationError):
        check(good + ending)


@pytest.mark.parametrize("check, good", [(v, g) for _, v, g in VALIDATORS], ids=[i for i, _, _ in VALIDATORS])
def test_validator_refuses_a_leading_line_break(check: Callable[[str], Any], good: str) -> None:
    with pytest.raises(ValidationError):
        check("\n" + good)


@pytest.mark.parametrize("pattern, good", [(p, g) for _, p, g in PATTERNS], ids=[i for i, _, _ in PATTERNS])
@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
def test_pattern_refuses_a_trailing_line_break_even_with_match(
    pattern: re.Pattern[str], good: str, ending: str
) -> None:
    assert pattern.fullmatch(good)
    assert pattern.match(good + ending) is None
    assert pattern.fullmatch(good + ending) is None


def test_unicode_digits_are_not_numbers_in_nginx_values() -> None:
    for check, value in [(names.size, "\u0661m"), (names.duration, "\u0666\u0660s"), (names.address, "\u0661.1.1.1")]:
        with pytest.raises(ValidationError):
            check(value)


# -- through the CLI --------------------------------------------------------------


@pytest.fixture
def h(skiff, tmp_path, monkeypatch):
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(tmp_path / "authorized_keys"))
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("nginx", nginx_plugin), ("ssh-keys", keys_plugin))


def assert_refused(result: Any, what: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("!     ") and what in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=repr)
def test_apps_create_refuses_a_trailing_line_break(h, ending: str) -> None:
    assert_refused(h.invoke("apps:create", "shop" + ending), "invalid app name")
    assert h.state.list_apps() == []


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=repr)
def test_domains_add_refuses_a_trailing_line_break(h, ending: str) -> None:
    h.create_app("shop")
    h.create_app("other")
    before = h.invoke("domains:report", "shop", "--format", "json").stdout
    assert_refused(h.invoke("domains:add", "other", "shop.example.com" + ending), "invalid domain")
    assert h.state.get_property("nginx", "domains", app="other") is None
    assert h.invoke("domains:report", "shop", "--format", "json").stdout == before


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=repr)
def test_config_set_refuses_a_key_with_a_trailing_line_break(h, ending: str) -> None:
    h.create_app("shop")
    assert_refused(h.invoke("config:set", "--no-restart", "shop", f"GREETING{ending}=meow"), "invalid config key")
    assert h.state.get_config("shop") == {}


@pytest.fixture
def public_key(tmp_path) -> Path:
    path = tmp_path / "alice_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(path)], check=True)
    return path.with_suffix(".pub")


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=repr)
def test_ssh_keys_add_refuses_a_name_with_a_trailing_line_break(h, tmp_path, public_key, ending: str) -> None:
    assert_refused(h.invoke("ssh-keys:add", "alice" + ending, str(public_key)), "invalid key name")
    authorized = tmp_path / "authorized_keys"
    assert not authorized.exists() or "alice" not in authorized.read_text()


# -- numbers: ASCII digits only ('²'.isdigit() is true, int('²') raises), finite ---------


@pytest.fixture
def hd(skiff):
    h = skiff(("apps", apps_plugin), ("docker", docker_plugin))
    h.create_app("cat")
    return h


@pytest.mark.parametrize(
    "args, what",
    [
        (("ps:scale", "cat", "web=\u00b2"), "expected PROCESS=QUANTITY"),
        (("ps:scale", "cat", "web=2\n"), "expected PROCESS=QUANTITY"),
        (("ps:set", "cat", "keep-releases", "\u00b3"), "keep-releases must be a number"),
        (("checks:set", "cat", "timeout", "nan"), "timeout must be between 0 and 86400"),
        (("releases:rollback", "cat", "v\u00b9"), "invalid version"),
    ],
)
def test_docker_numbers_are_refused_in_one_line(hd, args: tuple[str, ...], what: str) -> None:
    assert_refused(hd.invoke(*args), what)
    assert docker_settings.scale_overrides(hd.state, "cat") == {}
    assert "timeout" not in (hd.state.get_property(docker_settings.PLUGIN, "checks", app="cat") or {})
    assert hd.state.get_property(docker_settings.PLUGIN, "keep-releases", app="cat") is None


@pytest.mark.parametrize("target", ["127.0.0.1:\u00b2", "127.0.0.1:5432\n", "\u0665\u0664\u0663\u0662"])
def test_postgres_expose_port_is_ascii(target: str) -> None:
    with pytest.raises(ValidationError):
        service_commands.parse_bind(target)
