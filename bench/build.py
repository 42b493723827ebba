"""Build times of the Flask sample app: buildpacks builder (uv) vs a plain hand-written Dockerfile.

For each round, in the same run and on the same engine:

- plain Dockerfile (``docker build``, classic builder): cold (``--no-cache``),
  code-only change (cached), dependency change;
- skiff buildpacks (``lifecycle.deploy`` with a stub scheduler, a fresh app and
  SKIFF_ROOT each round, the stack plugin loaded as on a server, so app images are based on
  the stack's run image and a new dependency layer is copied onto it): cold (no dependency layer, empty app cache, empty
  shared wheel cache), code-only change, dependency change; then a second app
  with the Flask sample's requirements on the same server (its own cache empty,
  the shared wheel cache filled by the first app's build).

uv itself is fetched once per server (like the stack image, it is there before
the first build): the bench fetches it once, times that on its own, and gives
every round's fresh SKIFF_ROOT a hard link of it.

Prints medians and ratios against the plain Dockerfile. Targets: cold <= 0.35x,
second app <= 1.5 s, code-only rebuild < 1.0 s. The second app is also shown against a bare
``docker run --rm`` of the stack (same run): the engine's floor for one networked container. Needs the stack image (make
stack) and network access to PyPI (with the host CA bundle).

    .venv/bin/python bench/build.py          # BENCH_RUNS rounds (default 3)
    BENCH_AB=after-install .venv/bin/python bench/build.py   # also Skiff with one change off (AB_NAMES)
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs, time_command  # noqa: E402

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
        # the engine's own floor for a build step that needs the network: one bare docker run
        run = time_command(["docker", "run", "--rm", "--label", "skiff.bench=1", STACK, "true"])
        src = fresh_source(self.tmp)
        cold = self._build(src, no_cache=True)
        code_change(src)
        code = self._build(src, no_cache=False)
        dependency_change(src)
        deps = self._build(src, no_cache=False)
        return {"cold": cold, "code": code, "deps": deps, "run": run}

    def cleanup(self) -> None:
        if self.tags:
            subprocess.run(["docker", "rmi", "-f", *self.tags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# BENCH_AB's comparisons: Skiff now against Skiff with one change's flags off
AB_NAMES = {
    "2026-12-07": "commit, bytecode",  # the dependency container committed, the venv byte-compiled in the build
    "after-install": "after-install work beside the code layer",  # started when the install ended
}


def ab_flags() -> dict[str, list[tuple[object, str]]]:
    import skiff_buildpacks.python as python
    from skiff_buildpacks import pipeline

    return {
        "2026-12-07": [(pipeline, "LOAD_DEPENDENCY_LAYER"), (python, "DEFER_BYTECODE")],
        "after-install": [(pipeline, "AFTER_INSTALL_AFTER_CODE")],
    }


class Skiff:
    """The buildpacks builder through the real lifecycle (stub scheduler)."""

    def __init__(self, tmp: Path, now: bool = True, ab: str = "2026-12-07"):
        from skiff_buildpacks import wheels

        self.tmp = tmp
        # False: the flags of ab_flags()[ab] off in this case's rounds (as before that change)
        self.now = now
        self.ab = ab
        self.apps: list[str] = []
        self.roots: list[Path] = []
        self.shared: list[bool] = []  # per round: the second app's dependencies were the shared layer
        self.background: list[float] = []  # waited for the shared-cache work before the second app
        self.on_run_image: list[bool] = []  # per round: the cold build's app image is on the stack's run image
        self.tools = tmp / "tools-cache"
        start = time.perf_counter()
        verify = CA if os.path.isfile(CA) else True
        self.uv_dir, _ = wheels.ensure_uv(self.tools, wheels.Index(wheels.DEFAULT_INDEX, verify), wheels.host_arch())
        self.uv_fetch = time.perf_counter() - start

    def _seed_uv(self, root: Path) -> None:
        target = root / "cache" / "buildpacks" / self.uv_dir.relative_to(self.tools)
        target.mkdir(parents=True)
        os.link(self.uv_dir / "uv", target / "uv")

    def round(self) -> dict[str, float]:
        import skiff_buildpacks.node as node
        import skiff_buildpacks.plugin as bp
        import skiff_buildpacks.python as python
        import skiff_buildpacks.static as static
        import skiff_procfile.plugin as procfile
        import skiff_stack.plugin as stack
        from skiff import lifecycle
        from skiff.context import Context
        from skiff.output import Output
        from skiff.testing import DirReceiver, StubScheduler, dir_source, make_plugin_manager

        flags = ab_flags()
        for module, flag in (m for changed in flags.values() for m in changed):
            setattr(module, flag, True)
        if not self.now:
            for module, flag in flags[self.ab]:
                setattr(module, flag, False)
        root = Path(tempfile.mkdtemp(prefix="root-", dir=self.tmp))
        self.roots.append(root)
        pm = make_plugin_manager(
            DirReceiver(),
            ("procfile", procfile),
            ("stack", stack),  # as on a server: app images on the stack's run image (run-image, default on)
            ("buildpacks", bp),
            ("buildpack-python", python),
            ("buildpack-node", node),
            ("buildpack-static", static),
            StubScheduler(),
        )
        self._seed_uv(root)
        context = Context(pm, root=root, output=Output(quiet=True))

        def new_app() -> str:
            app = f"bench{secrets.token_hex(3)}"
            self.apps.append(app)
            context.create_app(app)
            return app

        def deploy(app: str, src: Path) -> float:
            start = time.perf_counter()
            lifecycle.deploy(context, app, dir_source(src))
            return time.perf_counter() - start

        app, src = new_app(), fresh_source(self.tmp)
        cold = deploy(app, src)
        release = context.state.current_release(app)
        self.on_run_image.append(bool(release is not None and release.meta.get("run_image")))
        code_change(src)
        code = deploy(app, src)
        dependency_change(src)
        deps = deploy(app, src)
        from skiff_buildpacks.pipeline import wait_background

        waited = time.perf_counter()
        wait_background()  # the first app's shared-cache work, done beside its later builds
        self.background.append(time.perf_counter() - waited)
        other = new_app()
        second = deploy(other, fresh_source(self.tmp))
        context.close()
        self.shared.append(uses_shared_layer(other))
        return {"cold": cold, "code": code, "deps": deps, "second": second}

    def cleanup(self) -> None:
        import docker

        from skiff_buildpacks.venvs import SharedVenvs

        client = docker.from_env()
        for root in self.roots:  # the shared virtualenv layers Skiff made in this run
            SharedVenvs(root / "cache" / "buildpacks", "").purge(lambda: client)
        for app in self.apps:
            for label in (f"skiff.app={app}", f"skiff.deps={app}", f"skiff.deps.run={app}"):
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


def uses_shared_layer(app: str) -> bool:
    """True if ``app``'s dependency image is a shared virtualenv layer (its label carries the hash)."""
    import docker

    from skiff_buildpacks.venvs import LABEL

    images = docker.from_env().images.list(filters={"label": f"skiff.deps={app}"})
    return bool(images) and all((image.labels or {}).get(LABEL) for image in images)


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
        # BENCH_AB=1 (or a name of AB_FLAGS): also Skiff as before that change, in the same interleaved rounds
        ab = os.environ.get("BENCH_AB", "")
        ab = "2026-12-07" if ab == "1" else ab
        if ab and ab not in AB_NAMES:
            raise SystemExit(f"BENCH_AB: one of 1, {', '.join(AB_NAMES)}")
        before = Skiff(Path(tmp), now=False, ab=ab) if ab else None
        results: dict[str, dict[str, list[float]]] = {"plain": {}, "skiff": {}, "before": {}}

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

        cases = {"plain": case("plain", plain), "skiff": case("skiff", ours)}
        if before is not None:
            cases["before"] = case("before", before)
        try:
            interleave(cases, n)
        finally:
            wait_for_engine()
            plain.cleanup()
            ours.cleanup()
            if before is not None:
                before.cleanup()
    labels = {"cold": "cold build", "code": "code-only rebuild", "deps": "dependency-change rebuild"}
    print(f"\n  uv {ours.uv_dir.name}: fetched and verified once in {ours.uv_fetch:.2f}s (not part of any build)")
    for key, label in labels.items():
        rows = {
            f"plain Dockerfile, {label}": results["plain"][key],
            f"skiff buildpacks, {label}": results["skiff"][key],
        }
        if results["before"]:
            rows[f"skiff as before ({AB_NAMES[ab]}), {key}"] = results["before"][key]
        report(f"build: {label} (Flask app)", rows, baseline=f"plain Dockerfile, {label}")
    if ours.background:
        print(f"\n  waited {max(ours.background):.2f}s at most for background shared-cache work before a second app")
    second_rows = {
        "docker run --rm STACK true (network)": results["plain"]["run"],
        "skiff buildpacks, second app (shared layer)": results["skiff"]["second"],
    }
    if results["before"]:
        second_rows[f"skiff as before ({AB_NAMES[ab]}), second app"] = results["before"]["second"]
    report(
        "build: second app, same requirements (Flask app)", second_rows, baseline="docker run --rm STACK true (network)"
    )
    print(
        f"\n  second app's dependencies were the shared virtualenv layer in "
        f"{sum(ours.shared)}/{len(ours.shared)} rounds; the cold build's image was on the stack's run image in "
        f"{sum(ours.on_run_image)}/{len(ours.on_run_image)} rounds"
    )

    def median(values: list[float]) -> float:
        return statistics.median(values)

    cold, plain_cold = median(results["skiff"]["cold"]), median(results["plain"]["cold"])
    code, second = median(results["skiff"]["code"]), median(results["skiff"]["second"])
    print(
        f"\n  targets: cold {cold / plain_cold:.2f}x of plain (<= 0.35x), second app {second:.2f}s (<= 1.5s), "
        f"code-only {code:.2f}s (< 1.0s)"
    )


if __name__ == "__main__":
    main()
