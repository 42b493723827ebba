"""End to end: apps build on the build image (skiff/stack:trixie) and run on its slim run image.

Real parts: the stack plugin derives ``skiff/stack-run:trixie`` from the build image (once per
machine, reused while it is of the current build image), a real sshd takes the ``git push``,
the docker plugin starts the containers and a private nginx serves them. Each test then looks
inside the running app container with ``docker exec``: no compiler, the build image's own
interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
RUN_IMAGE = "skiff/stack-run:trixie"
# what each image says about its interpreters: the resolved path and the version
PROBE = (
    'for t in python3 node; do p=$(command -v "$t") && echo "$t $(readlink -f "$p") $("$t" --version)"; done; '
    'for t in cc gcc g++ make; do command -v "$t" >/dev/null && echo "compiler $t"; done; true'
)


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


@pytest.fixture(scope="module")
def run_image(docker_client, stack_image, tmp_path_factory) -> str:
    """``skiff/stack-run:trixie`` of the current build image, derived by ``stack:build`` when missing or stale."""
    root = tmp_path_factory.mktemp("run-root")
    proc = subprocess.run(
        [sys.executable, "-m", "skiff", "stack:build"],
        env={**os.environ, "SKIFF_ROOT": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout
    return RUN_IMAGE


def files_of(name: str, **changes: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in (APPS / name).iterdir() if p.is_file()}
    files.update(changes)
    return files


def probe(docker_client, image: str) -> str:
    raw = docker_client.containers.run(image, ["sh", "-c", PROBE], remove=True, network_disabled=True)
    return raw.decode().strip()


def web_container(docker_client, app: str):
    """The serving web container (an old one may still be retiring under another name)."""
    return docker_client.containers.get(f"{app}.web.1")


def exec_probe(container) -> str:
    code, out = container.exec_run(["sh", "-c", PROBE])
    assert code == 0, out
    return out.decode().strip()


def based_on(docker_client, image: str, base: str) -> bool:
    """True if ``image``'s layers start with all of ``base``'s."""
    layers = docker_client.images.get(image).attrs["RootFS"]["Layers"]
    base_layers = docker_client.images.get(base).attrs["RootFS"]["Layers"]
    return layers[: len(base_layers)] == base_layers


def test_the_run_image_runs_the_build_images_very_interpreters_and_no_compiler(docker_client, stack_image, run_image):
    built, ran = probe(docker_client, stack_image), probe(docker_client, run_image)
    interpreters = [line for line in built.splitlines() if not line.startswith("compiler")]
    assert [line.split()[0] for line in interpreters] == ["python3", "node"]
    # same resolved paths, same versions: a venv or node_modules from the build image runs unchanged
    assert ran.splitlines() == interpreters, (built, ran)
    assert "compiler gcc" in built and "compiler" not in ran
    labels = docker_client.images.get(run_image).labels
    assert labels["skiff.stack.run-of"] == docker_client.images.get(stack_image).id
    sizes = {ref: docker_client.images.get(ref).attrs["Size"] for ref in (stack_image, run_image)}
    print(f"\nsizes: build {sizes[stack_image] / 1e6:.0f} MB, run {sizes[run_image] / 1e6:.0f} MB")
    assert sizes[run_image] <= 0.30 * sizes[stack_image], sizes


def test_a_flask_app_built_with_uv_serves_from_the_run_image_without_a_compiler(
    docker_client, stack_image, run_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("slimpy"))
    source = files_of("flask")
    source["app.py"] = source["app.py"].replace("hello from flask", "hello from the run image")
    pushed = git_push(init_repo(tmp_path / app, source), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "-----> Installing dependencies with uv" in pushed.output  # on the build image
    assert f"-----> Dependencies copied onto the run image {RUN_IMAGE}" in pushed.output
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert (answer.status, answer.body) == (200, "hello from the run image\n")
    container = web_container(docker_client, app)
    assert based_on(docker_client, container.image.id, run_image)
    inside = exec_probe(container)
    assert "compiler" not in inside and inside.splitlines()[0] == probe(docker_client, run_image).splitlines()[0]
    code, out = container.exec_run(["/app/.venv/bin/python", "-c", "import flask, sys; print(sys.prefix)"])
    assert (code, out.decode().strip()) == (0, "/app/.venv")  # the venv made on the build image runs here
    report = sshd.ssh(["buildpacks:report", app, "--format", "json"])
    assert report.exit_code == 0 and RUN_IMAGE in report.stdout, report.output

    # a code-only push reuses both the dependency layer and its copy on the run image
    source["app.py"] = source["app.py"].replace("hello from the run image", "hello again")
    again = git_push(init_repo(tmp_path / "again", source), app, sshd, force=True)
    assert again.exit_code == 0, again.output
    assert "Reusing the dependency layer" in again.output and "copied onto the run image" not in again.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "hello again\n"
    assert based_on(docker_client, web_container(docker_client, app).image.id, run_image)


def test_a_node_app_with_its_own_node_release_and_a_build_script_serves_from_the_run_image(
    docker_client, stack_image, run_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("slimnode"))
    package = (
        (APPS / "node" / "package.json")
        .read_text()
        .replace('"private": true,', '"private": true,\n  "engines": {"node": "18.x"},')
    )
    source = files_of("node", **{"package.json": package})
    pushed = git_push(init_repo(tmp_path / app, source), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Installing Node.js 18." in pushed.output and "Running npm run build" in pushed.output
    assert f"-----> Dependencies copied onto the run image {RUN_IMAGE}" in pushed.output
    # dist/message.txt, written by the build script on the build image, reached the run image; npm start ran it
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert (answer.status, answer.body) == (200, "hello from node (built)\n")
    container = web_container(docker_client, app)
    assert based_on(docker_client, container.image.id, run_image)
    inside = exec_probe(container)
    assert "compiler" not in inside, inside
    code, out = container.exec_run(["sh", "-c", "node --version; command -v node; npm --version"])
    lines = out.decode().split()
    assert code == 0 and lines[0].startswith("v18.") and lines[1] == "/app/.heroku/node/bin/node", lines


def test_an_app_released_on_the_full_stack_keeps_running_and_redeploys_onto_the_run_image(
    docker_client, stack_image, run_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    """The upgrade: a release made before run images (based on the build image) keeps serving, then moves."""
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("slimold"))
    # what earlier versions did: the app image on the build stack (run-image off)
    assert sshd.ssh(["buildpacks:set", "--global", "run-image", "false"]).exit_code == 0
    source = files_of("flask")
    pushed = git_push(init_repo(tmp_path / app, source), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "copied onto the run image" not in pushed.output
    old = web_container(docker_client, app)
    assert based_on(docker_client, old.image.id, stack_image) and "compiler gcc" in exec_probe(old)
    # the upgrade: run images on; the old release keeps serving, restarts and takes a config change
    assert sshd.ssh(["buildpacks:set", "--global", "run-image", "true"]).exit_code == 0
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "hello from flask\n"
    assert sshd.ssh(["config:set", app, "GREETING=still the old image"]).exit_code == 0
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "still the old image\n"
    assert based_on(docker_client, web_container(docker_client, app).image.id, stack_image)
    # the next build moves it onto the run image
    rebuilt = sshd.ssh(["ps:rebuild", app])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "copied onto the run image" in rebuilt.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "still the old image\n"
    new = web_container(docker_client, app)
    assert based_on(docker_client, new.image.id, run_image) and "compiler" not in exec_probe(new)
