"""Access control over SSH: command levels, key roles, access lists, the event log."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import click
import pytest

from skiff import access, events, hookimpl
from skiff.errors import SkiffError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

FIXTURES = Path(__file__).parent / "fixtures"
# plugins that need docker/nginx to do anything; the rules do not depend on them
OFFLINE = ("docker", "nginx", "buildpacks", "dockerfile", "postgres", "stack")


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_suffix(".pub")


@pytest.fixture
def keys_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "authorized_keys"
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(path))
    return path


@pytest.fixture
def h(skiff, keys_file, tmp_path):
    """All entry-point plugins but the docker-bound ones; bob is a deployer on web, alice an admin."""
    harness = skiff(entry_points=True, disabled=OFFLINE)
    assert harness.invoke("ssh-keys:add", "bob", str(_keygen(tmp_path / "bob"))).exit_code == 0
    assert harness.invoke("ssh-keys:add", "alice", str(_keygen(tmp_path / "alice")), "--role", "admin").exit_code == 0
    for app in ("web", "other"):
        harness.create_app(app)
    assert harness.invoke("acl:add", "web", "bob").exit_code == 0
    return harness


def ssh(h, key: str, command: str):
    return h.ssh(command, key=key)


def refused(result, line: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"!     {line}"]


# -- every command declares its level -------------------------------------------------------


def test_every_command_of_every_plugin_declares_its_level(skiff):
    h = skiff(entry_points=True)
    with click.Context(h.cli) as ctx:
        commands = {name: h.cli.get_command(ctx, name) for name in h.cli.list_commands(ctx)}
    assert len(commands) > 100 and "acl:add" in commands and "postgres:link" in commands
    missing = [name for name, command in commands.items() if access.declaration(command) is None]
    assert missing == []
    for name, command in commands.items():
        decl = access.declaration(command)
        params = {p.name for p in command.params}
        assert decl.level in access.LEVELS, name
        if decl.level == access.APP:
            assert decl.app or decl.service, name
            assert decl.app is None or decl.app in params, (name, decl.app, params)
            assert decl.service is None or decl.service in params, (name, decl.service, params)
        if any(p in params for p in access.GLOBAL_PARAMS) or name.endswith("-global"):
            assert decl.level != access.PUBLIC, name


class Undeclared:
    """A plugin command that declares no access level."""

    @hookimpl
    def skiff_commands(self, cli):
        @click.command("thing:do")
        @click.argument("app")
        def thing(app):
            click.echo(f"did {app}")

        cli.add_command(thing)


def test_the_walk_would_catch_a_command_without_a_declaration(skiff, keys_file):
    h = skiff(Undeclared())
    command = h.cli.commands["thing:do"]
    assert access.declaration(command) is None
    assert access.effective(command).level == access.ADMIN


def test_a_command_without_a_declaration_is_refused_to_deployers(skiff, keys_file, tmp_path):
    import skiff_acl.plugin
    import skiff_apps.plugin
    import skiff_ssh_keys.plugin

    h = skiff(skiff_apps.plugin, skiff_acl.plugin, skiff_ssh_keys.plugin, Undeclared())
    h.invoke("ssh-keys:add", "bob", str(_keygen(tmp_path / "bob")))
    h.create_app("web")
    h.invoke("acl:add", "web", "bob")
    refused(ssh(h, "bob", "thing:do web"), "key 'bob' (deployer) may not run thing:do")
    assert ssh(h, "other-admin-line", "thing:do web").exit_code == 0  # no stored role: admin
    assert h.invoke("ssh-command", env={"SSH_ORIGINAL_COMMAND": "thing:do web"}).stdout == "did web\n"


# -- deployers --------------------------------------------------------------------------------


def test_the_builtin_plugins_answer_the_access_hooks(h):
    hook = h.context.hook
    assert hook.skiff_key_role(context=h.context, key="bob") == "deployer"
    assert hook.skiff_key_role(context=h.context, key="alice") == "admin"
    assert hook.skiff_app_access(context=h.context, key="bob", app="web", creating=False) is True
    assert not hook.skiff_app_access(context=h.context, key="bob", app="other", creating=False)
    assert not hook.skiff_app_access(context=h.context, key="bob", app="new", creating=True)


def test_a_deployer_works_on_its_own_app(h):
    result = ssh(h, "bob", "config:set --no-restart web GREETING=hi")
    assert result.exit_code == 0, result.output
    assert ssh(h, "bob", "config:get web GREETING").stdout == "hi\n"
    assert "GREETING" in ssh(h, "bob", "config:show web").stdout
    assert ssh(h, "bob", "acl:list web").stdout.splitlines()[-1] == "bob"
    assert ssh(h, "bob", "apps:exists web").exit_code == 0


def test_a_deployer_is_refused_other_apps_in_one_line_and_nothing_changes(h):
    h.state.set_config("other", {"A": "1"})
    refused(ssh(h, "bob", "config:show other"), "key 'bob' (deployer) may not run config:show on app 'other'")
    refused(ssh(h, "bob", "config:set other A=2"), "key 'bob' (deployer) may not run config:set on app 'other'")
    refused(ssh(h, "bob", "apps:destroy other --force"), "key 'bob' (deployer) may not run apps:destroy on app 'other'")
    refused(ssh(h, "bob", "apps:rename other mine"), "key 'bob' (deployer) may not run apps:rename on app 'other'")
    refused(
        ssh(h, "bob", "git-upload-pack '/other.git'"), "key 'bob' (deployer) may not run git-upload-pack on app 'other'"
    )
    refused(
        ssh(h, "bob", "git-receive-pack 'other'"), "key 'bob' (deployer) may not run git-receive-pack on app 'other'"
    )
    assert h.state.get_config("other") == {"A": "1"}
    assert h.state.list_apps() == ["other", "web"]


def test_a_deployer_is_refused_global_and_admin_commands(h):
    refused(ssh(h, "bob", "config:set --global A=1"), "key 'bob' (deployer) may not run config:set --global")
    refused(ssh(h, "bob", "config:show --global"), "key 'bob' (deployer) may not run config:show --global")
    refused(ssh(h, "bob", "git:set --global auto-create true"), "key 'bob' (deployer) may not run git:set --global")
    refused(ssh(h, "bob", "acl:set --global deployer-create-apps true"), "key 'bob' (deployer) may not run acl:set")
    for command in ("apps:list", "events", "ssh-keys:list", "plugin:list", "acl:add web eve", "git:sync web /x"):
        refused(ssh(h, "bob", command), f"key 'bob' (deployer) may not run {command.split()[0]}")
    refused(ssh(h, "bob", "config:show"), "key 'bob' (deployer) may not run config:show without an app")
    assert h.state.get_config() == {}
    assert h.state.get_property("acl", "deployer-create-apps") is None


def test_a_deployer_may_ask_for_help_and_the_version(h):
    assert ssh(h, "bob", "").exit_code == 0
    assert ssh(h, "bob", "version").exit_code == 0
    result = ssh(h, "bob", "config:show --help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_root_commands_stay_refused_for_admins(h):
    result = ssh(h, "alice", "ssh-keys:set-role bob admin")
    assert result.exit_code == 1 and "is not available over SSH" in result.stderr
    assert ssh(h, "alice", "config:show other").exit_code == 0
    assert ssh(h, "alice", "config:set --global --no-restart A=1").exit_code == 0


def test_creating_apps_is_off_for_deployers_until_the_setting_is_on(h):
    refused(ssh(h, "bob", "apps:create fresh"), "key 'bob' (deployer) may not run apps:create on app 'fresh'")
    refused(
        ssh(h, "bob", "git-receive-pack 'fresh'"), "key 'bob' (deployer) may not run git-receive-pack on app 'fresh'"
    )
    assert not h.state.app_exists("fresh")
    assert h.invoke("acl:set", "--global", "deployer-create-apps", "true").exit_code == 0
    assert ssh(h, "bob", "apps:create fresh").exit_code == 0
    assert json.loads(h.invoke("acl:list", "fresh", "--format", "json").stdout) == ["bob"]
    # an admin that creates an app does not join its list (admins need none)
    assert ssh(h, "alice", "apps:create admins").exit_code == 0
    assert json.loads(h.invoke("acl:list", "admins", "--format", "json").stdout) == []


def test_destroy_and_rename_take_the_list_along(h):
    assert h.invoke("apps:rename", "web", "site").exit_code == 0
    assert ssh(h, "bob", "config:show site").exit_code == 0
    refused(ssh(h, "bob", "config:show web"), "key 'bob' (deployer) may not run config:show on app 'web'")
    assert ssh(h, "bob", "apps:destroy site --force").exit_code == 0
    h.create_app("site")
    refused(ssh(h, "bob", "config:show site"), "key 'bob' (deployer) may not run config:show on app 'site'")
    assert h.invoke("acl:list", "site", "--format", "json").stdout.strip() == "[]"


def test_acl_remove_takes_access_away(h):
    assert h.invoke("acl:remove", "web", "bob").exit_code == 0
    refused(ssh(h, "bob", "config:show web"), "key 'bob' (deployer) may not run config:show on app 'web'")
    result = h.invoke("acl:remove", "web", "bob")
    assert result.exit_code == 1 and "not in the access list" in result.stderr
    assert h.invoke("acl:add", "web", "bad name").exit_code == 1


def test_without_a_role_plugin_every_key_is_a_deployer(skiff):
    import skiff_acl.plugin
    import skiff_apps.plugin

    h = skiff(skiff_apps.plugin, skiff_acl.plugin)
    h.create_app("web")
    refused(ssh(h, "alice", "apps:list"), "key 'alice' (deployer) may not run apps:list")


# -- roles --------------------------------------------------------------------------------------


def test_roles_default_to_deployer_and_are_listed(h, tmp_path):
    listed = json.loads(h.invoke("ssh-keys:list", "--format", "json").stdout)
    assert {k["name"]: k["role"] for k in listed} == {"bob": "deployer", "alice": "admin"}
    text = h.invoke("ssh-keys:list").stdout.splitlines()
    assert text[0].split() == ["NAME", "ROLE", "FINGERPRINT"]
    assert text[1].split()[:2] == ["bob", "deployer"]
    assert h.invoke("ssh-keys:set-role", "bob", "admin").exit_code == 0
    assert ssh(h, "bob", "config:show other").exit_code == 0
    assert h.invoke("ssh-keys:set-role", "nobody", "admin").exit_code == 1
    assert h.invoke("ssh-keys:set-role", "bob", "owner").exit_code == 1


def test_a_removed_key_added_again_starts_as_deployer(h, tmp_path):
    assert h.invoke("ssh-keys:set-role", "bob", "admin").exit_code == 0
    assert h.invoke("ssh-keys:remove", "bob").exit_code == 0
    assert h.invoke("ssh-keys:add", "bob", str(_keygen(tmp_path / "bob2"))).exit_code == 0
    refused(ssh(h, "bob", "apps:list"), "key 'bob' (deployer) may not run apps:list")


def test_keys_added_before_roles_existed_are_admins(skiff, keys_file):
    shutil.copy(FIXTURES / "authorized_keys-v1", keys_file)
    h = skiff(entry_points=True, disabled=OFFLINE)
    h.create_app("web")
    listed = json.loads(h.invoke("ssh-keys:list", "--format", "json").stdout)
    assert listed == [
        {"name": "alice", "role": "admin", "fingerprint": listed[0]["fingerprint"], "type": "ssh-ed25519"}
    ]
    assert ssh(h, "alice", "apps:list").exit_code == 0
    assert ssh(h, "alice", "config:set --global --no-restart A=1").exit_code == 0


# -- the event log ------------------------------------------------------------------------------


def _event_rows(root: Path) -> list[tuple]:
    conn = sqlite3.connect(root / "skiff.db")
    try:
        return conn.execute("SELECT * FROM events").fetchall()
    finally:
        conn.close()


def test_ssh_commands_are_logged_with_key_and_result_and_no_secret(h, skiff_root):
    assert ssh(h, "bob", "config:set --no-restart web TOKEN=s3cret 'B=two words'").exit_code == 0
    refused(ssh(h, "bob", "config:show other"), "key 'bob' (deployer) may not run config:show on app 'other'")
    rows = _event_rows(skiff_root)
    assert "s3cret" not in repr(rows) and "two words" not in repr(rows)
    shown = h.invoke("events").stdout.splitlines()
    assert len(shown) == 2
    assert shown[0].split()[1:4] == ["bob", "ssh", "ok"]
    assert shown[0].endswith("config:set --no-restart web TOKEN=*** B=***")
    assert shown[1].split()[1:5] == ["bob", "ssh", "exit", "1"] and shown[1].endswith("config:show other")
    assert h.invoke("events", "-n", "1").stdout.splitlines() == shown[1:]
    logged = [json.loads(line) for line in h.invoke("events", "--format", "json").stdout.splitlines()]
    assert [e["key"] for e in logged] == ["bob", "bob"] and logged[0]["status"] == 0


def test_deploys_are_logged(skiff, monkeypatch, tmp_path):
    import skiff_apps.plugin

    h = skiff(skiff_apps.plugin, DirReceiver(), StubBuilder(), StubScheduler())
    h.create_app("web")
    (tmp_path / "src").mkdir()
    from skiff import lifecycle

    monkeypatch.setenv("SKIFF_KEY_NAME", "bob")
    lifecycle.deploy(h.context, "web", dir_source(tmp_path / "src"), "Deploy abc1234 by bob")
    monkeypatch.delenv("SKIFF_KEY_NAME")
    with pytest.raises(SkiffError):
        lifecycle.redeploy(h.context, "missing", "nothing")
    (event,) = h.state.events()
    assert (event["key"], event["kind"], event["app"], event["status"]) == ("bob", "deploy", "web", 0)
    assert event["command"] == "Deploy abc1234 by bob"


def test_a_failed_deploy_is_logged_as_failed(skiff, tmp_path):
    import skiff_apps.plugin

    h = skiff(skiff_apps.plugin, DirReceiver(), StubBuilder(fail=True), StubScheduler())
    h.create_app("web")
    (tmp_path / "src").mkdir()
    from skiff import lifecycle

    with pytest.raises(SkiffError):
        lifecycle.deploy(h.context, "web", dir_source(tmp_path / "src"))
    (event,) = h.state.events()
    assert event["status"] == 1 and event["key"].startswith("local:")


@pytest.mark.parametrize(
    "args, logged",
    [
        (["config:set", "web", "K=s3cret"], "config:set web K=***"),
        (["ps:scale", "web", "web=2"], "ps:scale web web=***"),
        (["git:sync", "web", "https://user:pw@example.com/r.git"], "git:sync web https://***@example.com/r.git"),
        (["postgres:create", "db", "--password", "hunter22"], "postgres:create db --password ***"),
        (["postgres:create", "db", "--password=hunter22"], "postgres:create db --password=***"),
        (["logs", "web", "-n", "5"], "logs web -n 5"),
    ],
)
def test_redaction(args, logged):
    assert events.command_line(args) == logged


def test_harmless_assignments_are_logged_as_they_are():
    assert events.command_line(["ps:scale", "web", "web=2"], log_assignments=True) == "ps:scale web web=2"


def test_the_migration_adds_the_events_table(skiff_root, run_skiff):
    result = run_skiff("state:migrate")
    assert result.returncode == 0 and "2: events (the audit log)" in result.stdout


def test_variadic_and_target_app_parameters_are_checked(skiff, keys_file, tmp_path):
    h = skiff(entry_points=True)  # docker and nginx loaded: the checks run before they touch anything
    assert h.invoke("ssh-keys:add", "bob", str(_keygen(tmp_path / "bob"))).exit_code == 0
    h.create_app("web")
    h.create_app("other")
    h.invoke("acl:add", "web", "bob")
    refused(ssh(h, "bob", "ps:set --global keep-releases 3"), "key 'bob' (deployer) may not run ps:set --global")
    refused(ssh(h, "bob", "ps:set other keep-releases 3"), "key 'bob' (deployer) may not run ps:set on app 'other'")
    refused(ssh(h, "bob", "ps:scale other web=2"), "key 'bob' (deployer) may not run ps:scale on app 'other'")
    refused(ssh(h, "bob", "config:set web --global A=1"), "key 'bob' (deployer) may not run config:set --global")
    refused(ssh(h, "bob", "config:set -- --global A=1"), "key 'bob' (deployer) may not run config:set --global")
    refused(
        ssh(h, "bob", "nginx:set other bind-address 0.0.0.0"),
        "key 'bob' (deployer) may not run nginx:set on app 'other'",
    )
    refused(ssh(h, "bob", "domains:set-global evil.example"), "key 'bob' (deployer) may not run domains:set-global")
    refused(ssh(h, "bob", "ps:report"), "key 'bob' (deployer) may not run ps:report without an app")
    refused(ssh(h, "bob", "ps:rebuild --all"), "key 'bob' (deployer) may not run ps:rebuild without an app")
    refused(ssh(h, "bob", "stack:update"), "stack:update is not available over SSH: run it in a shell on the server")
    refused(ssh(h, "bob", "stack:set --global build-on-push false"), "key 'bob' (deployer) may not run stack:set")
    refused(ssh(h, "bob", "run other -- cat /etc/passwd"), "key 'bob' (deployer) may not run run on app 'other'")
    scaled = ssh(h, "bob", "ps:scale --skip-deploy web web=2")
    assert scaled.exit_code == 0, scaled.output
    assert h.state.get_property("docker", "keep-releases") is None
    assert h.state.get_property("docker", "keep-releases", app="other") is None


def test_events_tail_follows_new_events(skiff_root, run_skiff):
    import os
    import sys
    import time

    assert run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": "version", "SKIFF_KEY_NAME": "bob"}).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "skiff", "events", "-t"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "SKIFF_ROOT": str(skiff_root)},
    )
    try:
        assert proc.stdout.readline().endswith("bob  ssh  ok  version\n")
        assert run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": "nope", "SKIFF_KEY_NAME": "carol"}).returncode == 1
        started = time.monotonic()
        line = proc.stdout.readline()
        assert line.endswith("carol  ssh  exit 1  nope\n") and time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait()
