"""Build times of the Flask sample app: buildpacks builder vs a plain hand-written Dockerfile.

For each round, in the same run and on the same engine:

- plain Dockerfile (``docker build``, classic builder): cold (``--no-cache``),
  code-only change (cached), dependency change;
- skiff buildpacks (``lifecycle.deploy`` with a stub scheduler, a fresh app and
  SKIFF_ROOT each round): cold (no dependency layer, empty package cache),
  code-only change, dependency change.

Prints medians and ratios against the plain Dockerfile. Targets: cold <= 0.6x,
code-only rebuild < 1.0 s. Needs the stack image (make stack) and network
access to PyPI (with the host CA bundle).

    .venv/bin/python bench/build.py          # BENCH_RUNS rounds (default 3)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "flask"
STACK = "skiff/stack:trixie"
CA = "/etc/ssl/certs/ca-certificates.crt"
EXTRA_REQUIREMENT = "six==1.17.0\n"

PLAIN_DOCKERFILE = f"""\
FROM {STACK}
ENV PIP_CERT=/etc/skiff-bench-ca.crt PYTHONUNBUFFERED=1
COPY ca.crt /etc/skiff-bench-ca.crt
WORKDIR /app
COPY requirements.txt /app/
RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
COPY . /app/
ENV PATH=/app/.venv/bin:$PATH
CMD gunicorn --bind 0.0.0.0:$PORT app:app
"""


def fresh_source(tmp: Path) -> Path:
    src = tmp / f"src-{secrets.token_hex(3)}"
    shutil.copytree(APP, src)
    return src


def code_change(src: Path) -> None:
    app = src / "app.py"
    app.write_text(app.read_text() + f"\n# change {secrets.token_hex(4)}\n")


def dependency_change(src: Path) -> None:
    req = src / "requirements.txt"
    req.write_text(req.read_text() + EXTRA_REQUIREMENT)


class Plain:
    """The hand-written Dockerfile, built with the docker CLI (classic builder)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.tags: list[str] = []

    def _build(self, src: Path, no_cache: bool) -> float:
        (src / "Dockerfile").write_text(PLAIN_DOCKERFILE)
        shutil.copyfile(CA, src / "ca.crt")
        tag = f"skiff-bench/plain:{secrets.token_hex(4)}"
        self.tags.append(tag)
        argv = (
            ["docker", "build", "-q", "-t", tag, "--label", "skiff.bench=1"]
            + (["--no-cache"] if no_cache else [])
            + [str(src)]
        )
        start = time.perf_counter()
        subprocess.run(argv, env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    def round(self) -> dict[str, float]:
        src = fresh_source(self.tmp)
        cold = self._build(src, no_cache=True)
        code_change(src)
        code = self._build(src, no_cache=False)
        dependency_change(src)
        deps = self._build(src, no_cache=False)
        return {"cold": cold, "code": code, "deps": deps}

    def cleanup(self) -> None:
        if self.tags:
            subprocess.run(["docker", "rmi", "-f", *self.tags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Skiff:
    """The buildpacks builder through the real lifecycle (stub scheduler)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.apps: list[str] = []

    def round(self) -> dict[str, float]:
        import skiff_buildpacks.node as node
        import skiff_buildpacks.plugin as bp
        import skiff_buildpacks.python as python
        import skiff_buildpacks.static as static
        import skiff_procfile.plugin as procfile
        from skiff import lifecycle
        from skiff.context import Context
        from skiff.output import Output
        from skiff.testing import DirReceiver, StubScheduler, dir_source, make_plugin_manager

        root = Path(tempfile.mkdtemp(prefix="root-", dir=self.tmp))
        pm = make_plugin_manager(
            DirReceiver(),
            ("procfile", procfile),
            ("buildpacks", bp),
            ("buildpack-python", python),
            ("buildpack-node", node),
            ("buildpack-static", static),
            StubScheduler(),
        )
        context = Context(pm, root=root, output=Output(quiet=True))
        app = f"bench{secrets.token_hex(3)}"
        self.apps.append(app)
        context.create_app(app)
        src = fresh_source(self.tmp)

        def deploy() -> float:
            start = time.perf_counter()
            lifecycle.deploy(context, app, dir_source(src))
            return time.perf_counter() - start

        cold = deploy()
        code_change(src)
        code = deploy()
        dependency_change(src)
        deps = deploy()
        context.close()
        return {"cold": cold, "code": code, "deps": deps}

    def cleanup(self) -> None:
        import docker

        client = docker.from_env()
        for app in self.apps:
            for label in (f"skiff.app={app}", f"skiff.deps={app}"):
                images = sorted(
                    client.images.list(filters={"label": label}), key=lambda i: i.attrs["Created"], reverse=True
                )
                for image in images:
                    try:
                        client.images.remove(image.id, force=True)
                    except Exception:
                        pass
            for volume in client.volumes.list(filters={"label": f"skiff.cache={app}"}):
                volume.remove(force=True)


def wait_for_engine(timeout: float = 120) -> None:
    """Other suites may restart dockerd on this machine: wait until it answers."""
    import docker

    deadline = time.monotonic() + timeout
    while True:
        try:
            docker.from_env().ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def main() -> None:
    wait_for_engine()
    n = runs(3)
    with tempfile.TemporaryDirectory(prefix="skiff-bench-build-") as tmp:
        plain, ours = Plain(Path(tmp)), Skiff(Path(tmp))
        results: dict[str, dict[str, list[float]]] = {"plain": {}, "skiff": {}}

        def case(name: str, runner):
            def run() -> float:
                for _attempt in range(3):
                    try:
                        values = runner.round()
                        break
                    except Exception as exc:  # e.g. another suite restarted dockerd mid-round
                        print(f"  ({name} round failed: {type(exc).__name__}: {str(exc)[:120]}; retrying)", flush=True)
                        wait_for_engine()
                else:
                    raise RuntimeError(f"{name}: three failed rounds in a row")
                for key, value in values.items():
                    results[name].setdefault(key, []).append(value)
                return 0.0

            return run

        try:
            interleave({"plain": case("plain", plain), "skiff": case("skiff", ours)}, n)
        finally:
            wait_for_engine()
            plain.cleanup()
            ours.cleanup()
    labels = {"cold": "cold build", "code": "code-only rebuild", "deps": "dependency-change rebuild"}
    for key, label in labels.items():
        report(
            f"build: {label} (Flask app)",
            {
                f"plain Dockerfile, {label}": results["plain"][key],
                f"skiff buildpacks, {label}": results["skiff"][key],
            },
            baseline=f"plain Dockerfile, {label}",
        )
    cold = sorted(results["skiff"]["cold"])[len(results["skiff"]["cold"]) // 2]
    plain_cold = sorted(results["plain"]["cold"])[len(results["plain"]["cold"]) // 2]
    code = sorted(results["skiff"]["code"])[len(results["skiff"]["code"]) // 2]
    print(f"\n  targets: cold {cold / plain_cold:.2f}x of plain (<= 0.60x), code-only {code:.2f}s (< 1.0s)")


if __name__ == "__main__":
    main()
