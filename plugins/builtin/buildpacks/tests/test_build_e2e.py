"""End-to-end: build the sample apps into real images and run them with docker run.

One cold build per sample app (module-scoped); the Flask app is then rebuilt
after a code-only change to prove the dependency layer is reused.
"""

import shutil
import socket
from pathlib import Path

import pytest

import skiff_buildpacks.node as node
import skiff_buildpacks.plugin as bp
import skiff_buildpacks.python as python
import skiff_buildpacks.static as static
import skiff_procfile.plugin as procfile
from skiff import lifecycle
from skiff.cli import build_cli, run
from skiff.context import Context
from skiff.errors import DeployError
from skiff.output import Output
from skiff.testing import DirReceiver, StubScheduler, dir_source, make_plugin_manager
from skiff.testing.docker import http_get, new_app_name, run_image

pytestmark = pytest.mark.e2e
APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"


class Captured(Output):
    """An Output that also keeps what it wrote."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []

    def _write(self, text, stream=None):
        self.text.append(text)
        super()._write(text, stream)

    def take(self) -> str:
        value, self.text = "\n".join(self.text), []
        return value


@pytest.fixture(scope="module")
def env(tmp_path_factory, stack_image, docker_client, docker_cleanup_module):
    root = tmp_path_factory.mktemp("skiff-root")
    pm = make_plugin_manager(
        DirReceiver(),
        ("procfile", procfile),
        ("buildpacks", bp),
        ("buildpack-python", python),
        ("buildpack-node", node),
        ("buildpack-static", static),
        StubScheduler(),
    )
    out = Captured()
    context = Context(pm, root=root, output=out)

    class Env:
        pass

    e = Env()
    e.context, e.out, e.client, e.cleanup, e.root = context, out, docker_client, docker_cleanup_module, root
    e.tmp = tmp_path_factory.mktemp("sources")

    def new_app():
        app = docker_cleanup_module.app(new_app_name("bp"))
        context.create_app(app)
        return app

    def deploy(app, source):
        out.take()
        release = lifecycle.deploy(context, app, dir_source(source))
        return release, out.take()

    def copy(name):
        dst = e.tmp / new_app_name(name)
        shutil.copytree(APPS / name, dst)
        return dst

    e.new_app, e.deploy, e.copy = new_app, deploy, copy
    yield e
    context.close()


@pytest.fixture(scope="module")
def flask_build(env):
    app = env.new_app()
    # these tests read pip's own output (uv, the default, has test_uv_e2e.py)
    bp.SETTINGS.set(env.context, "python-installer", "pip", app=app)
    source = env.copy("flask")
    release, output = env.deploy(app, source)
    return app, source, release, output


def answer(env, image, path="/"):
    container, port = run_image(env.client, image, env.cleanup)
    try:
        return http_get(f"http://127.0.0.1:{port}{path}", container=container)
    finally:
        container.remove(force=True)


def test_flask_app_builds_and_answers_on_port(env, flask_build):
    app, _, release, output = flask_build
    assert "-----> Python app detected" in output
    assert "-----> Installing dependencies with pip" in output
    assert "       Successfully installed" in output  # pip's own output, indented
    assert "done in " in output
    assert release.image.startswith(f"skiff/{app}:")
    assert release.meta["builder"] == "buildpacks" and release.meta["buildpacks"] == ["python"]
    image = env.client.images.get(release.image)
    assert image.labels["skiff.app"] == app
    assert image.attrs["Config"]["User"] == "1000:1000"
    assert answer(env, release.image) == (200, "hello from flask\n")


def test_build_ran_as_the_app_user_and_kept_a_package_cache(env, flask_build):
    app, _, release, _ = flask_build
    owners = (
        env.client.containers.run(
            release.image, ["stat", "-c", "%u", "/app/.venv/bin/python", "/app/.venv"], remove=True
        )
        .decode()
        .split()
    )
    assert owners == ["1000", "1000"]
    volume = env.client.volumes.get(f"skiff-cache-{app}")  # the per-app package cache
    assert volume.attrs["Labels"]["skiff.cache"] == app


def test_code_only_change_reuses_the_dependency_layer(env, flask_build):
    app, source, first, _ = flask_build
    (source / "app.py").write_text((source / "app.py").read_text().replace("hello from flask", "hello again"))
    # a post_compile hook proves the build user and the read-only CA mount
    (source / "bin").mkdir()
    (source / "bin" / "post_compile").write_text(
        "id -u > /app/build-uid\n"
        "if echo x >> /build/ca-certificates.crt 2>/dev/null; then echo 'CA is writable';"
        " else echo 'CA is read-only'; fi\n"
        'if [ "$APP_TOKEN" = s3cret ] && [ "$(cat "$ENV_DIR/APP_TOKEN")" = s3cret ]; then echo \'config visible\'; fi\n'
    )
    # manage.py without Django installed: the collectstatic step's check skips it
    (source / "manage.py").write_text("raise SystemExit('not a Django app')\n")
    env.context.state.set_config(app, {"APP_TOKEN": "s3cret"})
    second, output = env.deploy(app, source)
    assert "collectstatic" not in output
    assert "Reusing the dependency layer" in output
    assert "Installing dependencies" not in output
    assert "CA is read-only" in output and "CA is writable" not in output
    assert "config visible" in output  # config reaches the build (env and ENV_DIR) ...
    image = env.client.images.get(second.image)
    assert "s3cret" not in str(image.attrs["Config"])  # ... but not the image
    listing = env.client.containers.run(
        second.image, ["sh", "-c", "ls -A /build; ls -A /build/env | wc -l"], remove=True
    ).decode()
    assert "skiff" not in listing.split() and listing.split()[-1] == "0"
    assert second.meta["deps_image"] == first.meta["deps_image"]
    old_layers = env.client.images.get(first.image).attrs["RootFS"]["Layers"]
    new_layers = env.client.images.get(second.image).attrs["RootFS"]["Layers"]
    assert new_layers[:-1] == old_layers[:-1] and new_layers[-1] != old_layers[-1]
    uid = env.client.containers.run(second.image, ["cat", "/app/build-uid"], remove=True).decode().strip()
    assert uid == "1000"
    assert answer(env, second.image) == (200, "hello again\n")


def test_an_added_dependency_installs_on_top_of_the_previous_layer(env, flask_build):
    app, source, first, _ = flask_build
    previous = env.client.images.get(first.meta["deps_image"])
    (source / "requirements.txt").write_text((source / "requirements.txt").read_text() + "six==1.17.0\n")
    release, output = env.deploy(app, source)
    assert "Dependencies were only added" in output
    assert "Requirement already satisfied: flask==3.1.1" in output and "Successfully installed six-1.17.0" in output
    deps = env.client.images.get(release.meta["deps_image"])
    old_layers = previous.attrs["RootFS"]["Layers"]
    assert deps.attrs["RootFS"]["Layers"][: len(old_layers)] == old_layers
    assert deps.labels["skiff.deps.depth"] == "1"
    found = env.client.containers.run(release.image, ["python", "-c", "import six, flask; print('ok')"], remove=True)
    assert found.decode().strip() == "ok"


def test_two_package_managers_fail_with_a_clear_message(env):
    app = env.new_app()
    with pytest.raises(DeployError) as info:
        env.deploy(app, APPS / "two-managers")
    assert "more than one Python package manager file: requirements.txt, Pipfile.lock" in str(info.value)


def test_unavailable_python_version_fails_at_once(env):
    app = env.new_app()
    source = env.copy("flask")
    (source / ".python-version").write_text("3.9\n")
    with pytest.raises(DeployError) as info:
        env.deploy(app, source)
    assert ".python-version requests Python 3.9" in str(info.value)
    assert "3.13.5 (skiff/stack:trixie)" in str(info.value)


def test_node_app_runs_its_build_script_and_npm_start(env):
    app = env.new_app()
    release, output = env.deploy(app, APPS / "node")
    assert "-----> Node.js app detected" in output
    assert "-----> Installing dependencies with npm ci" in output
    assert "-----> Running npm run build" in output
    assert release.processes == {"web": "npm start"}
    cached = env.client.containers.run(
        release.image,
        ["ls", "/build/cache/npm"],
        remove=True,
        volumes={f"skiff-cache-{app}": {"bind": "/build/cache", "mode": "ro"}},
    )
    assert cached.split()  # npm's cache survives the build in the app's cache volume
    assert answer(env, release.image) == (200, "hello from node (built)\n")


DOTFILE_PATHS = [
    "/.env",
    "/%2Eenv",
    "/%2F.env",
    "//.env",
    "/a/../.env",
    "/%252eenv",
    "/sub/.secret",
    "/sub/%2e%73ecret",
    "/sub%2F.secret",
    "/.git/config",
    "/%2egit%2fconfig",
    "/sub%5C.secret",
    "/.env%00",
    "/.static",
    "/%2e%2e/.static",
]


def raw_get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` sent byte for byte (no client-side normalisation) to 127.0.0.1:``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def test_static_site_is_served_without_dotfiles(env):
    app = env.new_app()
    source = env.copy("static")
    (source / "public" / ".env").write_text("SECRET=env\n")
    (source / "public" / ".git").mkdir()
    (source / "public" / ".git" / "config").write_text("SECRET=git\n")
    (source / "public" / "sub").mkdir()
    (source / "public" / "sub" / ".secret").write_text("SECRET=sub\n")
    (source / "public" / "sub" / "page.html").write_text("a page\n")
    release, output = env.deploy(app, source)
    assert "-----> Static site detected" in output
    status, body = answer(env, release.image)
    assert status == 200 and "hello from a static site" in body
    container, port = run_image(env.client, release.image, env.cleanup)
    try:
        assert http_get(f"http://127.0.0.1:{port}/style.css", container=container)[0] == 200
        assert raw_get(port, "/sub/page.html") == (200, "a page\n")
        assert raw_get(port, "/sub/%70age.html") == (200, "a page\n")
        for path in DOTFILE_PATHS:
            status, body = raw_get(port, path)
            assert status == 404 and "SECRET" not in body, path
    finally:
        container.remove(force=True)


def test_repo_purge_cache(env, flask_build):
    import docker.errors

    app = flask_build[0]
    assert env.client.volumes.get(f"skiff-cache-{app}")
    assert bp.deps_images(env.client, app)
    code = run(build_cli(env.context), env.context, ["repo:purge-cache", app])
    assert code == 0
    with pytest.raises(docker.errors.NotFound):
        env.client.volumes.get(f"skiff-cache-{app}")
    assert not bp.deps_images(env.client, app)


def test_a_killed_build_leaves_no_container_behind_the_next_build(env, docker_client):
    app = env.new_app()
    # what a SIGKILLed build leaves: a stopped build container labelled for the app
    stale = docker_client.containers.create("skiff/stack:trixie", ["true"], labels={"skiff.build-for": app})
    env.deploy(app, APPS / "static")
    assert not docker_client.containers.list(all=True, filters={"id": stale.id})
