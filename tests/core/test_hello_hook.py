"""A third-party plugin installed with plugin:install adds a command and a deploy hook."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from skiff import lifecycle
from skiff.context import Context
from skiff.plugins import build_plugin_manager
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

ROOT = Path(__file__).resolve().parents[2]


def _builtin_names(run_skiff) -> list[str]:
    rows = json.loads(run_skiff("plugin:list", "--format", "json").stdout)
    return [r["name"] for r in rows if r["name"] != "hello"]


@pytest.fixture
def hello_installed(run_skiff):
    result = run_skiff("plugin:install", str(ROOT / "examples" / "hello-hook"))
    assert result.returncode == 0, result.stderr
    importlib.invalidate_caches()
    yield result
    run_skiff("plugin:uninstall", "hello")
    importlib.invalidate_caches()


def test_install_list_use_and_deploy_hook(run_skiff, hello_installed, skiff_root, tmp_path, capsys):
    assert "hello" in hello_installed.stdout and "skiff_post_deploy" in hello_installed.stdout
    rows = {r["name"]: r for r in json.loads(run_skiff("plugin:list", "--format", "json").stdout)}
    assert rows["hello"]["status"] == "enabled"
    assert rows["hello"]["distribution"] == "skiff-hello-hook" and rows["hello"]["version"] == "1.0.0"
    assert run_skiff("hello", "Alice").stdout == "Hello, Alice!\n"

    others = [n for n in rows if n != "hello"]
    pm = build_plugin_manager(
        disabled=others,
        plugins=[("receiver", DirReceiver()), ("builder", StubBuilder()), ("scheduler", StubScheduler())],
    )
    context = Context(pm, root=skiff_root)
    context.create_app("web")
    src = tmp_path / "src"
    src.mkdir()
    lifecycle.deploy(context, "web", dir_source(src))
    context.close()
    assert "-----> hello-hook: web v1 is live" in capsys.readouterr().out


def test_the_declared_greeting_gets_set_and_report_for_free(skiff, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "hello-hook"))
    import skiff_hello

    h = skiff(("hello", skiff_hello))
    h.create_app("web")
    assert h.invoke("hello", "Alice").stdout == "Hello, Alice!\n"
    assert h.invoke("hello:set", "--global", "greeting", "Hi").exit_code == 0
    assert h.invoke("hello", "Alice").stdout == "Hi, Alice!\n"
    assert h.invoke("hello:set", "web", "greeting", "Howdy").exit_code == 0
    assert json.loads(h.invoke("hello:report", "web", "--format", "json").stdout) == {"greeting": "Howdy"}
    assert json.loads(h.invoke("hello:report", "--format", "json").stdout) == {"greeting": "Hi"}
    assert skiff_hello.SETTINGS.get(h.state, "greeting", app="web") == "Howdy"
    assert h.invoke("hello:set", "web", "greeting").exit_code == 0
    assert "Hi" in h.invoke("hello:report", "web").stdout
    assert 'click.command("hello:' not in (ROOT / "examples" / "hello-hook" / "skiff_hello.py").read_text()


def test_broken_plugin_is_uninstalled_again(run_skiff, tmp_path):
    pkg = tmp_path / "broken"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "skiff-broken-example"\nversion = "0.1"\n'
        '[project.entry-points.skiff]\nbroken-example = "skiff_broken_example"\n'
    )
    (pkg / "skiff_broken_example.py").write_text("raise ImportError('missing dependency xyz')\n")
    result = run_skiff("plugin:install", str(pkg))
    assert result.returncode == 1
    assert "plugin broken-example is broken" in result.stderr and "was uninstalled again" in result.stderr
    listed = subprocess.run([sys.executable, "-m", "pip", "show", "skiff-broken-example"], capture_output=True)
    assert listed.returncode != 0
