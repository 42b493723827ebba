"""The must-show on the real Flask sample app (tests/apps/flask) built by the python buildpack.

Deploy Flask + a worker, scale web to 3 (all answer), config:set (new env),
a code change, then releases:rollback serves the previous code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_buildpacks.plugin as buildpacks_plugin
import skiff_buildpacks.python as python_pack
import skiff_config.plugin as config_plugin
import skiff_docker.plugin as docker_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.testing import DirReceiver, dir_source
from skiff.testing.scheduler import TestProxy, get, wait_answer

pytestmark = pytest.mark.e2e

FLASK = Path(__file__).resolve().parents[4] / "tests" / "apps" / "flask"
WORKER = 'import time\nprint("worker up", flush=True)\nwhile True:\n    time.sleep(1)\n'


def flask_source(tmp_path: Path, prefix: str) -> Path:
    path = tmp_path / f"flask-{prefix or 'plain'}"
    shutil.copytree(FLASK, path)
    (path / "worker.py").write_text(WORKER)
    with open(path / "Procfile", "a") as f:
        f.write("worker: python -u worker.py\n")
    if prefix:
        code = (path / "app.py").read_text().replace("return os.environ", f'return "{prefix} " + os.environ')
        (path / "app.py").write_text(code)
    return path


def test_flask_with_worker_scale_config_rollback(skiff, stack_image, docker_cleanup, scheduler_app, tmp_path):
    proxy = TestProxy()
    h = skiff(
        ("apps", apps_plugin),
        ("config", config_plugin),
        ("procfile", procfile_plugin),
        ("buildpacks", buildpacks_plugin),
        ("buildpack-python", python_pack),
        ("docker", docker_plugin),
        ("dir", DirReceiver()),
        ("proxy", proxy),
    )
    app = scheduler_app
    docker_cleanup.app(app)
    h.create_app(app)
    h.invoke("checks:set", app, "wait-to-retire", "1")
    h.invoke("ps:scale", app, "worker=1")

    def ports() -> list[int]:
        report = json.loads(h.invoke("ps:report", app, "--format", "json").stdout)
        return [r["port"] for r in report["processes"] if r["process"] == "web"]

    def bodies() -> set[str]:
        return {get(port)[1].strip() for port in ports()}

    try:
        lifecycle.deploy(h.context, app, dir_source(flask_source(tmp_path, ""), "1" * 40))
        assert wait_answer(proxy.port)[1].strip() == "hello from flask"
        report = json.loads(h.invoke("ps:report", app, "--format", "json").stdout)
        assert sorted(r["process"] for r in report["processes"]) == ["web", "worker"]
        assert "worker up" in h.invoke("logs", app, "-p", "worker").stdout

        assert h.invoke("ps:scale", app, "web=3").exit_code == 0
        assert len(ports()) == 3 and bodies() == {"hello from flask"}

        assert h.invoke("config:set", app, "GREETING=meow").exit_code == 0
        assert bodies() == {"meow"}

        lifecycle.deploy(h.context, app, dir_source(flask_source(tmp_path, "v2"), "2" * 40))
        assert bodies() == {"v2 meow"} and get(proxy.port)[1].strip() == "v2 meow"

        result = h.invoke("releases:rollback", app)
        assert result.exit_code == 0, result.output
        assert bodies() == {"meow"} and get(proxy.port)[1].strip() == "meow"
    finally:
        proxy.close()
