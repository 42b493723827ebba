"""End to end: PHP apps ``git push``ed over a real sshd, built by the php pack on the PHP
toolchain layer (made on first use from Debian's php-fpm, composer and nginx), run by the
docker scheduler (php-fpm behind nginx in the container) and asked through a private nginx.

- tests/apps/php-composer: composer.json + composer.lock with acme/greeter committed in
  vendor/ (and a package.json: still a PHP app), document root public/ from
  composer.json extra.heroku; built offline, autoloader written by composer;
- tests/apps/php-plain: an index.php, no composer.json, and Heroku's Procfile line
  ``web: vendor/bin/heroku-php-apache2`` (served by the same php-fpm + nginx);
- a composer.json whose dependency is not vendored and whose registry cannot be reached:
  one line, nothing built;
- composer install in the dependency layer, offline: packagist disabled and the package from
  an artifact repository (a zip the test makes) inside the app; a code-only push reuses it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, git_push, init_repo

pytestmark = pytest.mark.e2e

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def files_of(name: str) -> dict[str, str]:
    root = APPS / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def push(app: str, files: dict, sshd, tmp_path: Path):
    t0 = time.monotonic()
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    print(f"{app}: pushed in {time.monotonic() - t0:.1f}s\n{pushed.output}")
    return pushed


def test_composer_app_with_vendor_and_plain_index_php_answer_through_nginx(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("phpc"))
    pushed = push(app, files_of("php-composer"), sshd, tmp_path)
    assert pushed.exit_code == 0, pushed.output
    output = pushed.output
    assert "PHP app detected" in output and "Node.js app detected" not in output
    assert "vendor/ holds all 1 packages: building offline" in output
    assert "Installing dependencies with composer" not in output  # nothing to download
    assert "Writing the autoloader with composer" in output
    assert "default process type web: heroku-php-nginx public/" in output
    home = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert home.status == 200, home.body
    assert "hello from the vendored acme/greeter to a composer app (php 8." in home.body
    assert "fpm-fcgi, nginx" in home.body  # php-fpm behind the container's nginx
    # the document root is public/: the app's other files are not served (the front controller answers)
    other = private_nginx.request("/composer.json", host=f"{app}.{GLOBAL}")
    assert other.status == 200 and "skiff/php-hello" not in other.body and "acme/greeter to a" in other.body
    # config vars reach PHP through php-fpm (clear_env = no), after a config-only release
    assert sshd.ssh(["config:set", app, "GREETING=hello-from-config"]).exit_code == 0
    env = private_nginx.request("/env", host=f"{app}.{GLOBAL}")
    assert env.status == 200 and env.body.strip() == "hello-from-config"

    plain = docker_cleanup.app(new_app_name("phpp"))
    pushed = push(plain, files_of("php-plain"), sshd, tmp_path)
    assert pushed.exit_code == 0, pushed.output
    assert "no composer.json: serving the PHP files as they are" in pushed.output
    assert "default process type web" not in pushed.output  # its Procfile, written for Heroku, says what runs
    assert "Building the php toolchain layer" not in pushed.output  # made once, reused
    home = private_nginx.request(host=f"{plain}.{GLOBAL}")
    assert home.status == 200 and "hello from a plain index.php (php 8." in home.body and "fpm-fcgi" in home.body
    assert private_nginx.request("/teapot.php", host=f"{plain}.{GLOBAL}").status == 418
    assert private_nginx.request("/.env", host=f"{plain}.{GLOBAL}").status == 403  # dotfiles are never served


def test_composer_json_needing_an_unreachable_registry_is_one_line(
    stack_image, docker_client, docker_cleanup, sshd, tmp_path
):
    app = docker_cleanup.app(new_app_name("phpbad"))
    registry = "https://registry.invalid"  # .invalid never resolves (RFC 2606): no connection is made
    composer = (
        '{"require": {"php": ">=8.1", "monolog/monolog": "^3.8"},\n'
        f' "repositories": [{{"packagist.org": false}}, {{"type": "composer", "url": "{registry}"}}]}}\n'
    )
    pushed = push(app, {"composer.json": composer, "index.php": "<?php echo 1;\n"}, sshd, tmp_path)
    assert pushed.exit_code != 0
    line = (
        f"composer needs monolog/monolog from {registry}, which this server cannot reach (the name does not resolve); "
        "commit vendor/ and composer.lock (composer install) to build offline"
    )
    assert line in pushed.output
    assert "Installing dependencies with composer" not in pushed.output and "Traceback" not in pushed.output
    assert docker_client.images.list(name=f"skiff/{app}") == []


def artifact_zip() -> bytes:
    """acme/shout 1.0.0 as composer's artifact repository wants it: a zip with composer.json at its root."""
    import io
    import json
    import zipfile

    package = {"name": "acme/shout", "version": "1.0.0", "autoload": {"files": ["src/Shout.php"]}}
    code = "<?php\nnamespace Acme\\Shout;\nfunction shout(string $s): string { return strtoupper($s) . '!'; }\n"
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("composer.json", json.dumps(package))
        z.writestr("src/Shout.php", code)
    return data.getvalue()


def test_composer_installs_from_a_repository_in_the_app_in_the_dependency_layer(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    """The composer install path, offline: packagist disabled, acme/shout from an artifact repository."""
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("phpi"))
    composer = (
        '{"require": {"acme/shout": "^1.0"},\n'
        ' "repositories": [{"packagist.org": false}, {"type": "artifact", "url": "artifacts/"}]}\n'
    )
    index = (
        "<?php\nrequire __DIR__ . '/vendor/autoload.php';\necho Acme\\Shout\\shout('installed by composer'), \"\\n\";\n"
    )
    files = {"composer.json": composer, "index.php": index, "artifacts/acme-shout-1.0.0.zip": artifact_zip()}
    pushed = push(app, files, sshd, tmp_path)
    assert pushed.exit_code == 0, pushed.output
    assert "no composer.lock: composer resolves the versions" in pushed.output
    assert "Installing dependencies with composer" in pushed.output and "acme/shout (1.0.0)" in pushed.output
    home = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert home.status == 200 and home.body.strip() == "INSTALLED BY COMPOSER!"
    # a code-only push reuses the dependency layer
    commit_files(tmp_path / app, {"index.php": index.replace("installed by composer", "reused layer")}, "code only")
    pushed = git_push(tmp_path / app, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Reusing the dependency layer" in pushed.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body.strip() == "REUSED LAYER!"
