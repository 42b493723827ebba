"""The Ruby pack: Gemfile + bundler with Debian's Ruby; rack apps get a default web process.

The toolchain is Debian's ``ruby``, ``ruby-dev`` and ``bundler`` (plus Debian's
``ruby-rack`` and ``puma``) in a layer on the stack (``skiff/stack-ruby:SUITE``,
made on the first Ruby build, see :mod:`skiff_buildpacks.toolchains`); the app
image is built on that layer, since Ruby runs there.

- gems install with ``bundle install`` into ``/app/vendor/bundle`` (``GEM_HOME``)
  in the dependency layer, keyed by the Gemfile, Gemfile.lock and ``vendor/cache``;
  with a ``vendor/cache`` directory (``bundle cache``) it is ``bundle install
  --local``: nothing is downloaded. Gems Debian installed in the toolchain layer
  (rack, puma) count as installed, as system gems do for bundler;
- without ``vendor/cache`` the gems come from the Gemfile's sources, after a check
  from the server that they answer (one line naming the unreachable one);
- the Ruby the app asks for (Gemfile.lock ``RUBY VERSION``, the Gemfile's ``ruby``
  line, ``.ruby-version``, in that order) is checked against Debian's: another
  minor is one clear line, another patch a warning.

Default ``web`` with a ``config.ru``: ``bundle exec puma`` when the bundle has
puma, else ``bundle exec rackup`` when it has rack.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from skiff import hookimpl
from skiff.errors import SkiffError

NAME = "ruby"
VERSION = "1"
LABEL = "Ruby app"
PACKAGES = ["ruby", "ruby-dev", "bundler", "ruby-rack", "puma"]
VERSION_COMMAND = ["ruby", "-e", "print RUBY_VERSION"]
GEM_HOME = "/app/vendor/bundle"
CACHE_DIR = "vendor/cache"
MAX_CACHE_FILES = 20000
PROBE_TIMEOUT = 5.0
BUNDLE_ENV = {
    "GEM_HOME": GEM_HOME,
    "BUNDLE_GEMFILE": "/app/Gemfile",
    "BUNDLE_WITHOUT": "development:test",
    "BUNDLE_USER_HOME": "/tmp/bundle",
}
INSTALL_ENV = {"BUNDLE_USER_CACHE": "/build/cache/bundle", "BUNDLE_JOBS": "4", "BUNDLE_RETRY": "1"}
RUNTIME_ENV = {
    "RACK_ENV": "production",
    "RAILS_ENV": "production",
    "RAILS_LOG_TO_STDOUT": "enabled",
    "RAILS_SERVE_STATIC_FILES": "enabled",
}
RUBY_VERSION = re.compile(r"\A([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:p[0-9]+)?\Z")
REQUIREMENT = re.compile(r"\A\s*(=|!=|>=|<=|>|<|~>)?\s*([0-9]+(?:\.[0-9]+){0,3})\s*\Z")
GEMFILE_RUBY = re.compile(r"""^\s*ruby\s*\(?\s*((?:["'][^"'\n]*["']\s*,?\s*)+)""", re.M)
GEMFILE_RUBY_FILE = re.compile(r"""^\s*ruby\s*\(?\s*file:\s*["']([^"'\n]+)["']""", re.M)
GEMFILE_GEM = re.compile(r"""^\s*gem\s*\(?\s*["']([A-Za-z0-9_.-]+)["']""", re.M)
GEMFILE_SOURCE = re.compile(r"""^\s*source\s*\(?\s*["'](https?://[^"'\s]+)["']""", re.M)
LOCK_SPEC = re.compile(r"\A    ([A-Za-z0-9_.-]+) \(([^()\s]+)\)\Z")
LOCK_REMOTE = re.compile(r"\A  remote: (https?://\S+)\Z")


# -- Gemfile and Gemfile.lock -----------------------------------------------------


@dataclass
class Lock:
    """What the pack reads from Gemfile.lock."""

    specs: dict[str, str] = field(default_factory=dict)  # GEM section gems: name -> version
    remotes: list[str] = field(default_factory=list)
    ruby: str = ""  # RUBY VERSION, e.g. "ruby 3.3.8p144"


def parse_lock(text: str) -> Lock:
    lock = Lock()
    section = ""
    lines = text.splitlines()
    for line in lines:
        if line and not line.startswith(" "):
            section = line.strip()
            continue
        if section == "RUBY VERSION" and line.strip():
            lock.ruby = line.strip()
        elif section == "GEM":
            remote = LOCK_REMOTE.fullmatch(line)
            spec = LOCK_SPEC.fullmatch(line)
            if remote and remote.group(1) not in lock.remotes:
                lock.remotes.append(remote.group(1))
            elif spec:
                lock.specs[spec.group(1)] = spec.group(2)
    if lines and not any(line.startswith(("GEM", "PATH", "GIT", "PLATFORMS", "DEPENDENCIES")) for line in lines):
        raise SkiffError("Gemfile.lock is not a bundler lock file (no GEM, PLATFORMS or DEPENDENCIES section)")
    return lock


@dataclass
class Bundle:
    """The app's Gemfile, Gemfile.lock and vendor/cache."""

    gemfile: str
    lock: Lock | None
    cached: list[str]  # files under vendor/cache, relative to the app

    def has(self, gem: str) -> bool:
        if self.lock is not None and self.lock.specs:
            return gem in self.lock.specs
        return gem in GEMFILE_GEM.findall(self.gemfile)

    @property
    def sources(self) -> list[str]:
        found = list(self.lock.remotes) if self.lock else []
        return found or list(dict.fromkeys(GEMFILE_SOURCE.findall(self.gemfile)))


def cached_files(build) -> list[str]:
    """Regular files under vendor/cache (no symlinks), sorted."""
    if not build.has(CACHE_DIR) or not (build.source / CACHE_DIR).is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(build.source / CACHE_DIR):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, build.source))
    if len(found) > MAX_CACHE_FILES:
        raise SkiffError(f"{CACHE_DIR} holds {len(found)} files, more than {MAX_CACHE_FILES}")
    return found


def inspect(build) -> Bundle:
    if not build.has("Gemfile"):
        raise SkiffError("the ruby buildpack needs a Gemfile")
    lock = parse_lock(build.read("Gemfile.lock")) if build.has("Gemfile.lock") else None
    return Bundle(gemfile=build.read("Gemfile"), lock=lock, cached=cached_files(build))


# -- the Ruby version ----------------------------------------------------------------


@dataclass
class RubyRequest:
    where: str
    requirements: list[tuple[str, str]]  # (operator, version); "" is a pin

    def label(self) -> str:
        return f"{self.where} " + ", ".join(f"{op} {v}".strip() for op, v in self.requirements)


def _requirement(text: str, where: str) -> tuple[str, str]:
    match = REQUIREMENT.fullmatch(text)
    if not match:
        raise SkiffError(f"{where}: cannot read the Ruby version {text.strip()!r} (expected e.g. 3.3.8 or ~> 3.3)")
    return match.group(1) or "", match.group(2)


def ruby_request(build, bundle: Bundle) -> RubyRequest | None:
    """The app's Ruby request: Gemfile.lock RUBY VERSION, else the Gemfile's ruby line, else .ruby-version."""
    if bundle.lock is not None and bundle.lock.ruby:
        parts = bundle.lock.ruby.split()
        if len(parts) < 2 or parts[0] != "ruby" or not RUBY_VERSION.fullmatch(parts[1]):
            raise SkiffError(
                f"Gemfile.lock RUBY VERSION: cannot read {bundle.lock.ruby!r} (expected e.g. ruby 3.3.8p144)"
            )
        if len(parts) > 2:
            raise SkiffError(
                f"Gemfile.lock asks for {' '.join(parts[2:]).strip('()')}: only Debian's MRI Ruby is available"
            )
        return RubyRequest("Gemfile.lock RUBY VERSION", [("", parts[1].split("p", 1)[0])])
    file_match = GEMFILE_RUBY_FILE.search(bundle.gemfile)
    version_file = file_match.group(1) if file_match else ".ruby-version"
    match = GEMFILE_RUBY.search(bundle.gemfile)
    if match and not file_match:
        texts = re.findall(r"""["']([^"'\n]*)["']""", match.group(1))
        return RubyRequest("Gemfile ruby", [_requirement(t, "Gemfile ruby") for t in texts])
    if build.has(version_file):
        for line in build.read(version_file).splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                text = line.removeprefix("ruby-")
                if not RUBY_VERSION.fullmatch(text):
                    raise SkiffError(f"{version_file}: cannot read the Ruby version {line!r} (expected e.g. 3.3.8)")
                return RubyRequest(version_file, [("", text)])
    return None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:4])


def _allows(op: str, want: str, have: str) -> bool:
    h, w = _key(have), _key(want)
    size = max(len(h), len(w))
    h, w = h + (0,) * (size - len(h)), w + (0,) * (size - len(w))
    if op == "~>":
        parts = _key(want)
        upper = parts[:-1] if len(parts) > 1 else parts
        upper = upper[:-1] + (upper[-1] + 1,)
        return h >= w and _key(have)[: len(upper)] < upper
    return {"=": h == w, "!=": h != w, ">": h > w, "<": h < w, ">=": h >= w, "<=": h <= w}[op]


def check_ruby(request: RubyRequest | None, version: str) -> list[str]:
    """Warnings for a patch pin Debian's Ruby does not have; one SkiffError line when no Ruby here fits."""
    if request is None:
        return []
    warnings = []
    for op, want in request.requirements:
        if op:
            if not _allows(op, want, version):
                break
            continue
        if _key(want)[:2] != _key(version)[:2]:
            break
        if len(_key(want)) > 2 and _key(want)[:3] != _key(version)[:3]:
            warnings.append(f"{request.label()} asks for Ruby {want}; building with Debian's {version} (same minor)")
    else:
        return warnings
    raise SkiffError(
        f"{request.label()} requests Ruby that Debian's Ruby {version} does not satisfy "
        f"(only {'.'.join(version.split('.')[:2])} is available on this stack); change the Ruby version of the app"
    )


# -- registries -------------------------------------------------------------------


def check_sources(build, bundle: Bundle) -> None:
    """Without vendor/cache the gems come from the Gemfile's sources: each must answer, else one line."""
    from .node import tls_verify
    from .php import reachable

    what = "Gemfile.lock" if bundle.lock is not None else "the Gemfile"
    for url in bundle.sources:
        why = reachable(url, tls_verify(build))
        if why:
            raise SkiffError(
                f"bundler needs the gems of {what} from {url}, which this server cannot reach ({why}); "
                f"run 'bundle cache' and commit {CACHE_DIR}/ to build offline"
            )


# -- hooks ----------------------------------------------------------------------


@hookimpl
def skiff_buildpack_describe() -> dict[str, Any]:
    return {"name": NAME, "version": VERSION, "looks_for": "Gemfile", "order": 12, "label": LABEL}


@hookimpl
def skiff_buildpack_detect(pack: str, build) -> bool | None:
    if pack != NAME:
        return None
    return build.has("Gemfile") and (build.source / "Gemfile").is_file()


@hookimpl
def skiff_buildpack_dependencies(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    from dataclasses import replace

    bundle = inspect(build)  # a broken Gemfile.lock or Ruby version stops the build here
    request = ruby_request(build, bundle)
    notes, warnings = [], []
    if build.has(".bundle"):
        warnings.append(".bundle/ is left out of the build (it holds one checkout's local bundler settings)")
    if bundle.cached:
        notes.append(f"{CACHE_DIR}/ found: installing offline with bundle install --local")
        install = ["bundle", "install", "--local", "--no-cache"]
    else:
        check_sources(build, bundle)
        install = ["bundle", "install"]
    if bundle.lock is None:
        notes.append("no Gemfile.lock: bundler resolves the versions (commit Gemfile.lock for repeatable builds)")
    toolchain = build.toolchain(NAME, PACKAGES, VERSION_COMMAND)
    build.use_stack(replace(build.stack, image=toolchain.image, id=toolchain.id))
    warnings += check_ruby(request, toolchain.version)
    source = f" ({request.label()})" if request else ""
    notes.append(f"Ruby {toolchain.version} from Debian{source}")
    env = {**BUNDLE_ENV, **({"BUNDLE_FROZEN": "true"} if bundle.lock is not None else {})}
    files = ["Gemfile", *(["Gemfile.lock"] if bundle.lock is not None else []), *bundle.cached]
    steps = [{"title": f"Installing dependencies with {' '.join(install)}", "run": [install], "env": INSTALL_ENV}]
    return {
        "label": LABEL,
        "notes": notes,
        "warnings": warnings,
        "files": files,
        "steps": steps,
        "env": env,
        "runtime_env": RUNTIME_ENV,
        "path": ["/app/bin", f"{GEM_HOME}/bin"],
        "exclude": ["vendor/bundle", ".bundle"],
    }


@hookimpl
def skiff_buildpack_compile(pack: str, build) -> dict[str, Any] | None:
    if pack != NAME:
        return None
    return {}


def web_process(build, bundle: Bundle) -> str | None:
    if not (build.has("config.ru") and (build.source / "config.ru").is_file()):
        return None
    if bundle.has("puma"):
        if build.has("config/puma.rb"):
            return "bundle exec puma -C config/puma.rb"
        return "bundle exec puma -p $PORT -e ${RACK_ENV:-production} config.ru"
    if bundle.has("rack") or bundle.has("rackup"):
        return "bundle exec rackup config.ru -p $PORT -o 0.0.0.0 -E ${RACK_ENV:-production}"
    return None


@hookimpl
def skiff_buildpack_processes(pack: str, build) -> dict[str, str] | None:
    if pack != NAME:
        return None
    bundle = inspect(build)
    web = web_process(build, bundle)
    if web is None and build.has("config.ru"):
        build.output.warn("config.ru found, but the bundle has neither puma nor rack: no default web process")
    return {"web": web} if web else {}
