"""Shared virtualenv layers: who may use one, the resolution hash on both sides, the records."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import skiff_buildpacks.python as python
from skiff_buildpacks import driver, venvs, wheels
from skiff_buildpacks.build import Stack

from .test_wheels import APPS, make_build

FILES = [
    "flask-3.1.1-py3-none-any.whl",
    "MarkupSafe-3.0.4-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "jinja2-3.1.6-py3-none-any.whl",
]
STACK = Stack(image="skiff/stack:trixie", id="sha256:" + "ab" * 32, python="3.13.5")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels, "host_arch", lambda: "x86_64")
    root = tmp_path / "cache"
    tool = wheels.uv_dir(root, "x86_64")
    tool.mkdir(parents=True)
    (tool / "uv").write_text("")
    return root


def test_the_driver_hashes_uv_s_resolution_as_skiff_hashes_the_verified_files():
    compiled = "flask==3.1.1\nJinja2==3.1.6\n# a comment\nmarkupsafe==3.0.4\n\n"
    assert driver.pins_hash(compiled) == venvs.files_hash(FILES)
    assert driver.pins_hash("flask[async]==3.1.1\njinja2==3.1.6\nMarkupSafe==3.0.4\n") == venvs.files_hash(FILES)
    assert driver.pins_hash(compiled + "six==1.17.0\n") != venvs.files_hash(FILES)
    # anything but plain pins is no resolution Skiff can stand in for
    assert driver.pins_hash(compiled + "-e ./pkg\n") is None
    assert driver.pins_hash("demo @ file:///app/pkg\n") is None
    assert driver.pins_hash("") is None


@pytest.mark.parametrize(
    "config, text, ok",
    [
        ({}, "flask==3.1.1\ngunicorn  # the server\n-r more.txt\n", True),
        ({"UV_NO_BINARY": "1"}, "flask\n", False),
        ({"PIP_ONLY_BINARY": ":all:"}, "flask\n", False),
        ({}, "flask==3.1.1 --hash=sha256:abc\n", False),
        ({}, "--no-binary :all:\nflask\n", False),
        ({}, "-e ./pkg\n", False),
        ({}, "demo @ https://example.org/demo.whl\n", False),
        ({}, "./local-dir\n", True),  # uv's resolution is then no plain pin: the driver never matches
    ],
)
def test_only_plain_requirements_and_no_install_settings_may_share(config, text, ok):
    assert venvs.eligible(config, [text]) is ok


def test_records_are_found_by_the_requirement_lines_of_the_apps_that_resolved_to_them(tmp_path):
    records = venvs.SharedVenvs(tmp_path, STACK.id)
    digest = venvs.files_hash(FILES)
    assert records.candidates(["flask"]) == {}
    records.put(digest, "sha256:img", FILES, ["flask"])
    records.add_lines(digest, ["flask==3.1.1"])
    assert set(records.candidates(["flask"])) == {digest} == set(records.candidates(["flask==3.1.1"]))
    assert records.candidates(["flask", "six"]) == {}
    # another stack has its own records
    assert venvs.SharedVenvs(tmp_path, "sha256:" + "cd" * 32).candidates(["flask"]) == {}
    assert records.get("../../etc/passwd") is None and records.get("0" * 64) is None
    assert records.purge() == 1 and records.candidates(["flask"]) == {}


def test_a_shared_layers_run_image_copy_is_recorded_once_per_run_image_and_purged_with_it(tmp_path):
    records = venvs.SharedVenvs(tmp_path, STACK.id)
    digest = venvs.files_hash(FILES)
    records.put(digest, "sha256:img", FILES, ["flask"])
    ref = f"skiff-shared/venv:run-{digest[:16]}-{'ab' * 6}"
    assert records.run_copy(digest, "sha256:run") is None
    records.put_run_copy(digest, "sha256:run", ref)
    records.put_run_copy(digest, "sha256:run2", "ubuntu:latest")  # not a run copy's name: never recorded
    records.add_lines(digest, ["flask==3.1.1"])  # a new line set keeps the copies
    assert records.run_copy(digest, "sha256:run") == ref and records.run_copy(digest, "sha256:run2") is None
    assert set(records.all()) == {digest}
    removed: list[str] = []
    client = SimpleNamespace(images=SimpleNamespace(remove=removed.append))
    assert records.purge(lambda: client) == 1
    assert removed == [ref, "sha256:img"] and records.all() == {}


def test_a_plain_uv_build_offers_the_shared_layers_of_its_lines(cache):
    build = make_build(APPS / "flask", cache)
    lines = sorted(line for line in (APPS / "flask" / "requirements.txt").read_text().splitlines() if line.strip())
    records = venvs.SharedVenvs(cache, build.stack.id)
    records.put(venvs.files_hash(FILES), "sha256:img", FILES, lines)
    records.put(venvs.files_hash(FILES[:1]), "sha256:other", FILES[:1], ["flask"])
    deps = python.skiff_buildpack_dependencies("python", build)
    (step,) = deps["steps"]
    assert set(deps["shared_layers"]) == {venvs.files_hash(FILES)}
    resolve = step["shared_venv"]["resolve"]
    assert resolve[:5] == [f"/build/uv-{wheels.UV_VERSION}/uv", "pip", "compile", "-q", "requirements.txt"]
    assert resolve[resolve.index("--default-index") + 1] == "https://pypi.org/simple"
    assert resolve[resolve.index("--find-links") + 1] == "/build/wheels"
    # the candidates are not part of the step: a new shared layer never changes the app's layer key
    assert "sha256:img" not in str(step)
    # an install setting of the app keeps it on its own install
    deps = python.skiff_buildpack_dependencies(
        "python", make_build(APPS / "flask", cache, config={"UV_PRERELEASE": "allow"})
    )
    assert "shared_venv" not in deps["steps"][0] and "shared_layers" not in deps


def _uv(tmp_path: Path, name: str, pins: str, code: int = 0, say: str = "") -> list[str]:
    path = tmp_path / name
    path.write_text(
        "import sys\n"
        f"print({say!r} if '--offline' not in sys.argv else 'offline')\n"
        f"open(sys.argv[sys.argv.index('--output-file') + 1] if '--output-file' in sys.argv else '/dev/null', 'w')"
        f".write({pins!r})\n"
        f"sys.exit({code} if '--offline' not in sys.argv else 0)\n"
    )
    return [sys.executable, str(path)]


def test_the_driver_uses_a_shared_layer_only_for_the_same_resolution(tmp_path, capfd):
    env = {"PATH": os.environ["PATH"]}
    out = str(tmp_path / "resolved.txt")
    same = _uv(tmp_path, "same.py", "flask==3.1.1\njinja2==3.1.6\nmarkupsafe==3.0.4\n") + ["--output-file", out]
    install = _uv(tmp_path, "install.py", "", say="installed for itself")
    step = {"title": "t", "cwd": str(tmp_path), "run": [install], "shared_venv": {"resolve": same, "output": out}}
    digest = venvs.files_hash(FILES)
    assert driver.run_step(step, env, [digest]) == driver.SHARED
    printed = capfd.readouterr().out
    assert '"report": "shared_venv", "data": "' + digest in printed and "installed for itself" not in printed
    # another resolution (a newer jinja2 on the index): the app installs for itself
    newer = _uv(tmp_path, "newer.py", "flask==3.1.1\njinja2==3.1.7\nmarkupsafe==3.0.4\n") + ["--output-file", out]
    assert driver.run_step({**step, "shared_venv": {"resolve": newer, "output": out}}, env, [digest]) == 0
    printed = capfd.readouterr().out
    assert "shared_venv" not in printed and "installed for itself" in printed
    # no candidates: no resolve at all
    assert driver.run_step(step, env, []) == 0
    assert "installed for itself" in capfd.readouterr().out


def test_an_unreachable_index_resolves_from_the_caches_and_the_install_goes_offline_at_once(tmp_path, capfd):
    env = {"PATH": os.environ["PATH"]}
    out = str(tmp_path / "resolved.txt")
    down = _uv(tmp_path, "down.py", "six==1.17.0\n", code=2, say="error: tcp connect error") + ["--output-file", out]
    install = _uv(tmp_path, "install.py", "", code=2, say="error: tcp connect error")
    offline = [*install, "--offline"]
    step = {
        "title": "t",
        "cwd": str(tmp_path),
        "run": [install],
        "fallback": {"instead_of": install, "when": ["tcp connect"], "note": "from the caches", "run": offline},
        "shared_venv": {"resolve": down, "output": out, "when": ["tcp connect"]},
    }
    assert driver.run_step(step, env, [venvs.files_hash(FILES)]) == 0
    printed = capfd.readouterr().out
    assert "resolving from the caches (uv --offline)" in printed and "from the caches" in printed
    assert printed.count("tcp connect error") == 1  # the install did not try the index again
