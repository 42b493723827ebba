"""End to end: a Ruby rack app ``git push``ed over a real sshd, built by the ruby pack on the
Ruby toolchain layer (made on first use from Debian's ruby, bundler, ruby-rack and puma), run
by the docker scheduler and asked through a private nginx.

tests/apps/ruby-rack has a Gemfile naming rack, puma and skiff-greeting, a config.ru and a
.ruby-version. skiff-greeting is a tiny gem (tests/apps/ruby-gem) that the test builds with
``gem build`` in the toolchain layer and puts in vendor/cache: ``bundle install --local``
installs it offline, rack and puma are Debian's, and the default web process is puma.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from skiff.output import Output
from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo
from skiff_buildpacks import ruby, toolchains
from skiff_buildpacks.build import Stack

pytestmark = pytest.mark.e2e

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def build_gem(client, stack_image: str) -> bytes:
    """``gem build`` of tests/apps/ruby-gem in the Ruby toolchain layer (the one the push uses)."""
    image = client.images.get(stack_image)
    stack = Stack(image=stack_image, id=image.id, user=(image.labels or {}).get("skiff.stack.user", "1000:1000"))
    toolchain = toolchains.ensure(client, stack, ruby.NAME, ruby.PACKAGES, ruby.VERSION_COMMAND, Output(quiet=True))
    script = "cp -r /src /tmp/gem && cd /tmp/gem && gem build skiff-greeting.gemspec >&2 && base64 -w0 *.gem && echo"
    out = client.containers.run(
        toolchain.image,
        ["sh", "-c", script],
        volumes={str(APPS / "ruby-gem"): {"bind": "/src", "mode": "ro"}},
        user="root",
        network_disabled=True,
        remove=True,
    )
    return base64.b64decode(out)


def test_rack_app_with_a_vendored_gem_answers_through_nginx(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    gem = build_gem(docker_client, stack_image)
    assert gem[:512].find(b"metadata.gz") >= 0  # a real .gem (a tar of metadata.gz and data.tar.gz)
    root = APPS / "ruby-rack"
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in root.iterdir() if p.is_file()}
    files["vendor/cache/skiff-greeting-0.1.0.gem"] = gem
    app = docker_cleanup.app(new_app_name("rack"))
    t0 = time.monotonic()
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    print(f"pushed in {time.monotonic() - t0:.1f}s\n{pushed.output}")
    assert pushed.exit_code == 0, pushed.output
    output = pushed.output
    assert "Ruby app detected" in output
    assert "vendor/cache/ found: installing offline with bundle install --local" in output
    assert "(.ruby-version 3.3)" in output
    assert "default process type web: bundle exec puma" in output
    home = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert home.status == 200, home.body
    assert "hello from the vendored skiff-greeting gem to a rack app (ruby 3.3." in home.body
    assert "puma" in home.body.lower()


def test_a_ruby_version_debian_does_not_have_is_one_line(stack_image, docker_client, docker_cleanup, sshd, tmp_path):
    app = docker_cleanup.app(new_app_name("rackbad"))
    files: dict[str, str | bytes] = {p.name: p.read_text() for p in (APPS / "ruby-rack").iterdir() if p.is_file()}
    files[".ruby-version"] = "2.7.8\n"
    files["vendor/cache/skiff-greeting-0.1.0.gem"] = b"never installed"  # offline: no gem source is asked
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    assert pushed.exit_code != 0
    assert ".ruby-version 2.7.8 requests Ruby that Debian's Ruby 3.3." in pushed.output
    assert "Installing dependencies" not in pushed.output and "Traceback" not in pushed.output
    assert docker_client.images.list(name=f"skiff/{app}") == []
