"""Prestart on the real engine: the same code deployed both ways serves the same /app and env.

The Flask sample app, built by the python buildpack, gets two routes that report what its
process sees: every file under /app (path, mode, owner, size, sha256) and its environment. The
second deploy (a code change) goes through the prestart (containers started from the code base
while the code layer was built, the code handed over); then ``ps:set APP prestart false`` and
the same source deployed again start a container of the image as before. Both answers must be
equal (only ``HOSTNAME``, the container's id, differs), and a restart of the prestarted
container must run the app again at once.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_buildpacks.plugin as buildpacks_plugin
import skiff_buildpacks.python as python_pack
import skiff_config.plugin as config_plugin
import skiff_docker.plugin as docker_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import background, lifecycle
from skiff.testing import DirReceiver, dir_source
from skiff.testing.scheduler import TestProxy, get, wait_answer

pytestmark = pytest.mark.e2e

FLASK = Path(__file__).resolve().parents[4] / "tests" / "apps" / "flask"
#: every file under /app (path, mode, owner, size, sha256), as a function of its own
WALK = """
def app_files():
    import hashlib, os
    files = []
    for top, dirs, names in os.walk("/app"):
        # bytecode the running interpreter writes itself (a first release's venv has none: it is
        # compiled beside the deploy) differs from run to run in its header; every other file counts
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(dirs + names):
            path = os.path.join(top, name)
            st = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            files.append([path, st.st_mode, st.st_uid, st.st_gid, st.st_size if digest else 0, digest])
    return files
"""
REPORT = (
    "\n"
    + WALK
    + """

@app.route("/seen")
def seen():
    import json, os
    env = {k: v for k, v in os.environ.items() if k != "HOSTNAME"}
    return json.dumps({"files": app_files(), "env": env, "cwd": os.getcwd(), "uid": os.getuid()})
"""
)


def source(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"flask-{text}"
    shutil.copytree(FLASK, path)
    code = (path / "app.py").read_text().replace("return os.environ", f'return "{text} " + os.environ')
    (path / "app.py").write_text(code + REPORT)
    return path


def test_both_paths_serve_the_same_app_and_env(
    skiff, stack_image, docker_client, docker_cleanup, scheduler_app, tmp_path
):
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
    h.invoke("checks:set", app, "wait-to-retire", "0")
    h.invoke("config:set", app, "GREETING=meow", 'QUOTED=it\'s "$HOME" ; `true`')

    def seen() -> dict:
        status, body = get(proxy.port, "/seen", timeout=30)
        assert status == 200, body
        return json.loads(body)

    def deploy(src: Path, rev: str) -> None:
        """As a push: it ends when the build's background work (the shared cache's) is done."""
        lifecycle.deploy(h.context, app, dir_source(src, rev * 40))
        background.wait()

    deploy(source(tmp_path, "v1"), "1")
    assert wait_answer(proxy.port)[1].strip() == "v1 meow"
    assert h.state.current_release(app).meta.get("code_base")
    # the first build's dependency image may have become the shared layer meanwhile (its bytecode
    # compiled beside the deploy), so the next push's code base differs from v1's: one more deploy
    # makes the release's code base the image the following builds reuse
    deploy(source(tmp_path, "v1b"), "b")
    assert wait_answer(proxy.port)[1].strip() == "v1b meow"

    v2 = source(tmp_path, "v2")
    deploy(v2, "2")
    assert wait_answer(proxy.port)[1].strip() == "v2 meow"
    prestarted = seen()
    ident = web_container(h, app)
    inspect = docker_client.api.inspect_container(ident)
    assert "skiff-command" in " ".join(inspect["Config"]["Cmd"]), "the push did not use the prestart"
    assert prestarted["files"] == image_files(docker_client, h.state.current_release(app).image)

    assert h.invoke("ps:set", app, "prestart", "false").exit_code == 0
    deploy(v2, "2")
    assert wait_answer(proxy.port)[1].strip() == "v2 meow"
    plain = seen()
    inspect = docker_client.api.inspect_container(web_container(h, app))
    assert "skiff-command" not in " ".join(inspect["Config"]["Cmd"] or [])
    assert plain["files"] == image_files(docker_client, h.state.current_release(app).image)

    assert prestarted["env"] == plain["env"]
    assert prestarted["env"]["QUOTED"] == 'it\'s "$HOME" ; `true`' and prestarted["env"]["DYNO"] == "web.1"
    assert (prestarted["cwd"], prestarted["uid"]) == (plain["cwd"], plain["uid"])
    # the same files as a container of its own release image has (the third deploy's dependency
    # layer may be the shared one with bytecode, adopted after the first: not compared to each other)
    assert len(plain["files"]) > 10 and len(prestarted["files"]) > 10

    # a prestarted container restarted by the engine runs the app again, without waiting
    assert h.invoke("ps:set", app, "prestart", "true").exit_code == 0
    deploy(source(tmp_path, "v3"), "3")
    assert wait_answer(proxy.port)[1].strip() == "v3 meow"
    ident = web_container(h, app)
    assert "skiff-command" in " ".join(docker_client.api.inspect_container(ident)["Config"]["Cmd"])
    docker_client.api.restart(ident, timeout=5)
    deadline = time.monotonic() + 30
    while True:
        try:
            if get(proxy.port, "/", timeout=2)[1].strip() == "v3 meow":
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the restarted container did not serve"
        time.sleep(0.1)


def image_files(docker_client, image: str) -> list:
    """The files under /app of a fresh container of ``image`` (the app's own interpreter walks them)."""
    script = WALK + "\nimport json\nprint(json.dumps(app_files()))\n"
    out = docker_client.containers.run(image, ["/app/.venv/bin/python", "-c", script], remove=True, entrypoint=[])
    return json.loads(out)


def web_container(h, app: str) -> str:
    report = json.loads(h.invoke("ps:report", app, "--format", "json").stdout)
    (web,) = [r for r in report["processes"] if r["process"] == "web"]
    return str(web["name"])
