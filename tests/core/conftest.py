import os
import subprocess
import sys

import pytest


@pytest.fixture
def run_skiff(skiff_root):
    """Run the real ``skiff`` console entry point in a subprocess."""

    def run(*args, input=None, env=None, **kwargs):
        full_env = {**os.environ, "SKIFF_ROOT": str(skiff_root), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "skiff", *args],
            input=input,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )

    return run


@pytest.fixture
def fake_distribution(tmp_path):
    """Make an importable distribution with a ``skiff`` entry point (no pip needed)."""

    def make(name: str, module_source: str, hook_module: str = None) -> dict:
        site = tmp_path / f"site-{name}"
        site.mkdir()
        module = hook_module or f"{name.replace('-', '_')}_plugin"
        (site / f"{module}.py").write_text(module_source)
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[skiff]\n{name} = {module}\n")
        return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    return make
