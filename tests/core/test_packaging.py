"""Packaging: one version, each distribution declares exactly what it imports, py.typed, opt-in testing."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import skiff

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()
SETUP_CFGS = [ROOT / "setup.cfg", *sorted(ROOT.glob("plugins/*/*/setup.cfg"))]


def _cfg(path: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(path)
    return cfg


def _names(requirements: str) -> set[str]:
    """Normalised distribution names of a setup.cfg requirement list."""
    found = set()
    for line in requirements.splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
        if match:
            found.add(_normalise(match.group(1)))
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _distributions_by_module() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _imported_distributions(files: list[Path], own: set[str]) -> set[str]:
    """Distributions the absolute imports of ``files`` need (stdlib and ``own`` packages left out)."""
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            modules.update(name.split(".")[0] for name in names)
            if "skiff.dockerclient" in names:
                modules.add("docker")  # the engine helper needs the caller's docker dependency
    by_module = _distributions_by_module()
    needed = set()
    for module in modules - own - set(sys.stdlib_module_names) - {"__future__"}:
        dists = by_module.get(module) or ["skiff" if module == "skiff" else module]
        needed.update(_normalise(dist) for dist in dists)
    return needed


def test_every_distribution_reads_the_one_version_file():
    assert re.fullmatch(r"\d+\.\d+\.\d+(\S*)", VERSION)
    assert skiff.__version__ == VERSION
    for path in SETUP_CFGS:
        cfg = _cfg(path)
        assert cfg["metadata"]["version"] == "file: VERSION", path
        assert (path.parent / "VERSION").resolve() == (ROOT / "VERSION"), path
        assert metadata.version(cfg["metadata"]["name"]) == VERSION, f"{path}: reinstall (scripts/venv.sh)"


def test_each_distribution_declares_exactly_what_it_imports():
    for path in SETUP_CFGS:
        cfg = _cfg(path)
        options = cfg["options"]
        declared = _names(options["install_requires"])
        if path.parent == ROOT:
            package = ROOT / "core" / "skiff"
            testing = sorted((package / "testing").rglob("*.py"))
            engine = [package / "dockerclient.py"]  # imports docker lazily, for the plugins that declare it
            runtime = [p for p in package.rglob("*.py") if p not in testing and p not in engine]
            assert _imported_distributions(runtime, {"skiff"}) == declared
            assert _imported_distributions(engine, {"skiff"}) == _names(cfg["options.extras_require"]["docker"])
            extras = _names(cfg["options.extras_require"]["testing"])
            assert _imported_distributions(testing, {"skiff"}) - declared == extras
        else:
            package_name = _top_package(options["packages"])
            files = sorted((path.parent / package_name).rglob("*.py"))
            assert files, path
            extras = cfg["options.extras_require"] if cfg.has_section("options.extras_require") else {}
            optional = set().union(*(_names(extras[name]) for name in extras)) if extras else set()
            assert _imported_distributions(files, {package_name}) == declared | optional, path


def _top_package(packages: str) -> str:
    """``skiff_nginx`` of ``packages = skiff_nginx, skiff_nginx.commands``."""
    return packages.replace("\n", ",").split(",")[0].strip()


def test_every_package_ships_py_typed():
    for path in SETUP_CFGS:
        cfg = _cfg(path)
        package_name = "skiff" if path.parent == ROOT else _top_package(cfg["options"]["packages"])
        package_dir = ROOT / "core" / "skiff" if path.parent == ROOT else path.parent / package_name
        assert (package_dir / "py.typed").is_file(), package_dir
        data = [item.strip() for item in cfg["options.package_data"][package_name].split(",")]
        assert "py.typed" in data, path


def test_skiff_testing_is_opt_in():
    assert not [ep for ep in metadata.distribution("skiff").entry_points if ep.group == "pytest11"]
    assert "pytest11" not in _cfg(ROOT / "setup.cfg")["options.entry_points"]
    conftest = ast.parse((ROOT / "conftest.py").read_text())
    assigned = {
        target.id: ast.literal_eval(node.value)
        for node in conftest.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert assigned["pytest_plugins"] == ["skiff.testing"]


def _installed_by_venv_sh() -> list[str]:
    """What scripts/venv.sh installs (pip's ``DIST[EXTRAS]``), from its print mode (no venv made)."""
    import os
    import subprocess

    proc = subprocess.run(
        [str(ROOT / "scripts/venv.sh"), "/nonexistent/skiff-venv", "copy"],
        env={**os.environ, "SKIFF_VENV_PRINT": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert not Path("/nonexistent/skiff-venv").exists()
    return proc.stdout.split()


def test_make_install_gets_the_services_s3_extra_so_s3_backups_work_on_a_server():
    install = (ROOT / "scripts/install.sh").read_text()
    assert re.search(r'^\s*"\$top/scripts/venv\.sh" "\$venv" copy\s*$', install, re.M), "install.sh uses venv.sh"
    installed = _installed_by_venv_sh()
    services = str(ROOT / "plugins/contrib/services")
    assert f"{services}[s3]" in installed, installed
    extras = _cfg(ROOT / "plugins/contrib/services/setup.cfg")["options.extras_require"]
    assert {"boto3", "botocore"} <= _names(extras["s3"])
    # every extra venv.sh asks for is one its distribution declares (pip only warns otherwise)
    for item in installed:
        match = re.fullmatch(r"(.+)\[([a-z0-9,-]+)\]", item)
        if match:
            declared = _cfg(Path(match.group(1)) / "setup.cfg")["options.extras_require"]
            assert set(match.group(2).split(",")) <= set(declared), item
    assert len(installed) == len(SETUP_CFGS)  # the core and every plugin, each once
