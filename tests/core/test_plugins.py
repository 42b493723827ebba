import json

import pytest

from skiff import hookimpl
from skiff.plugins import build_plugin_manager
from skiff.testing import make_plugin_manager


def test_broken_third_party_plugin_does_not_stop_apps_list(run_skiff, fake_distribution):
    env = fake_distribution("exploding", "raise RuntimeError('boom at import')\n")
    assert run_skiff("apps:create", "catmeow", env=env).returncode == 0
    result = run_skiff("apps:list", env=env)
    assert result.returncode == 0
    assert "catmeow" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "exploding" in line]
    assert len(warnings) == 1 and "RuntimeError: boom at import" in warnings[0]
    listed = {row["name"]: row for row in json.loads(run_skiff("plugin:list", "--format", "json", env=env).stdout)}
    assert listed["exploding"]["status"] == "broken"
    assert listed["apps"]["status"] == "enabled" and listed["apps"]["distribution"] == "skiff-apps"


def test_misspelled_hook_marks_the_plugin_broken():
    class Typo:
        @hookimpl
        def skiff_post_deploi(self, deploy):
            pass

    class Fine:
        @hookimpl
        def skiff_post_deploy(self, deploy):
            pass

    pm = make_plugin_manager(("typo", Typo()), ("fine", Fine()))
    assert pm.infos["typo"].status == "broken"
    assert "unknown hook skiff_post_deploi" in pm.infos["typo"].error
    assert pm.infos["fine"].status == "enabled" and pm.infos["fine"].hooks == ["skiff_post_deploy"]
    assert pm.get_plugin("typo") is None


@pytest.mark.parametrize("hook_name", ["pytest_configure", "deploy", "Skiff_post_deploy"])
def test_a_hook_that_is_not_a_skiff_hook_marks_the_plugin_broken(hook_name):
    class Alien:
        @hookimpl(specname=hook_name)
        def anything(self):
            pass

    class Fine:
        @hookimpl
        def skiff_post_deploy(self, deploy):
            pass

    pm = make_plugin_manager(("alien", Alien()), ("fine", Fine()))
    assert pm.infos["alien"].status == "broken" and pm.get_plugin("alien") is None
    expected = f"implements hook {hook_name}, which is not a Skiff hook (Skiff hooks are named skiff_*)"
    assert pm.infos["alien"].error == expected
    assert pm.infos["fine"].status == "enabled" and pm.infos["fine"].hooks == ["skiff_post_deploy"]
    pm.check_pending()  # nothing left for pluggy to refuse


def test_a_third_party_plugin_with_a_non_skiff_hook_does_not_stop_commands(run_skiff, fake_distribution):
    source = "from skiff import hookimpl\n\n\n@hookimpl\ndef on_deploy(deploy):\n    pass\n"
    env = fake_distribution("alien", source)
    assert run_skiff("apps:create", "catmeow", env=env).returncode == 0
    result = run_skiff("apps:list", env=env)
    assert result.returncode == 0 and "catmeow" in result.stdout
    assert "Traceback" not in result.stderr and "PluginValidationError" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "alien" in line]
    assert len(warnings) == 1 and "on_deploy, which is not a Skiff hook" in warnings[0]
    listed = {row["name"]: row for row in json.loads(run_skiff("plugin:list", "--format", "json", env=env).stdout)}
    assert listed["alien"]["status"] == "broken" and "on_deploy" in listed["alien"]["error"]
    assert listed["apps"]["status"] == "enabled"


def test_wrong_hook_arguments_mark_the_plugin_broken():
    class Wrong:
        @hookimpl
        def skiff_deploy(self, deploy, extra):
            pass

    pm = make_plugin_manager(("wrong", Wrong()))
    assert pm.infos["wrong"].status == "broken" and pm.get_plugin("wrong") is None


def test_entry_points_load_in_name_order():
    pm = build_plugin_manager()
    names = [n for n, info in pm.infos.items() if info.distribution]
    assert names == sorted(names) and {"apps", "config"} <= set(names)


def test_disable_and_enable_persist(run_skiff):
    assert run_skiff("plugin:disable", "config").returncode == 0
    assert "config:set" not in run_skiff("--help").stdout
    rows = {r["name"]: r for r in json.loads(run_skiff("plugin:list", "--format", "json").stdout)}
    assert rows["config"]["status"] == "disabled"
    assert run_skiff("plugin:enable", "config").returncode == 0
    assert "config:set" in run_skiff("--help").stdout
    result = run_skiff("plugin:disable", "nosuch")
    assert result.returncode == 1 and "no plugin named nosuch" in result.stderr


def test_disabled_by_environment(run_skiff):
    result = run_skiff("--help", env={"SKIFF_DISABLED_PLUGINS": "apps, config"})
    assert "apps:create" not in result.stdout and "config:set" not in result.stdout
    assert "plugin:list" in result.stdout


def test_extra_plugins_from_environment(run_skiff):
    rows = json.loads(run_skiff("plugin:list", "--format", "json", env={"SKIFF_PLUGINS": "skiff.testing.stubs"}).stdout)
    stub = [r for r in rows if r["name"] == "skiff.testing.stubs"][0]
    assert "skiff_build" in stub["hooks"]
    rows = json.loads(run_skiff("plugin:list", "--format", "json", env={"SKIFF_PLUGINS": "no_such_module"}).stdout)
    assert [r["status"] for r in rows if r["name"] == "no_such_module"] == ["broken"]


class Declarer:
    """A plugin that declares its own hook through skiff_addhooks."""

    class Specs:
        from skiff import hookspec

        @hookspec(firstresult=True)
        def skiff_example_detect(self, path):
            """Example extension point."""

    @hookimpl
    def skiff_addhooks(self, pm):
        pm.add_hookspecs(self.Specs)


class Implementer:
    @hookimpl
    def skiff_example_detect(self, path):
        return f"seen {path}"


@pytest.mark.parametrize("order", [("decl", "impl"), ("impl", "decl")])
def test_addhooks_lets_plugins_declare_hooks_in_any_order(order):
    plugins = {"decl": ("decl", Declarer()), "impl": ("impl", Implementer())}
    pm = make_plugin_manager(*[plugins[o] for o in order])
    assert pm.infos["impl"].status == "enabled"
    assert pm.hook.skiff_example_detect(path="/src") == "seen /src"


def test_the_entry_point_cache_serves_a_second_start_and_notices_installs(tmp_path, monkeypatch):
    """installed_plugins keeps the scan in a file; a new, changed or removed distribution is seen at once."""
    import importlib
    import sys

    from skiff import plugins

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache" / "entry-points.json"
    scans: list[int] = []
    real_scan = plugins._scan_entry_points
    monkeypatch.setattr(plugins, "_scan_entry_points", lambda: scans.append(1) or real_scan())
    monkeypatch.setattr(plugins.os, "geteuid", lambda: 1000)  # the cache is for the service account

    first = plugins.installed_plugins(cache)
    assert cache.exists() and len(scans) == 1 and {"apps", "config"} <= {p.name for p in first}
    assert plugins.installed_plugins(cache) == first and len(scans) == 1  # served from the file

    info = site / "skiff_cached-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skiff-cached\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[skiff]\ncached = cached_plugin:PLUGIN\n")
    (site / "cached_plugin.py").write_text("class Plugin:\n    pass\nPLUGIN = Plugin()\n")
    importlib.invalidate_caches()
    found = {p.name: p for p in plugins.installed_plugins(cache)}
    assert len(scans) == 2 and found["cached"].distribution == "skiff-cached" and found["cached"].version == "1.0"
    assert type(found["cached"].load()).__name__ == "Plugin"

    entry_points = info / "entry_points.txt"
    entry_points.write_text("[skiff]\nrenamed = cached_plugin:PLUGIN\n")
    stat = entry_points.stat()
    os_times = (stat.st_atime_ns, stat.st_mtime_ns + 1_000_000)
    plugins.os.utime(entry_points, ns=os_times)  # same second on a coarse clock: still a new mtime
    importlib.invalidate_caches()
    names = {p.name for p in plugins.installed_plugins(cache)}
    assert len(scans) == 3 and "renamed" in names and "cached" not in names

    import shutil

    shutil.rmtree(info)
    importlib.invalidate_caches()
    assert "renamed" not in {p.name for p in plugins.installed_plugins(cache)} and len(scans) == 4
    sys.modules.pop("cached_plugin", None)

    monkeypatch.setattr(plugins.os, "geteuid", lambda: 0)  # root scans and leaves the file alone
    cache.write_text("{not json")
    assert {"apps", "config"} <= {p.name for p in plugins.installed_plugins(cache)} and len(scans) == 5
    assert cache.read_text() == "{not json"
    monkeypatch.setattr(plugins.os, "geteuid", lambda: 1000)
    assert plugins.installed_plugins(cache) and len(scans) == 6  # a damaged file is scanned over
    assert json.loads(cache.read_text())["plugins"]


@pytest.mark.parametrize("text", ["[]", '"plugins"', "7", '{"fingerprint": 1, "plugins": 2}', '{"plugins": [1]}', "{"])
def test_an_entry_point_cache_of_another_shape_is_scanned_again(tmp_path, monkeypatch, text):
    from skiff import plugins

    cache = tmp_path / "entry-points.json"
    cache.write_text(text)
    monkeypatch.setattr(plugins.os, "geteuid", lambda: 1000)
    assert {"apps", "config"} <= {p.name for p in plugins.installed_plugins(cache)}
    assert json.loads(cache.read_text())["plugins"]  # and written anew
