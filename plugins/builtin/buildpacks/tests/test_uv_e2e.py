"""End to end: Flask apps installed with uv, ``git push``ed over a real sshd, served through a private nginx.

The first app builds with uv from the package index: Skiff fetches the pinned uv once,
and after the build downloads the index's own files of what was installed, checks their
sha256 against the index and adds them to the server's shared wheel cache. Then the
index is made unreachable (``python-index`` pointed at a closed 127.0.0.1 port): a second
app with the same requirements, with an empty cache of its own, installs from the shared
cache alone and serves. ``repo:purge-cache`` and ``buildpacks:purge-shared-cache`` clear
the two caches.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import urllib.request
import zipfile
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo
from skiff_buildpacks.wheels import UV_VERSION

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
APP = Path(__file__).resolve().parents[4] / "tests" / "apps" / "flask"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def flask_files(greeting: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in APP.iterdir() if p.is_file()}
    files["app.py"] = files["app.py"].replace("hello from flask", greeting)
    return files


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/simple"


def index_sha256(filename: str) -> str:
    """What PyPI itself lists for ``filename`` (read here, independently of Skiff)."""
    project = filename.split("-", 1)[0].replace("_", "-").lower()
    request = urllib.request.Request(
        f"https://pypi.org/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        files = json.load(resp)["files"]
    return next(f["hashes"]["sha256"] for f in files if f["filename"] == filename)


def test_uv_builds_then_the_shared_cache_serves_a_second_app_without_the_index(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, skiff_root: Path, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    first = docker_cleanup.app(new_app_name("uvone"))
    pushed = git_push(init_repo(tmp_path / first, flask_files("hello from uv")), first, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert f"-----> Installing dependencies with uv {UV_VERSION}" in pushed.output
    assert "+ flask==3.1.1" in pushed.output  # uv's own output, indented
    # beside the code layer, the release and the deploy; the push ends when it is done
    assert re.search(
        r"Shared wheel cache: 9 wheel\(s\) verified against the index and added, bytecode of 9 compiled, "
        r"shared layer made",
        pushed.output,
    ), pushed.output
    answer = private_nginx.request(host=f"{first}.{GLOBAL}")
    assert (answer.status, answer.body) == (200, "hello from uv\n")

    cache = skiff_root / "cache" / "buildpacks"
    assert (cache / "tools" / f"uv-{UV_VERSION}-x86_64" / "uv").is_file() or list(cache.glob("tools/uv-*/uv"))
    shared = {p.name: p for p in (cache / "wheels").glob("*.whl")}
    assert len(shared) == 9 and len(list((cache / "wheels").glob("pyc-cpython-3*/*.whl.tar"))) == 9
    assert "flask-3.1.1-py3-none-any.whl" in shared and "gunicorn-23.0.0-py3-none-any.whl" in shared
    for name in ("flask-3.1.1-py3-none-any.whl", "gunicorn-23.0.0-py3-none-any.whl"):
        assert hashlib.sha256(shared[name].read_bytes()).hexdigest() == index_sha256(name)
        assert zipfile.ZipFile(shared[name]).testzip() is None

    # the shared virtualenv layer of those nine verified wheels, made by Skiff itself
    (record_file,) = (cache / "venvs").glob("*/*.json")
    record = json.loads(record_file.read_text())
    docker_cleanup.image(record["image"])
    assert sorted(record["files"]) == sorted(shared)
    shared_layers = docker_client.images.get(record["image"]).attrs["RootFS"]["Layers"]
    # the first build left the venv's bytecode to that layer (off its path), and its dependency image is now
    # the layer itself, with its own labels: the app's next builds get the bytecode
    assert "bytecode of the rest: compiled beside the deploy, in the shared layer" in pushed.output
    (mine,) = [i for i in docker_client.images.list(filters={"label": f"skiff.deps={first}"}) if i.tags]
    assert mine.attrs["RootFS"]["Layers"] == shared_layers and mine.labels["skiff.deps"] == first
    pushed = git_push(init_repo(tmp_path / f"{first}-2", flask_files("hello again")), first, sshd, force=True)
    assert pushed.exit_code == 0 and "Reusing the dependency layer" in pushed.output, pushed.output
    assert private_nginx.request(host=f"{first}.{GLOBAL}").body == "hello again\n"
    newest = max(docker_client.images.list(filters={"label": f"skiff.app={first}"}), key=lambda i: i.attrs["Created"])
    listing = ["sh", "-c", "ls /app/.venv/lib/python3*/site-packages/flask/__pycache__"]
    pyc = docker_client.containers.run(newest.id, listing, remove=True, network_disabled=True, entrypoint=[])
    assert b"app.cpython-3" in pyc  # the shared layer's bytecode, in the app's new image

    # the index unreachable: the second app has an empty cache of its own, the shared one serves it
    dead = closed_port_url()
    assert sshd.ssh(["buildpacks:set", "--global", "python-index", dead]).exit_code == 0
    second = docker_cleanup.app(new_app_name("uvtwo"))
    pushed = git_push(init_repo(tmp_path / second, flask_files("hello from the cache")), second, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Connection refused" in pushed.output  # uv did try the index
    assert "the package index did not answer: resolving from the caches (uv --offline)" in pushed.output
    # its own resolution is the set of the shared layer: its dependency image is that layer, not a copy
    assert "the same resolution as a shared layer of verified wheels: using it" in pushed.output
    assert "+ flask==3.1.1" not in pushed.output  # nothing installed
    (deps,) = docker_client.images.list(filters={"label": f"skiff.deps={second}"})
    assert deps.attrs["RootFS"]["Layers"] == shared_layers  # the shared layer itself, with the app's labels
    (image,) = docker_client.images.list(filters={"label": f"skiff.app={second}"})
    answer = private_nginx.request(host=f"{second}.{GLOBAL}")
    assert (answer.status, answer.body) == (200, "hello from the cache\n")
    assert set(p.name for p in (cache / "wheels").glob("*.whl")) == set(shared)

    # the two caches and their commands
    purged = sshd.ssh(["repo:purge-cache", second])
    assert purged.exit_code == 0 and f"Purged the build cache of {second}" in purged.output
    purged = sshd.ssh(["buildpacks:purge-shared-cache"])
    assert purged.exit_code == 0 and "Purged the shared wheel cache: 9 file(s)" in purged.output
    assert "1 shared virtualenv layer(s)" in purged.output
    assert not list((cache / "wheels").glob("*.whl")) and not list((cache / "venvs").glob("*/*.json"))
    # the app's image stays (its layers are its own or shared, never removed under it)
    image.reload()
    assert private_nginx.request(host=f"{second}.{GLOBAL}").status == 200
