"""The shared wheel cache, its promotion and verification, the uv tool cache and the installer choice (no Docker).

A real HTTP server on 127.0.0.1 plays the package index (PEP 691 JSON and PEP 503 HTML pages).
"""

import hashlib
import http.server
import io
import json
import os
import sys
import threading
import zipfile
from pathlib import Path

import pytest

import skiff_buildpacks.python as python
from skiff.output import Output
from skiff_buildpacks import driver, wheels
from skiff_buildpacks.build import Build, Progress, Stack

TRIXIE = Stack(image="skiff/stack:trixie", id="sha256:aaa", python="3.13.5", node="20.19.2")
APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"
FLASK_WHEEL = b"PK fake flask wheel bytes"
MARKUPSAFE = "markupsafe-3.0.4-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"


class FakeIndex:
    """Pages and files served by the local index: ``pages[project] = (content_type, body)``, ``files[path] = bytes``."""

    def __init__(self):
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []

    def add_project(self, project: str, entries: list[tuple[str, bytes, bytes | None]], html: bool = False):
        """``entries``: (filename, served bytes, bytes whose sha256 the page lists, or None for the served ones)."""
        listed = []
        for filename, data, hashed in entries:
            self.files[f"/files/{filename}"] = data
            listed.append((filename, hashlib.sha256(data if hashed is None else hashed).hexdigest()))
        if html:
            links = "".join(f'<a href="../../files/{f}#sha256={h}">{f}</a><br>' for f, h in listed)
            self.pages[project] = ("text/html", f"<html><body>{links}</body></html>".encode())
        else:
            doc = {"files": [{"filename": f, "url": f"/files/{f}", "hashes": {"sha256": h}} for f, h in listed]}
            self.pages[project] = ("application/vnd.pypi.simple.v1+json", json.dumps(doc).encode())


@pytest.fixture
def index():
    fake = FakeIndex()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            fake.requests.append(self.path)
            if self.path.startswith("/simple/") and self.path.endswith("/"):
                page = fake.pages.get(self.path[len("/simple/") : -1])
                if page:
                    return self._send(200, page[0], page[1])
            elif self.path in fake.files:
                return self._send(200, "application/octet-stream", fake.files[self.path])
            self._send(404, "text/plain", b"no")

        def _send(self, code, kind, body):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    yield fake
    server.shutdown()
    server.server_close()


def dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"  # nothing listens there any more


def test_parse_wheel_expands_compressed_tags():
    name, version, tags = wheels.parse_wheel(MARKUPSAFE)
    assert (name, version) == ("markupsafe", "3.0.4")
    assert tags == {
        "cp313-cp313-manylinux2014_x86_64",
        "cp313-cp313-manylinux_2_17_x86_64",
        "cp313-cp313-manylinux_2_28_x86_64",
    }
    assert wheels.parse_wheel("Flask-3.1.1-py3-none-any.whl")[0] == "flask"
    assert wheels.parse_wheel("../evil-1.0-py3-none-any.whl") is None
    assert wheels.parse_wheel("flask-3.1.1.tar.gz") is None


def test_report_is_validated_before_it_names_anything_to_fetch():
    report = [
        {"name": "Flask", "version": "3.1.1", "tags": ["py3-none-any"]},
        {"name": "../etc", "version": "1", "tags": ["py3-none-any"]},
        {"name": "ok", "version": "1 2", "tags": ["py3-none-any"]},
        {"name": "ok", "version": "1", "tags": ["not a tag"]},
        {"name": "ok", "version": "1", "tags": []},
        "junk",
    ]
    (only,) = wheels.parse_report(report)
    assert (only.name, only.version, only.tags) == ("flask", "3.1.1", {"py3-none-any"})
    assert wheels.parse_report({"not": "a list"}) == []
    assert len(wheels.parse_report([report[0]] * (wheels.MAX_REPORTED + 5))) == wheels.MAX_REPORTED


@pytest.mark.parametrize("html", [False, True])
def test_promotion_keeps_only_files_whose_sha256_the_index_lists(index, tmp_path, html):
    index.add_project("flask", [("flask-3.1.1-py3-none-any.whl", FLASK_WHEEL, None)], html=html)
    # the index lists one hash and serves other bytes: never cached
    index.add_project("werkzeug", [("werkzeug-3.1.9-py3-none-any.whl", b"tampered", b"genuine")], html=html)
    # only the sdist is on the index: the wheel was built from source and stays in the app's cache
    index.add_project("mylib", [("mylib-1.0.tar.gz", b"sdist", None)], html=html)
    cache = wheels.WheelCache(tmp_path)
    installed = wheels.parse_report(
        [
            {"name": "Flask", "version": "3.1.1", "tags": ["py3-none-any"]},
            {"name": "werkzeug", "version": "3.1.9", "tags": ["py3-none-any"]},
            {"name": "mylib", "version": "1.0", "tags": ["cp313-cp313-linux_x86_64"]},
        ]
    )
    outcome = cache.promote(installed, wheels.Index(index.url))
    assert outcome.added == ["flask==3.1.1"]
    assert outcome.not_on_index == ["mylib==1.0"]
    assert len(outcome.errors) == 1 and "does not match the index's sha256" in outcome.errors[0]
    assert sorted(p.name for p in cache.dir.iterdir()) == ["flask-3.1.1-py3-none-any.whl"]
    assert (cache.dir / "flask-3.1.1-py3-none-any.whl").read_bytes() == FLASK_WHEEL
    assert oct(cache.dir.stat().st_mode & 0o777) == "0o755"
    assert "1 wheel(s) verified against the index and added" in outcome.summary()
    # a second build with the same wheels fetches nothing
    index.requests.clear()
    again = cache.promote(installed[:1], wheels.Index(index.url))
    assert again.present == 1 and not again.added and index.requests == []


def test_promotion_picks_the_file_with_exactly_the_installed_tags(index, tmp_path):
    other = "markupsafe-3.0.4-cp313-cp313-musllinux_1_2_x86_64.whl"
    index.add_project("markupsafe", [(other, b"musl", None), (MARKUPSAFE, b"glibc", None)])
    tags = sorted(wheels.parse_wheel(MARKUPSAFE)[2])
    outcome = wheels.WheelCache(tmp_path).promote(
        wheels.parse_report([{"name": "MarkupSafe", "version": "3.0.4", "tags": tags}]), wheels.Index(index.url)
    )
    assert outcome.added == ["markupsafe==3.0.4"]
    assert [p.name for p in (tmp_path / "wheels").iterdir()] == [MARKUPSAFE]


def test_promotion_with_the_index_unreachable_writes_nothing(tmp_path):
    outcome = wheels.WheelCache(tmp_path).promote(
        wheels.parse_report([{"name": "flask", "version": "3.1.1", "tags": ["py3-none-any"]}]), wheels.Index(dead_url())
    )
    assert not outcome.added and len(outcome.errors) == 1 and "ConnectionError" in outcome.errors[0]
    assert not list((tmp_path / "wheels").glob("*"))


def test_purge_empties_the_shared_cache(tmp_path):
    cache = wheels.WheelCache(tmp_path)
    cache.ensure()
    (cache.dir / "flask-3.1.1-py3-none-any.whl").write_bytes(b"x")
    assert cache.stats() == (1, 1)
    assert cache.purge() == 1 and cache.stats() == (0, 0)


def fake_uv_wheel(version: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"uv-{version}.data/scripts/uv", "#!/bin/sh\necho uv\n")
    return buf.getvalue()


def test_uv_is_fetched_once_and_only_with_the_pinned_hash(index, tmp_path, monkeypatch):
    filename, _ = wheels.UV_WHEELS["x86_64"]
    data = fake_uv_wheel(wheels.UV_VERSION)
    index.add_project("uv", [(filename, data, None)])  # the index lists the hash of what it serves
    # the pinned hash is not the fake's: an index cannot hand out another binary
    with pytest.raises(wheels.HashMismatch):
        wheels.ensure_uv(tmp_path, wheels.Index(index.url), "x86_64")
    assert not wheels.uv_dir(tmp_path, "x86_64").exists()
    assert [p.name for p in (tmp_path / "tools").iterdir()] == []
    monkeypatch.setitem(wheels.UV_WHEELS, "x86_64", (filename, hashlib.sha256(data).hexdigest()))
    directory, fetched = wheels.ensure_uv(tmp_path, wheels.Index(index.url), "x86_64")
    assert fetched and (directory / "uv").read_text().endswith("echo uv\n")
    assert os.stat(directory / "uv").st_mode & 0o777 == 0o755
    index.requests.clear()
    assert wheels.ensure_uv(tmp_path, wheels.Index(dead_url()), "x86_64") == (directory, False)
    assert index.requests == []


# -- the installer choice -----------------------------------------------------


def make_build(source: Path, cache: Path | None, config=None, settings=None) -> Build:
    return Build(
        app="demo",
        source=source,
        config=dict(config or {}),
        stack=TRIXIE,
        stacks=[TRIXIE],
        output=Output(quiet=True),
        settings=dict(settings or {}),
        cache_dir=cache,
    )


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A server cache with uv already in it (nothing is fetched)."""
    monkeypatch.setattr(wheels, "host_arch", lambda: "x86_64")
    root = tmp_path / "cache"
    tool = wheels.uv_dir(root, "x86_64")
    tool.mkdir(parents=True)
    (tool / "uv").write_text("")
    return root


def test_uv_is_the_default_installer_with_the_shared_cache_read_only(cache):
    deps = python.skiff_buildpack_dependencies("python", make_build(APPS / "flask", cache))
    (step,) = deps["steps"]
    uv = f"/build/uv-{wheels.UV_VERSION}/uv"
    (install,) = step["run"]
    assert step["title"] == f"Installing dependencies with uv {wheels.UV_VERSION}"
    assert step["venv"] == "/app/.venv"
    assert install[:6] == [uv, "pip", "install", "--python", "/app/.venv/bin/python", "-r"]
    assert install[-4:] == ["--default-index", "https://pypi.org/simple", "--find-links", "/build/wheels"]
    # the flask app may make a shared virtualenv layer: its bytecode is compiled there, not in the build
    assert step["compile"] == {"venv": "/app/.venv", "wheels": "/build/wheels", "defer": True}
    assert step["env"]["UV_CACHE_DIR"] == "/build/cache/uv"  # the app's own cache volume, read-write
    assert deps["read_only"] == {
        f"/build/uv-{wheels.UV_VERSION}": str(wheels.uv_dir(cache, "x86_64")),
        "/build/wheels": str(cache / "wheels"),
    }
    assert step["report_installed"] == "/app/.venv"
    assert step["fallback"]["instead_of"] == install and step["fallback"]["run"] == [*install, "--offline"]
    assert len(deps["after_install"]) == 1


def test_pip_stays_as_a_per_app_setting(cache):
    build = make_build(APPS / "flask", cache, settings={"python-installer": "pip"})
    deps = python.skiff_buildpack_dependencies("python", build)
    (step,) = deps["steps"]
    assert step["title"] == "Installing dependencies with pip"
    assert step["run"][0] == ["python3", "-m", "venv", "--without-pip", "/app/.venv"]
    assert step["run"][1][:3] == ["python3", "-m", "pip"]
    assert "read_only" not in deps and "after_install" not in deps


def test_lock_files_install_with_uv(cache, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text("[project]\nname='demo'\n")
    (src / "poetry.lock").write_text('[[package]]\nname = "flask"\nversion = "3.1.1"\ngroups = ["main"]\n')
    deps = python.skiff_buildpack_dependencies("python", make_build(src, cache))
    (step,) = deps["steps"]
    assert step["title"] == f"Installing dependencies with uv {wheels.UV_VERSION} (from poetry.lock)"
    assert step["run"][0][5:7] == ["-r", ".skiff/requirements.txt"]


@pytest.mark.parametrize(
    "config, requirements, why",
    [
        ({"UV_INDEX_URL": "https://private.example/simple"}, "flask\n", "config var UV_INDEX_URL"),
        ({"PIP_EXTRA_INDEX_URL": "https://private.example/simple"}, "flask\n", "config var PIP_EXTRA_INDEX_URL"),
        ({}, "--extra-index-url https://private.example/simple\nflask\n", "requirements.txt: --extra-index-url"),
        ({}, "-i https://private.example/simple\nflask\n", "requirements.txt: -i"),
    ],
)
def test_an_app_index_of_its_own_never_sees_the_shared_cache(cache, tmp_path, config, requirements, why):
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text(requirements)
    deps = python.skiff_buildpack_dependencies("python", make_build(src, cache, config=config))
    (step,) = deps["steps"]
    assert "/build/wheels" not in deps["read_only"] and "after_install" not in deps
    assert "--find-links" not in step["run"][0] and "report_installed" not in step
    assert any(why in note and "shared wheel cache is not used" in note for note in deps["notes"])
    if "PIP_EXTRA_INDEX_URL" in config:
        assert step["env"]["UV_EXTRA_INDEX_URL"] == config["PIP_EXTRA_INDEX_URL"]


def test_without_uv_on_the_server_and_no_index_pip_installs(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels, "host_arch", lambda: "x86_64")
    build = make_build(APPS / "flask", tmp_path / "cache", settings={"python-index": dead_url()})
    deps = python.skiff_buildpack_dependencies("python", build)
    assert deps["steps"][0]["title"] == "Installing dependencies with pip"
    assert any("could not be fetched" in w and "using pip" in w for w in deps["warnings"])


def test_python_installer_setting_is_declared(skiff):
    import skiff_buildpacks.plugin as bp

    h = skiff(("buildpacks", bp), ("buildpack-python", python))
    h.create_app("demo")
    assert h.invoke("buildpacks:set", "demo", "python-installer", "pip").exit_code == 0
    assert bp.settings(h.context, "demo")["python-installer"] == "pip"
    bad = h.invoke("buildpacks:set", "demo", "python-installer", "conda")
    assert bad.exit_code != 0 and "must be one of uv, pip" in bad.stderr
    assert bp.settings(h.context, "demo")["python-installer"] == "pip"
    denied = h.invoke("buildpacks:set", "demo", "python-index", "https://example.org/simple")
    assert denied.exit_code != 0


# -- the driver's side ----------------------------------------------------------


def test_driver_reports_what_the_venv_holds(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.13" / "site-packages"
    for name, version, tags in (("Flask", "3.1.1", ["py3-none-any"]), ("MarkupSafe", "3.0.4", ["cp313-cp313-x"])):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not me\n")
        (info / "WHEEL").write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {t}\n" for t in tags))
    (site / "broken-1.dist-info").mkdir()
    found = sorted(driver.installed(str(tmp_path / "venv")), key=lambda d: d["name"])
    assert found == [
        {"name": "Flask", "version": "3.1.1", "tags": ["py3-none-any"]},
        {"name": "MarkupSafe", "version": "3.0.4", "tags": ["cp313-cp313-x"]},
    ]


def _script(tmp_path: Path, name: str, text: str, code: int) -> list[str]:
    path = tmp_path / name
    path.write_text(f"import sys\nprint({text!r})\nsys.exit({code})\n")
    return [sys.executable, str(path)]


def test_driver_falls_back_only_on_a_network_failure(tmp_path, capfd):
    env = {"PATH": os.environ["PATH"]}
    offline = _script(tmp_path, "offline.py", "installed offline", 0)
    net = _script(tmp_path, "net.py", "error: tcp connect error", 1)
    step = {
        "title": "t",
        "cwd": str(tmp_path),
        "run": [net],
        "fallback": {"instead_of": net, "when": ["tcp connect"], "note": "retry", "run": offline},
    }
    assert driver.run_step(step, env) == 0
    out = capfd.readouterr().out
    assert "tcp connect error" in out and "retry" in out and "installed offline" in out
    unsolvable = _script(tmp_path, "solve.py", "No solution found", 1)
    step = {**step, "run": [unsolvable], "fallback": {**step["fallback"], "instead_of": unsolvable}}
    assert driver.run_step(step, env) == 1
    assert "installed offline" not in capfd.readouterr().out


def test_progress_keeps_the_drivers_report():
    progress = Progress(Output(quiet=True))
    progress.feed(b'\x1e{"report": "installed", "data": [{"name": "flask"}]}\n')
    assert progress.reports == {"installed": [{"name": "flask"}]}


def test_purge_shared_cache_is_global_and_refused_to_deployers(skiff):
    import skiff_buildpacks.plugin as bp
    from skiff.testing import KeyRole

    h = skiff(("buildpacks", bp), ("buildpack-python", python), ("roles", KeyRole("deployer")))
    cache = wheels.WheelCache(h.context.path("cache", "buildpacks"))
    cache.ensure()
    (cache.dir / "flask-3.1.1-py3-none-any.whl").write_bytes(b"x" * 1024)
    refused = h.ssh("buildpacks:purge-shared-cache")
    assert refused.exit_code != 0 and cache.stats()[0] == 1
    done = h.invoke("buildpacks:purge-shared-cache")
    assert done.exit_code == 0 and "Purged the shared wheel cache: 1 file(s)" in done.stdout
    assert cache.stats() == (0, 0)
    assert "it was empty" in h.invoke("buildpacks:purge-shared-cache").stdout


# -- precompiled bytecode -------------------------------------------------------


def _tar(entries: dict[str, bytes]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_bundles_from_the_compile_container_are_checked_before_they_are_kept(tmp_path):
    cache = wheels.WheelCache(tmp_path)
    cache.ensure()
    good = _tar({"flask/__pycache__/app.cpython-313.pyc": b"pyc"})
    bad = _tar({"flask/__pycache__/app.cpython-313.pyc": b"pyc", "../../evil.cpython-313.pyc": b"x"})
    outer = _tar(
        {
            "cpython-313/flask-3.1.1-py3-none-any.whl.tar": good,
            "cpython-313/evil-1-py3-none-any.whl.tar": bad,
            "cpython-313/unasked-1-py3-none-any.whl.tar": good,
        }
    )
    wanted = {"flask-3.1.1-py3-none-any.whl", "evil-1-py3-none-any.whl"}
    assert wheels._keep_bundles(io.BytesIO(outer), cache, "cpython-313", wanted) == 1
    assert [p.name for p in (cache.dir / "pyc-cpython-313").iterdir()] == ["flask-3.1.1-py3-none-any.whl.tar"]
    assert wheels.bundle_member_ok("a/b/__pycache__/c.cpython-313.pyc", "cpython-313")
    for name in ("__pycache__/../x.cpython-313.pyc", "a/x.cpython-313.pyc", "a/__pycache__/x.cpython-312.pyc"):
        assert not wheels.bundle_member_ok(name, "cpython-313")
    with pytest.raises(Exception, match="invalid bytecode tag"):
        wheels.missing_bundles(cache, "../x", ["a"])
    assert wheels.pyc_tag("3.13.5") == "cpython-313"


def test_the_compile_script_makes_checked_hash_bytecode_a_venv_accepts(tmp_path):
    """COMPILE_SCRIPT (what the compile container runs), here with this interpreter; the driver places its output."""
    import importlib.util
    import subprocess
    import tarfile

    wheel_dir = tmp_path / "w"
    wheel_dir.mkdir()
    with zipfile.ZipFile(wheel_dir / "demo-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("demo/__init__.py", "VALUE = 42\n")
        zf.writestr("demo/broken.py", "def (:\n")
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.data/scripts/tool.py", "print(1)\n")
    script = wheels.COMPILE_SCRIPT.replace('"/w/"', repr(str(wheel_dir) + "/"))
    script = script.replace("/tmp/out", str(tmp_path / "out"))
    subprocess.run([sys.executable, "-c", script, "demo-1.0-py3-none-any.whl"], check=True)
    tag = sys.implementation.cache_tag
    with tarfile.open(tmp_path / "out" / tag / "demo-1.0-py3-none-any.whl.tar") as tf:
        names = tf.getnames()
    assert names == [f"demo/__pycache__/__init__.{tag}.pyc"]  # broken.py, scripts and dist-info left out
    # the driver copies it into a venv holding that wheel
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.99" / "site-packages"
    (site / "demo").mkdir(parents=True)
    (site / "demo" / "__init__.py").write_text("VALUE = 42\n")
    info = site / "demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: demo\nVersion: 1.0\n")
    (info / "WHEEL").write_text("Tag: py3-none-any\n")
    shared = tmp_path / "shared"
    (shared / f"pyc-{tag}").mkdir(parents=True)
    (shared / "demo-1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "out" / tag / "demo-1.0-py3-none-any.whl.tar").rename(
        shared / f"pyc-{tag}" / "demo-1.0-py3-none-any.whl.tar"
    )
    assert driver.place_bytecode(str(venv), str(shared)) == 1
    pyc = site / "demo" / "__pycache__" / f"__init__.{tag}.pyc"
    data = pyc.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(data[4:8], "little") == 0b11  # checked hash
    spec = importlib.util.spec_from_file_location("demo", site / "demo" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.VALUE == 42


def test_driver_compiles_only_what_has_no_bytecode(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.99" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "done.py").write_text("A = 1\n")
    (site / "todo.py").write_text("B = 2\n")
    tag = sys.implementation.cache_tag
    (site / "__pycache__").mkdir()
    (site / "__pycache__" / f"done.{tag}.pyc").write_bytes(b"placed")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    assert driver.compile_missing(str(venv), str(tmp_path), dict(os.environ)) == 0
    assert (site / "__pycache__" / f"done.{tag}.pyc").read_bytes() == b"placed"
    assert (site / "__pycache__" / f"todo.{tag}.pyc").is_file()


def test_driver_makes_the_venv_in_process(tmp_path):
    target = tmp_path / "venv"
    assert driver.run_step({"venv": str(target), "cwd": str(tmp_path), "run": []}, {"PATH": os.environ["PATH"]}) == 0
    assert (target / "pyvenv.cfg").is_file() and (target / "bin" / "python").exists()
    assert not list(target.glob("lib/python*/site-packages/pip"))
    # again on top (an additive layer): kept
    (target / "keep").write_text("x")
    assert driver.run_step({"venv": str(target), "cwd": str(tmp_path), "run": []}, {"PATH": os.environ["PATH"]}) == 0
    assert (target / "keep").is_file()


def test_one_build_cannot_make_skiff_download_without_bound(index, tmp_path, monkeypatch):
    for n in range(3):
        index.add_project(f"p{n}", [(f"p{n}-1.0-py3-none-any.whl", b"x" * 100, None)])
    monkeypatch.setattr(wheels, "PROMOTE_BYTES", 150)
    report = [{"name": f"p{n}", "version": "1.0", "tags": ["py3-none-any"]} for n in range(3)]
    cache = wheels.WheelCache(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(
            wheels,
            "ThreadPoolExecutor",
            lambda max_workers: __import__("concurrent.futures").futures.ThreadPoolExecutor(1),
        )
        outcome = cache.promote(wheels.parse_report(report), wheels.Index(index.url))
    assert len(outcome.added) == 2 and outcome.errors == ["p2==1.0: over the download budget of one build"]


def test_driver_leaves_the_bytecode_to_the_shared_layer_when_told(tmp_path, capfd):
    """``defer``: the cached bytecode is placed, the rest left to the shared layer (made beside the deploy)."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.99" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "todo.py").write_text("B = 2\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    step = {"title": "t", "cwd": str(tmp_path), "run": [], "compile": {"venv": str(venv), "wheels": None}}
    assert driver.run_step({**step, "compile": {**step["compile"], "defer": True}}, {"PATH": os.environ["PATH"]}) == 0
    out = capfd.readouterr().out
    assert not (site / "__pycache__").exists()
    assert "compiled beside the deploy, in the shared layer" in out
    assert driver.MARK + json.dumps({"report": "bytecode", "data": "deferred"}) in out
    # without it, as before: compiled in the build
    assert driver.run_step(step, {"PATH": os.environ["PATH"]}) == 0
    assert (site / "__pycache__" / f"todo.{sys.implementation.cache_tag}.pyc").is_file()
    assert "deferred" not in capfd.readouterr().out


def test_bytecode_is_compiled_in_the_build_when_no_shared_layer_can_be_made(cache, tmp_path):
    # an option line: not shareable, so no shared layer would ever hold this app's bytecode
    (tmp_path / "requirements.txt").write_text("--pre\nflask\n")
    deps = python.skiff_buildpack_dependencies("python", make_build(tmp_path, cache))
    assert "defer" not in deps["steps"][0]["compile"] and "shared_venv" not in deps["steps"][0]
