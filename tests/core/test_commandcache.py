"""The command cache (skiff.commandcache): a start imports only what its command needs,
and every change of the installed, enabled or edited plugins is seen by the next start."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import click
import pytest

from skiff import access, cli, quickhelp
from skiff.commandcache import CACHE
from skiff.discovery import PLUGIN_CACHE
from skiff.plugins import build_plugin_manager

HELLO = '''
import click
from skiff import access, hookimpl


@access.public_command
@click.command("fresh:hello")
def hello():
    """Say hello from a plugin installed after the cache was written."""
    click.echo("hello from fresh")


@hookimpl
def skiff_commands(cli):
    cli.add_command(hello)
'''


@pytest.fixture
def service_account(tmp_path, monkeypatch):
    """A SKIFF_ROOT used by a (pretended) service account: the cache is only for it."""
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("SKIFF_ROOT", str(root))
    monkeypatch.delenv("SKIFF_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("SKIFF_PLUGINS", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return root


class Start:
    """One ``skiff ARGS`` in this process, as :func:`skiff.cli.main` runs it, keeping its context."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str):
        seen = {}
        real = cli.make_context

        def keep(*a, **kw):
            seen["context"] = context = real(*a, **kw)
            return context

        monkeypatch.setattr(cli, "make_context", keep)
        with pytest.raises(SystemExit) as exited:
            cli.main(list(args))
        monkeypatch.setattr(cli, "make_context", real)
        self.status = exited.value.code
        self.context = seen["context"]
        self.pm = self.context.pm
        captured = capsys.readouterr()
        self.out, self.err = captured.out, captured.err

    @property
    def cached(self) -> bool:
        cache = self.context.command_cache
        return cache is not None and cache.index is not None


@pytest.fixture
def start(capsys, monkeypatch, service_account):
    return lambda *args: Start(capsys, monkeypatch, *args)


def install(site: Path, name: str, source: str) -> Path:
    """Put a distribution with a ``skiff`` entry point on ``site`` (as pip would, without pip)."""
    module = site / f"{name}_plugin.py"
    module.write_text(source)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[skiff]\n{name} = {name}_plugin\n")
    importlib.invalidate_caches()
    return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith(("fresh_", "flaky_"))]:
        del sys.modules[name]


def test_help_from_the_cache_is_the_same_and_imports_no_plugin(start, service_account):
    first = start("--help")
    assert first.status == 0 and not first.cached and (service_account / CACHE).exists()
    second = start("--help")
    assert second.status == 0 and second.cached
    assert second.out == first.out and "apps:list" in second.out and "config:set" in second.out
    enabled = {n for n, i in second.pm.infos.items() if i.status == "enabled"}
    assert enabled and set(second.pm.deferred) == enabled  # not one plugin imported
    assert second.pm.get_plugins() == set()


def test_help_at_another_width_is_rendered_from_the_index_the_same(start, monkeypatch):
    start("--help")
    monkeypatch.setenv("COLUMNS", "60")  # not the width the full start rendered the list at
    narrow = start("--help")
    assert narrow.cached and narrow.pm.get_plugins() == set()
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # root: a full start, no cache
    full = start("--help")
    assert full.context.command_cache is None and narrow.out == full.out
    assert max(len(line) for line in narrow.out.splitlines()) <= 60


def test_a_command_imports_its_plugin_and_every_implementer_of_the_hooks_it_calls(start):
    start("--help")
    created = start("apps:create", "catmeow")
    assert created.status == 0 and created.cached, created.err
    pm = created.pm
    assert "apps" not in pm.deferred
    implementers = {n for n, i in pm.infos.items() if "skiff_app_created" in i.hooks}
    assert implementers and not implementers & set(pm.deferred)
    listed = start("apps:list")
    assert listed.cached and "catmeow" in listed.out


def test_every_command_is_found_when_it_is_the_first_a_cached_start_asks_for(start, service_account):
    """Each owner kind (core, a plugin, a settings namespace of a deferred plugin) loads on its own."""
    start("--help")
    index = json.loads((service_account / CACHE).read_text())["commands"]
    owners: dict[str, str] = {}
    for name, entry in sorted(index.items()):
        if not entry["local_only"]:  # root-only commands refuse the account before --help
            owners.setdefault(entry["owner"], name)
    assert "" in owners and any(o.startswith("settings:") for o in owners) and len(owners) > 10
    for owner, name in owners.items():
        alone = start(name, "--help")
        assert alone.cached and alone.status == 0 and f"Usage: skiff {name}" in alone.out, (owner, name, alone.err)


def test_a_stale_index_falls_back_to_every_command_and_is_written_again(start, service_account):
    start("apps:create", "catmeow")
    data = json.loads((service_account / CACHE).read_text())
    data["commands"]["apps:list"]["owner"] = "config"  # a plugin that does not give apps:list
    (service_account / CACHE).write_text(json.dumps(data))
    listed = start("apps:list")
    assert listed.status == 0 and "catmeow" in listed.out, listed.err
    assert json.loads((service_account / CACHE).read_text())["commands"]["apps:list"]["owner"] == "apps"
    assert start("apps:list").cached


def test_deferred_plugins_keep_the_hook_order_of_a_full_start():
    full = build_plugin_manager()
    hooks = {n: i.hooks for n, i in full.infos.items() if i.status == "enabled"}
    lazy = build_plugin_manager(defer=hooks)
    for name in sorted(lazy.deferred, reverse=True):  # the worst order: last name first
        lazy.load_deferred(name)
    for name, caller in vars(full.hook).items():
        if name.startswith("skiff_"):
            order = [i.plugin_name for i in caller.get_hookimpls()]
            assert [i.plugin_name for i in getattr(lazy.hook, name).get_hookimpls()] == order, name


def test_a_hook_reached_through_the_context_registers_its_deferred_implementers():
    full = build_plugin_manager()
    lazy = build_plugin_manager(defer={n: i.hooks for n, i in full.infos.items() if i.status == "enabled"})
    assert lazy.get_plugins() == set()
    caller = lazy.calls.skiff_app_created
    assert {i.plugin_name for i in caller.get_hookimpls()} == {
        i.plugin_name for i in full.hook.skiff_app_created.get_hookimpls()
    }


def test_an_installed_or_removed_plugin_is_seen_at_once(start, site):
    start("--help")
    assert start("--help").cached
    module = install(site, "fresh", HELLO)
    listed = start("--help")
    assert not listed.cached and "fresh:hello" in listed.out
    ran = start("fresh:hello")
    assert ran.cached and ran.status == 0 and "hello from fresh" in ran.out
    module.unlink()
    for path in site.glob("fresh-*.dist-info/*"):
        path.unlink()
    (site / "fresh-1.0.dist-info").rmdir()
    sys.modules.pop("fresh_plugin", None)
    importlib.invalidate_caches()
    gone = start("--help")
    assert not gone.cached and "fresh:hello" not in gone.out
    assert start("fresh:hello").status != 0


def test_plugin_disable_enable_and_the_environment_are_seen_at_once(start, monkeypatch):
    start("--help")
    assert start("--help").cached
    assert start("plugin:disable", "acl").status == 0
    off = start("--help")
    assert not off.cached and "acl:add" not in off.out and "apps:list" in off.out
    assert start("--help").cached and "acl:add" not in start("--help").out
    assert start("plugin:enable", "acl").status == 0
    on = start("--help")
    assert not on.cached and "acl:add" in on.out
    monkeypatch.setenv("SKIFF_DISABLED_PLUGINS", "acl")
    assert "acl:add" not in start("--help").out
    assert start("acl:add", "catmeow", "key").status != 0
    monkeypatch.delenv("SKIFF_DISABLED_PLUGINS")
    back = start("--help")
    assert not back.cached and "acl:add" in back.out


def test_a_library_removed_under_a_plugin_is_seen_at_once(start, site):
    """Only the library goes (the plugin's entry point stays): the plugin is named as broken at once."""
    install(site, "fresh", "import fresh_library\n" + HELLO)
    (site / "fresh_library.py").write_text("")
    (site / "fresh_library-1.0.dist-info").mkdir()
    (site / "fresh_library-1.0.dist-info" / "METADATA").write_text("Name: fresh-library\nVersion: 1.0\n")
    start("--help")
    assert start("fresh:hello").cached
    (site / "fresh_library.py").unlink()
    (site / "fresh_library-1.0.dist-info" / "METADATA").unlink()
    (site / "fresh_library-1.0.dist-info").rmdir()
    for name in ("fresh_plugin", "fresh_library"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    after = start("--help")
    assert not after.cached and "fresh is broken" in after.err and "fresh:hello" not in after.out


def test_an_edited_plugin_source_is_seen_at_once(start, site):
    module = install(site, "fresh", HELLO)
    start("--help")
    assert start("--help").cached
    module.write_text(HELLO.replace("fresh:hello", "fresh:greet"))
    stamp = module.stat().st_mtime_ns + 1_000_000_000
    os.utime(module, ns=(stamp, stamp))
    sys.modules.pop("fresh_plugin", None)
    edited = start("--help")
    assert not edited.cached and "fresh:greet" in edited.out and "fresh:hello" not in edited.out


def test_a_broken_plugin_is_imported_at_every_start_and_its_repair_is_seen(start, site):
    module = install(site, "flaky", "raise RuntimeError('not yet')\n")
    start("--help")
    again = start("--help")
    assert again.cached and "flaky is broken" in again.err and "flaky" not in again.pm.deferred
    module.write_text(HELLO.replace("fresh:hello", "flaky:hello"))
    sys.modules.pop("flaky_plugin", None)
    repaired = start("--help")
    assert not repaired.cached and "flaky:hello" in repaired.out and "broken" not in repaired.err


def test_root_never_reads_or_writes_the_cache(start, service_account, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    as_root = start("--help")
    assert as_root.context.command_cache is None and not (service_account / CACHE).exists()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    start("--help")
    data = json.loads((service_account / CACHE).read_text())
    data["commands"]["version"]["help"] = "Planted by the account."
    data["help"] = {width: text.replace("Show Skiff's version.", "Planted.") for width, text in data["help"].items()}
    (service_account / CACHE).write_text(json.dumps(data))
    assert "Planted." in start("--help").out  # the account may fool itself...
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    root_help = start("--help")
    assert "Planted" not in root_help.out and root_help.pm.deferred == {}  # ...never root
    assert json.loads((service_account / CACHE).read_text()) == data


def declared(command: click.Command) -> tuple:
    decl = access.effective(command)
    return (decl.level, decl.app, decl.service, decl.kind, decl.creates, decl.log_assignments, decl.resolve)


def test_the_cached_tree_gives_the_real_commands_with_their_access_declarations(start):
    full = start("--help")
    full_cli = cli.build_cli(full.context)
    lazy = start("--help")
    assert lazy.cached
    lazy_cli = cli.build_cli(lazy.context)
    assert isinstance(lazy_cli, cli.LazySkiffGroup)
    with click.Context(full_cli) as full_ctx, click.Context(lazy_cli) as lazy_ctx:
        names = full_cli.list_commands(full_ctx)
        assert lazy_cli.list_commands(lazy_ctx) == names
        for name in names:
            real, cached = full_cli.get_command(full_ctx, name), lazy_cli.get_command(lazy_ctx, name)
            assert cached is not None and type(cached) is type(real), name
            assert declared(cached) == declared(real), name
            assert cli.is_local_only(cached) == cli.is_local_only(real) == lazy_cli.is_local_only(name), name
            assert [p.name for p in cached.params] == [p.name for p in real.params], name
            assert cached.help == real.help, name


@pytest.mark.skipif(os.geteuid() != 0, reason="runs skiff as another account, which needs root")
def test_ssh_commands_of_a_service_account_run_from_the_cache_with_their_access_checks(tmp_path):
    """Real starts as an unprivileged account (nobody): SSH commands come from the cache, access holds."""
    import shutil
    import subprocess
    import tempfile

    nobody = 65534
    root = Path(tempfile.mkdtemp(prefix="skiff-cache-"))
    try:
        os.chmod(root, 0o755)
        os.chown(root, nobody, nobody)
        for name in ("dev", "boss"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SKIFF_", "SSH_"))},
            "SKIFF_ROOT": str(root),
            "SKIFF_AUTHORIZED_KEYS": str(root / "authorized_keys"),
        }

        def skiff(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
            extra = {"SSH_ORIGINAL_COMMAND": " ".join(args), "SKIFF_KEY_NAME": key} if key else {}
            argv = ["ssh-command"] if key else list(args)
            return subprocess.run(
                [sys.executable, "-m", "skiff", *argv],
                env={**env, **extra},
                cwd=root,
                user=nobody,
                group=nobody,
                capture_output=True,
                text=True,
                timeout=120,
            )

        for args in (
            ("apps:create", "one"),
            ("apps:create", "two"),
            ("ssh-keys:add", "dev", str(root / "dev.pub")),
            ("ssh-keys:add", "boss", str(root / "boss.pub"), "--role", "admin"),
            ("acl:add", "one", "dev"),
        ):
            assert skiff(*args).returncode == 0, args
        cache = root / CACHE
        written = cache.stat().st_mtime_ns
        allowed = skiff("config:set", "one", "A=1", key="dev")
        assert allowed.returncode == 0, allowed.stderr
        for args, refusal in (
            (("config:set", "two", "A=1"), "may not run config:set on app 'two'"),
            (("config:set", "--global", "A=1"), "may not run config:set --global"),
            (("apps:list",), "may not run apps:list"),
            (("ssh-keys:add", "x"), "is not available over SSH"),
            (("apps:lst",), "did you mean apps:list?"),
        ):
            refused = skiff(*args, key="dev")
            assert refused.returncode != 0 and refusal in refused.stderr, (args, refused.stderr)
        assert skiff("version", key="dev").returncode == 0
        listed = skiff("apps:list", key="boss")
        assert listed.returncode == 0 and "one" in listed.stdout and "two" in listed.stdout
        assert skiff("config:get", "one", "A", key="dev").stdout.strip() == "1"
        assert cache.stat().st_mtime_ns == written  # every one of them started from the cache
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- skiff --help before click and pluggy (skiff.quickhelp, the console script's first step) --


@pytest.fixture
def wide(monkeypatch):
    """A terminal of 100 columns: the page the full start rendered (78 wide) is the one to print."""
    monkeypatch.setenv("COLUMNS", "100")


def test_the_quick_help_page_is_what_a_full_start_prints(start, service_account, wide):
    assert quickhelp.page(["--help"]) is None  # no cache yet: the start goes on as usual
    full = start("--help")
    assert not full.cached and full.status == 0
    page = quickhelp.page(["--help"])
    assert page is not None and page + "\n" == full.out == start("--help").out
    assert quickhelp.page(["-h"]) == page and "-h, --help" in page and "apps:list" in page
    for args in (["--version"], ["help"], ["apps:list"], ["--help", "apps:list"], [], ["--help", "--help"]):
        assert quickhelp.page(args) is None, args


def test_the_quick_help_page_declines_whatever_a_full_start_would_show_differently(
    start, service_account, site, monkeypatch, wide
):
    start("--help")
    assert quickhelp.page(["--help"]) is not None
    for name, value, after in (
        ("SKIFF_DISABLED_PLUGINS", "acl", None),
        ("SKIFF_PLUGINS", "skiff.testing.stubs", None),
        ("COLUMNS", "60", "100"),  # the full start renders a narrower page from the index
    ):
        monkeypatch.setenv(name, value)
        assert quickhelp.page(["--help"]) is None, name
        if after is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, after)
    assert quickhelp.page(["--help"]) is not None
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert quickhelp.page(["--help"]) is None  # root never uses the cache
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    assert start("plugin:disable", "acl").status == 0
    assert quickhelp.page(["--help"]) is None
    off = start("--help")
    assert quickhelp.page(["--help"]) + "\n" == off.out and "acl:add" not in off.out
    assert start("plugin:enable", "acl").status == 0
    assert quickhelp.page(["--help"]) is None
    start("--help")

    module = install(site, "fresh", HELLO)
    assert quickhelp.page(["--help"]) is None  # installed: the fingerprint changed
    listed = start("--help")
    assert "fresh:hello" in listed.out and quickhelp.page(["--help"]) + "\n" == listed.out
    module.write_text(HELLO.replace("fresh:hello", "fresh:greet"))
    stamp = module.stat().st_mtime_ns + 1_000_000_000
    os.utime(module, ns=(stamp, stamp))
    assert quickhelp.page(["--help"]) is None  # an edited source
    sys.modules.pop("fresh_plugin", None)
    edited = start("--help")
    assert "fresh:greet" in edited.out and quickhelp.page(["--help"]) + "\n" == edited.out


def test_a_broken_plugin_never_gets_the_quick_help_page(start, site, wide):
    """A full start imports it again and warns: the quick page would drop that line."""
    install(site, "flaky", "raise RuntimeError('not yet')\n")
    start("--help")
    assert "flaky is broken" in start("--help").err
    assert quickhelp.page(["--help"]) is None


def test_a_stale_entry_point_cache_or_a_planted_page_is_not_trusted_blindly(start, service_account, wide):
    start("--help")
    entry_points = service_account / PLUGIN_CACHE
    saved = entry_points.read_text()
    entry_points.write_text("{not json")
    assert quickhelp.page(["--help"]) is None
    data = json.loads(saved)
    data["plugins"][0]["extra"] = "x"
    entry_points.write_text(json.dumps(data))
    assert quickhelp.page(["--help"]) is None
    entry_points.write_text(saved)
    assert quickhelp.page(["--help"]) is not None
    data = json.loads((service_account / CACHE).read_text())
    data["page"] = {width: "\x1b[1mPlanted\x1b[0m" for width in data["page"]}
    (service_account / CACHE).write_text(json.dumps(data))
    assert quickhelp.page(["--help"]) is None  # click.echo would strip the codes: never printed as is


def test_the_console_script_prints_the_help_page_without_importing_click_or_pluggy(tmp_path):
    """Real starts of ``python -m skiff --help`` as an unprivileged account (nobody)."""
    import shutil
    import subprocess
    import tempfile

    nobody = 65534
    root = Path(tempfile.mkdtemp(prefix="skiff-quickhelp-"))
    try:
        os.chmod(root, 0o755)
        os.chown(root, nobody, nobody)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SKIFF_", "SSH_"))},
            "SKIFF_ROOT": str(root),
            "COLUMNS": "100",
        }

        def skiff(*python_args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, *python_args, "-m", "skiff", "--help"],
                env=env,
                cwd=root,
                user=nobody,
                group=nobody,
                capture_output=True,
                text=True,
                timeout=120,
            )

        full = skiff("-X", "importtime")
        assert full.returncode == 0 and "apps:list" in full.stdout
        assert " click" in full.stderr and " pluggy" in full.stderr  # the first start: a full one
        quick = skiff("-X", "importtime")
        assert quick.returncode == 0 and quick.stdout == full.stdout
        imported = {line.rpartition("|")[2].strip() for line in quick.stderr.splitlines()}
        assert "skiff.quickhelp" in imported
        assert not imported & {"click", "pluggy", "skiff.cli", "skiff.plugins", "typing"}, imported
    finally:
        shutil.rmtree(root, ignore_errors=True)
