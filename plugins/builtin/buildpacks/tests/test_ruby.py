"""Unit tests of the Ruby pack (no Docker): detection, Gemfile.lock, the Ruby version, the plan, default processes."""

from pathlib import Path

import pytest

import skiff_buildpacks.php as php
import skiff_buildpacks.ruby as ruby
from skiff.errors import SkiffError
from skiff_buildpacks.build import Build
from skiff_buildpacks.testing import TRIXIE, pack_build

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
LOCK = """\
GEM
  remote: https://rubygems.org/
  specs:
    nio4r (2.7.4)
    puma (6.6.0)
      nio4r (~> 2.0)
    rack (3.1.12)

PLATFORMS
  x86_64-linux

DEPENDENCIES
  puma
  rack

RUBY VERSION
   ruby 3.3.8p144

BUNDLED WITH
   2.6.7
"""


def make_build(source: Path, version="3.3.8") -> Build:
    return pack_build(source, version)


def write(root: Path, files: dict) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return root


@pytest.fixture
def unreachable(monkeypatch):
    asked = []
    monkeypatch.setattr(php, "reachable", lambda url, verify: asked.append(url) or "connection timed out")
    return asked


def rack_app(root: Path, **extra) -> Path:
    files = {
        "Gemfile": 'source "https://rubygems.org"\ngem "rack"\ngem "puma"\n',
        "config.ru": "run ->(env) { [200, {}, ['hi']] }\n",
        "vendor/cache/rack-3.1.12.gem": b"gem",
        "vendor/cache/puma-6.6.0.gem": b"gem",
    }
    files.update(extra)
    return write(root, files)


def test_detects_a_gemfile(tmp_path):
    assert ruby.skiff_buildpack_detect("ruby", make_build(APPS / "ruby-rack"))
    assert not ruby.skiff_buildpack_detect("ruby", make_build(APPS / "php-plain"))
    assert ruby.skiff_buildpack_detect("php", make_build(APPS / "ruby-rack")) is None
    write(tmp_path, {"config.ru": "run nil\n"})
    assert not ruby.skiff_buildpack_detect("ruby", make_build(tmp_path))  # a Gemfile is needed, as on Heroku


def test_parse_lock_reads_gems_remotes_and_ruby():
    lock = ruby.parse_lock(LOCK)
    assert lock.specs == {"nio4r": "2.7.4", "puma": "6.6.0", "rack": "3.1.12"}
    assert lock.remotes == ["https://rubygems.org/"] and lock.ruby == "ruby 3.3.8p144"
    with pytest.raises(SkiffError, match="Gemfile.lock is not a bundler lock file"):
        ruby.parse_lock("hello\n  world\n")


def test_vendor_cache_installs_offline_on_the_ruby_toolchain_layer(tmp_path, unreachable):
    build = make_build(rack_app(tmp_path, **{"Gemfile.lock": LOCK, ".bundle/config": "BUNDLE_PATH: x\n"}))
    deps = ruby.skiff_buildpack_dependencies("ruby", build)
    assert unreachable == []  # offline: no source is asked
    (step,) = deps["steps"]
    assert step["run"] == [["bundle", "install", "--local", "--no-cache"]]
    assert step["env"]["BUNDLE_USER_CACHE"].startswith("/build/cache/")
    assert deps["files"] == ["Gemfile", "Gemfile.lock", "vendor/cache/puma-6.6.0.gem", "vendor/cache/rack-3.1.12.gem"]
    assert deps["env"]["GEM_HOME"] == "/app/vendor/bundle" and deps["env"]["BUNDLE_FROZEN"] == "true"
    assert deps["env"]["BUNDLE_WITHOUT"] == "development:test" and deps["runtime_env"]["RACK_ENV"] == "production"
    assert "vendor/bundle" in deps["exclude"] and ".bundle" in deps["exclude"]
    assert any(".bundle/ is left out" in w for w in deps["warnings"])
    assert "Ruby 3.3.8 from Debian (Gemfile.lock RUBY VERSION 3.3.8)" in deps["notes"]
    (call,) = build.toolchain_loader.calls
    assert call[1] == "ruby" and {"ruby", "bundler"} <= set(call[2])
    assert build.stack.image == "skiff/stack-ruby:trixie" and build.stack.user == TRIXIE.user
    web = ruby.skiff_buildpack_processes("ruby", build)["web"]
    assert web == "bundle exec puma -p $PORT -e ${RACK_ENV:-production} config.ru"


def test_no_vendor_cache_asks_the_gemfile_source_and_fails_in_one_line(tmp_path, unreachable):
    write(tmp_path, {"Gemfile": 'source "https://gems.example.com"\ngem "rack"\n', "config.ru": "run nil\n"})
    build = make_build(tmp_path)
    with pytest.raises(SkiffError) as info:
        ruby.skiff_buildpack_dependencies("ruby", build)
    assert str(info.value) == (
        "bundler needs the gems of the Gemfile from https://gems.example.com, which this server cannot reach "
        "(connection timed out); run 'bundle cache' and commit vendor/cache/ to build offline"
    )
    assert unreachable == ["https://gems.example.com"] and build.toolchain_loader.calls == []


def test_default_web_puma_config_rackup_or_none(tmp_path):
    build = make_build(rack_app(tmp_path, **{"config/puma.rb": "port ENV['PORT']\n"}))
    assert ruby.skiff_buildpack_processes("ruby", build) == {"web": "bundle exec puma -C config/puma.rb"}
    write(tmp_path, {"Gemfile": 'gem "rack"\n'})
    web = ruby.skiff_buildpack_processes("ruby", build)["web"]
    assert web.startswith("bundle exec rackup config.ru -p $PORT -o 0.0.0.0")
    write(tmp_path, {"Gemfile": 'gem "sinatra-ish"\n'})
    assert ruby.skiff_buildpack_processes("ruby", build) == {}
    (tmp_path / "config.ru").unlink()
    write(tmp_path, {"Gemfile": 'gem "puma"\n'})
    assert ruby.skiff_buildpack_processes("ruby", build) == {}  # not a rack app: the Procfile says


@pytest.mark.parametrize(
    "files, have, warning",
    [
        ({".ruby-version": "3.3.8\n"}, "3.3.8", None),
        ({".ruby-version": "ruby-3.3.1\n"}, "3.3.8", "asks for Ruby 3.3.1; building with Debian's 3.3.8"),
        ({".ruby-version": "3.3\n"}, "3.3.8", None),
        ({"Gemfile": 'ruby "~> 3.2"\ngem "rack"\n'}, "3.3.8", None),
        ({"Gemfile": "ruby '>= 3.1', '< 3.4'\n"}, "3.3.8", None),
        ({"Gemfile": 'ruby file: ".tool-version"\n', ".tool-version": "3.3.8"}, "3.3.8", None),
    ],
)
def test_ruby_versions_that_debian_meets(tmp_path, unreachable, files, have, warning):
    rack_app(tmp_path)
    write(tmp_path, files)
    deps = ruby.skiff_buildpack_dependencies("ruby", make_build(tmp_path, version=have))
    if warning:
        assert any(warning in w for w in deps["warnings"])
    else:
        assert deps["warnings"] == []


@pytest.mark.parametrize(
    "files, message",
    [
        ({".ruby-version": "3.2.2\n"}, ".ruby-version 3.2.2 requests Ruby that Debian's Ruby 3.3.8 does not satisfy"),
        ({"Gemfile.lock": LOCK.replace("3.3.8p144", "3.4.1p0")}, "Gemfile.lock RUBY VERSION 3.4.1 requests Ruby"),
        ({"Gemfile": 'ruby "~> 3.4.0"\n'}, "Gemfile ruby ~> 3.4.0 requests Ruby that Debian's Ruby 3.3.8"),
        ({"Gemfile": 'ruby "~> 2.7"\n'}, "Gemfile ruby ~> 2.7 requests Ruby"),
        ({".ruby-version": "jruby-9.4\n"}, ".ruby-version: cannot read the Ruby version 'jruby-9.4'"),
        ({"Gemfile": 'ruby "three"\n'}, "Gemfile ruby: cannot read the Ruby version 'three'"),
        (
            {"Gemfile.lock": LOCK.replace("ruby 3.3.8p144", "ruby 3.1.4p0 (jruby 9.4.5.0)")},
            "Gemfile.lock asks for jruby 9.4.5.0: only Debian's MRI Ruby is available",
        ),
    ],
)
def test_a_ruby_version_debian_does_not_have_is_one_clear_line(tmp_path, unreachable, files, message):
    rack_app(tmp_path)
    write(tmp_path, files)
    with pytest.raises(SkiffError) as info:
        ruby.skiff_buildpack_dependencies("ruby", make_build(tmp_path))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_precedence_lock_then_gemfile_then_ruby_version(tmp_path):
    rack_app(tmp_path, **{".ruby-version": "3.1.0", "Gemfile": 'ruby "3.2.0"\ngem "puma"\n'})
    bundle = ruby.inspect(make_build(tmp_path))
    assert ruby.ruby_request(make_build(tmp_path), bundle).where == "Gemfile ruby"
    write(tmp_path, {"Gemfile.lock": LOCK})
    bundle = ruby.inspect(make_build(tmp_path))
    assert ruby.ruby_request(make_build(tmp_path), bundle).label() == "Gemfile.lock RUBY VERSION 3.3.8"


def test_vendor_cache_symlinks_are_left_out(tmp_path):
    rack_app(tmp_path)
    (tmp_path / "vendor/cache/evil.gem").symlink_to("/etc/passwd")
    assert "vendor/cache/evil.gem" not in ruby.cached_files(make_build(tmp_path))
