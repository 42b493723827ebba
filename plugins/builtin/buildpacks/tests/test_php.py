"""Unit tests of the PHP pack (no Docker): detection, composer.json, the plan, the registry check, the web script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import skiff_buildpacks.node as node
import skiff_buildpacks.php as php
import skiff_buildpacks.plugin as bp
import skiff_buildpacks.python as python
import skiff_buildpacks.ruby as ruby
from skiff.deploy import Deploy
from skiff.errors import SkiffError
from skiff.output import Output
from skiff_buildpacks.build import Build
from skiff_buildpacks.testing import TRIXIE, pack_build

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"


def make_build(source: Path, config=None, version="8.4.11") -> Build:
    return pack_build(source, version, config)


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if isinstance(text, str) else json.dumps(text))
    return root


@pytest.fixture
def unreachable(monkeypatch):
    """Every registry probe fails (as here: only PyPI, npm and Debian answer); records the URLs asked."""
    asked = []

    def probe(url, verify):
        asked.append(url)
        return "the name does not resolve"

    monkeypatch.setattr(php, "reachable", probe)
    return asked


# -- detection ----------------------------------------------------------------


def test_detects_composer_json_or_a_root_index_php(tmp_path):
    assert php.skiff_buildpack_detect("php", make_build(APPS / "php-composer"))
    assert php.skiff_buildpack_detect("php", make_build(APPS / "php-plain"))
    assert not php.skiff_buildpack_detect("php", make_build(APPS / "flask"))
    assert php.skiff_buildpack_detect("node", make_build(APPS / "php-plain")) is None
    write(tmp_path, {"web/index.php": "<?php"})
    assert not php.skiff_buildpack_detect("php", make_build(tmp_path))  # only at the root
    (tmp_path / "index.php").symlink_to(tmp_path / "web" / "index.php")
    assert not php.skiff_buildpack_detect("php", make_build(tmp_path))  # symlinks do not count


def test_php_and_ruby_are_tried_before_node(skiff):
    h = skiff(
        ("buildpacks", bp),
        ("buildpack-python", python),
        ("buildpack-node", node),
        ("buildpack-ruby", ruby),
        ("buildpack-php", php),
    )
    h.create_app("demo")
    assert [d["name"] for d in bp.describe_packs(h.context)] == ["python", "ruby", "php", "node"]
    deploy = Deploy(
        context=h.context,
        app="demo",
        kind="deploy",
        description="",
        output=Output(quiet=True),
        workdir=APPS / "php-composer",
    )
    source = APPS / "php-composer"
    assert (source / "package.json").is_file()  # an asset pipeline's package.json does not make it a Node app
    assert bp.select_packs(h.context, deploy, make_build(source)) == ["php"]
    cfg = (Path(bp.__file__).parents[1] / "setup.cfg").read_text()
    assert "buildpack-php = skiff_buildpacks.php" in cfg and "buildpack-ruby = skiff_buildpacks.ruby" in cfg
    assert "php_web.py" in cfg  # shipped as package data


# -- the plan -------------------------------------------------------------------


def test_vendored_app_builds_offline_on_the_php_toolchain_layer(unreachable):
    build = make_build(APPS / "php-composer")
    deps = php.skiff_buildpack_dependencies("php", build)
    assert unreachable == []  # nothing to download: no registry is asked
    assert deps["steps"] == [] and deps["files"] == []
    assert "vendor/ holds all 1 packages: building offline" in deps["notes"]
    assert "PHP 8.4.11 from Debian, served by php-fpm behind nginx" in deps["notes"]
    (call,) = build.toolchain_loader.calls
    assert call[:2] == ("skiff/stack:trixie", "php") and {"php-fpm", "composer", "nginx"} <= set(call[2])
    # the app image is built on the toolchain layer: PHP runs there
    assert build.stack.image == "skiff/stack-php:trixie" and build.stack.id == "sha256:php"
    assert build.stack.user == TRIXIE.user and build.stack.python == TRIXIE.python
    compiled = php.skiff_buildpack_compile("php", build)
    assert set(compiled["files"]) == {php.WEB_SCRIPT, php.ALIAS_SCRIPT}
    assert compiled["files"][php.WEB_SCRIPT] == Path(php.__file__).with_name("php_web.py").read_bytes()
    chmod, dump = compiled["steps"]
    scripts = [f"/app/{php.WEB_SCRIPT}", f"/app/{php.ALIAS_SCRIPT}"]
    assert chmod["run"] == [
        ["chmod", "0755", *scripts],
        ["mkdir", "-p", "/app/vendor/bin"],
        ["ln", "-sfn", scripts[0], "/app/vendor/bin/heroku-php-nginx"],  # Heroku's Procfiles name vendor/bin/...
        ["ln", "-sfn", scripts[1], "/app/vendor/bin/heroku-php-apache2"],
    ]
    assert dump["run"][0][:2] == ["composer", "dump-autoload"] and "--no-dev" in dump["run"][0]
    assert php.skiff_buildpack_processes("php", build) == {"web": "heroku-php-nginx public/"}
    assert deps["path"][0] == php.BIN


def test_plain_index_php_app_has_no_composer_steps():
    build = make_build(APPS / "php-plain")
    deps = php.skiff_buildpack_dependencies("php", build)
    assert deps["steps"] == [] and "no composer.json: serving the PHP files as they are" in deps["notes"]
    compiled = php.skiff_buildpack_compile("php", build)
    assert [s["run"][0][0] for s in compiled["steps"]] == ["chmod"]
    assert php.skiff_buildpack_processes("php", build) == {"web": "heroku-php-nginx"}


def test_dependencies_not_vendored_install_with_composer_when_the_registry_answers(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(php, "reachable", lambda url, verify: asked.append(url) or "")
    lock = {"packages": [{"name": "monolog/monolog", "version": "3.8.1"}]}
    write(tmp_path, {"composer.json": {"require": {"monolog/monolog": "^3.8"}}, "composer.lock": lock})
    build = make_build(tmp_path)
    deps = php.skiff_buildpack_dependencies("php", build)
    assert asked == [php.PACKAGIST]
    assert deps["files"] == ["composer.json", "composer.lock"] and deps["exclude"] == ["vendor"]
    (step,) = deps["steps"]
    argv = step["run"][0]
    assert argv[:2] == ["composer", "install"] and "--no-dev" in argv and "--no-autoloader" in argv
    assert step["env"]["COMPOSER_CACHE_DIR"].startswith("/build/cache/")


def test_a_registry_that_does_not_answer_is_one_line_before_anything_is_built(tmp_path, unreachable):
    write(tmp_path, {"composer.json": {"require": {"php": "^8.1", "monolog/monolog": "^3.8", "ext-json": "*"}}})
    build = make_build(tmp_path)
    with pytest.raises(SkiffError) as info:
        php.skiff_buildpack_dependencies("php", build)
    message = str(info.value)
    assert message == (
        "composer needs monolog/monolog from https://repo.packagist.org, which this server cannot reach "
        "(the name does not resolve); commit vendor/ and composer.lock (composer install) to build offline"
    )
    assert build.toolchain_loader.calls == []  # stopped before the toolchain layer


def test_a_lock_newer_than_vendor_needs_the_registry(tmp_path, unreachable):
    lock = {"packages": [{"name": "acme/greeter", "version": "1.1.0"}]}
    installed = {"packages": [{"name": "acme/greeter", "version": "1.0.0"}]}
    write(
        tmp_path,
        {
            "composer.json": {
                "require": {"acme/greeter": "^1.0"},
                "repositories": [{"packagist.org": False}, {"type": "composer", "url": "https://php.example.com"}],
            },
            "composer.lock": lock,
            "vendor/composer/installed.json": installed,
        },
    )
    with pytest.raises(SkiffError, match=r"composer needs acme/greeter from https://php.example.com, "):
        php.skiff_buildpack_dependencies("php", make_build(tmp_path))
    assert unreachable == ["https://php.example.com"]  # packagist disabled: not asked


def test_path_and_artifact_repositories_go_into_the_dependency_layer(tmp_path, unreachable):
    composer = {
        "require": {"acme/a": "*", "acme/b": "*"},
        "repositories": [
            {"packagist.org": False},
            {"type": "path", "url": "packages/*"},
            {"type": "artifact", "url": "dist/"},
        ],
    }
    write(
        tmp_path,
        {
            "composer.json": composer,
            "packages/a/composer.json": "{}",
            "packages/a/src/A.php": "<?php",
            "packages/a/vendor/x.php": "<?php",
            "dist/acme-b-1.0.0.zip": "zip",
            "index.php": "<?php",
        },
    )
    (tmp_path / "packages/a/link.php").symlink_to("/etc/passwd")
    deps = php.skiff_buildpack_dependencies("php", make_build(tmp_path))
    assert unreachable == []  # packagist disabled, no remote repository: nothing to ask
    assert deps["files"] == [
        "composer.json",
        "dist/acme-b-1.0.0.zip",
        "packages/a/composer.json",
        "packages/a/src/A.php",
    ]


@pytest.mark.parametrize(
    "composer, message",
    [
        ("{", "composer.json is not valid JSON"),
        ("[1]", "composer.json must be a JSON object"),
        ({"require": ["a/b"]}, "composer.json require must be a JSON object"),
        ({"require": {"a/b": 1}}, "composer.json require 'a/b': the version constraint must be a string"),
        ({"require": {"not a package": "*"}}, "invalid package name 'not a package'"),
        ({"extra": {"heroku": {"document-root": "../etc"}}}, "extra.heroku.document-root must be a directory inside"),
        ({"extra": {"heroku": {"document-root": "/srv"}}}, "extra.heroku.document-root must be a directory inside"),
        ({"extra": {"heroku": {"document-root": "web; rm -rf /"}}}, "document-root must be a directory inside"),
        ({"config": {"vendor-dir": "../x"}}, "config.vendor-dir must be a directory inside the app"),
        ({"repositories": "x"}, "composer.json repositories must be a list or an object"),
        (
            {"repositories": [{"type": "path", "url": "/srv/lib"}]},
            "the path repository '/srv/lib' must be inside the app",
        ),
        (
            {"repositories": [{"type": "artifact", "url": "../x"}]},
            "the artifact repository '../x' must be inside the app",
        ),
        ({"require": {"php": "^9.0"}}, "composer.json requires php ^9.0, but the PHP from Debian is 8.4.11"),
        ({"require": {"php": "~7.4"}}, "composer.json requires php ~7.4, but the PHP from Debian is 8.4.11"),
        ({"require": {"php": "hello"}}, "composer.json require.php: cannot read the constraint 'hello'"),
    ],
)
def test_bad_composer_json_is_one_clear_line(tmp_path, unreachable, composer, message):
    write(tmp_path, {"composer.json": composer})
    with pytest.raises(SkiffError) as info:
        php.skiff_buildpack_dependencies("php", make_build(tmp_path))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "constraint, allowed",
    [
        (">=8.1", True),
        ("^8.2", True),
        ("~8.1", True),  # composer: >=8.1 <9
        ("~8.1.0", False),
        ("8.4.*", True),
        ("^7.4 || ^8.0", True),
        ("^7.4|^8.0", True),
        (">=7.2, <8.0", False),
        (">=8.0 <8.5", True),
        ("^8.5@dev", False),
    ],
)
def test_php_constraints_read_as_composer_reads_them(tmp_path, constraint, allowed):
    composer = php.Composer(require={"php": constraint})
    if allowed:
        php.check_php(composer, "8.4.11")
    else:
        with pytest.raises(SkiffError):
            php.check_php(composer, "8.4.11")


def test_reachable_probes_public_addresses_only(monkeypatch):
    import socket

    import requests

    asked = []
    addresses = {"repo.packagist.org": "203.0.113.9"}  # a documentation address stands for a public one

    def getaddrinfo(host, port):
        if host not in addresses:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addresses[host], port))]

    def head(url, **kwargs):
        asked.append(url)
        raise requests.exceptions.ConnectionError("refused")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(requests, "head", head)
    assert php.reachable("https://nowhere.invalid", True) == "the name does not resolve"
    # 203.0.113.0/24 is not global either: treat it as public for this test
    monkeypatch.setattr("ipaddress.IPv4Address.is_global", property(lambda self: str(self) == "203.0.113.9"))
    assert php.reachable("https://repo.packagist.org", True) == "connection failed"
    assert asked == ["https://repo.packagist.org"]
    monkeypatch.setattr(requests, "head", lambda url, **kwargs: asked.append(url))
    assert php.reachable("https://repo.packagist.org/packages.json", True) == ""
    # loopback, private and link-local registries are never asked from the server itself
    for host, address in (("localhost", "127.0.0.1"), ("satis.corp", "10.1.2.3"), ("meta", "169.254.169.254")):
        addresses[host] = address
        assert php.reachable(f"http://{host}:8080/", True) == ""
    assert len(asked) == 2


# -- the web script ---------------------------------------------------------------


def load_web():
    import importlib.util

    spec = importlib.util.spec_from_file_location("php_web", Path(php.__file__).with_name("php_web.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nginx_config_serves_the_root_denies_dotfiles_and_vendor():
    web = load_web()
    conf = web.nginx_conf("/tmp/run", "5000", "/app", "")
    assert "listen 5000;" in conf and "root /app;" in conf and "daemon off;" in conf
    assert "location ~ /\\. { deny all; }" in conf and "location ^~ /vendor/ { deny all; }" in conf
    assert "fastcgi_pass unix:/tmp/run/php-fpm.sock;" in conf and "error_log stderr;" in conf
    public = web.nginx_conf("/tmp/run", "5000", "/app/public", "/app/nginx.conf")
    assert "/vendor/" not in public and "include /app/nginx.conf;" in public
    fpm = web.fpm_conf("/tmp/run", "")
    assert "clear_env = no" in fpm and "listen = /tmp/run/php-fpm.sock" in fpm and "daemonize = no" in fpm


def test_web_script_refuses_a_document_root_outside_the_app(tmp_path):
    script = Path(php.__file__).with_name("php_web.py")
    result = subprocess.run(
        [sys.executable, str(script), "../etc"], capture_output=True, text=True, env={"PORT": "5000"}, timeout=30
    )
    assert result.returncode != 0 and "document root '../etc' is outside /app" in result.stderr
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env={"PORT": "5000; x"}, timeout=30
    )
    assert result.returncode != 0 and "PORT must be a TCP port" in result.stderr


def test_web_script_paths_that_reach_the_config_files_are_plain():
    web = load_web()
    assert web.SAFE_PATH.fullmatch("/app") and web.SAFE_PATH.fullmatch("/app/public/v1.2@x+y-z_")
    for bad in ("/app/a;b", "/app/a b", "/app/x}", "/app/$uri", "/app/a\nb", "/etc", "/app/"):
        assert not web.SAFE_PATH.fullmatch(bad), bad
