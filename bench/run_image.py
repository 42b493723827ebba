"""The run image against the build image: image sizes, and build times of the Flask sample on each.

Sizes (``docker image inspect``): the build image ``skiff/stack:trixie``, its run image
``skiff/stack-run:trixie`` (derived first when missing, and timed), and an app image of the
Flask sample on each.

Build times, same run, rounds interleaved: the buildpacks builder through the real lifecycle
(stub scheduler, a fresh app and SKIFF_ROOT each round), once with ``run-image true`` (the app
image on the run image: the dependency layer is copied onto it) and once with ``run-image false``
(on the build image, as before run images): cold build, then a code-only rebuild. Prints medians
and ratios against the build-image baseline. Needs the stack image (make stack) and PyPI.

    .venv/bin/python bench/run_image.py          # BENCH_RUNS rounds (default 3)
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# isort: off
# (ruff sorts `build` as first-party only where a plugin's setuptools build/ dir exists)
from _common import interleave, report, runs  # noqa: E402
from build import Skiff, code_change, fresh_source, wait_for_engine  # noqa: E402

# isort: on

STACK = "skiff/stack:trixie"
RUN = "skiff/stack-run:trixie"


class OnImage(Skiff):
    """The Flask sample built with the run image on or off."""

    def __init__(self, tmp: Path, run_image: bool):
        super().__init__(tmp)
        self.run_image = run_image
        self.sizes: list[int] = []

    def round(self) -> dict[str, float]:
        import docker

        import skiff_buildpacks.plugin as bp
        import skiff_buildpacks.python as python
        import skiff_procfile.plugin as procfile
        import skiff_stack.plugin as stack
        from skiff import lifecycle
        from skiff.context import Context
        from skiff.output import Output
        from skiff.testing import DirReceiver, StubScheduler, dir_source, make_plugin_manager

        root = Path(tempfile.mkdtemp(prefix="root-", dir=self.tmp))
        pm = make_plugin_manager(
            DirReceiver(),
            ("procfile", procfile),
            ("stack", stack),
            ("buildpacks", bp),
            ("buildpack-python", python),
            StubScheduler(),
        )
        self._seed_uv(root)
        context = Context(pm, root=root, output=Output(quiet=True))
        bp.SETTINGS.set(context, "run-image", "true" if self.run_image else "false")
        app = f"bench{secrets.token_hex(3)}"
        self.apps.append(app)
        context.create_app(app)

        def deploy(src: Path) -> float:
            start = time.perf_counter()
            lifecycle.deploy(context, app, dir_source(src))
            return time.perf_counter() - start

        src = fresh_source(self.tmp)
        cold = deploy(src)
        code_change(src)
        code = deploy(src)
        release = context.state.current_release(app)
        assert release is not None and bool(release.meta.get("run_image")) == self.run_image, release.meta
        self.sizes.append(docker.from_env().images.get(release.image).attrs["Size"])
        context.close()
        return {"cold": cold, "code": code}

    def cleanup(self) -> None:
        import docker

        super().cleanup()
        client = docker.from_env()
        for app in self.apps:
            for image in client.images.list(filters={"label": f"skiff.deps.run={app}"}):
                try:
                    client.images.remove(image.id, force=True)
                except Exception:
                    pass


def run_image() -> float:
    """Derive the run image if it is not current; the seconds it took (0 when it was there)."""
    import skiff_stack.plugin  # noqa: F401 (the plugin's modules)
    from skiff.output import Output
    from skiff_stack import build, run

    client = build.docker_client()
    labels = build.labels_of(client, RUN)
    if run.is_current(labels, client.images.get(STACK).id):
        return 0.0
    start = time.perf_counter()
    run.build_run(client, STACK, Output())
    return time.perf_counter() - start


def main() -> None:
    import docker

    wait_for_engine()
    derived = run_image()
    client = docker.from_env()
    sizes = {ref: client.images.get(ref).attrs["Size"] for ref in (STACK, RUN)}
    n = runs(3)
    with tempfile.TemporaryDirectory(prefix="skiff-bench-run-image-") as tmp:
        on_run, on_build = OnImage(Path(tmp), True), OnImage(Path(tmp), False)
        results: dict[str, dict[str, list[float]]] = {"run": {}, "build": {}}

        def case(name: str, runner: OnImage):
            def one() -> float:
                for key, value in runner.round().items():
                    results[name].setdefault(key, []).append(value)
                return 0.0

            return one

        try:
            interleave({"build": case("build", on_build), "run": case("run", on_run)}, n)
        finally:
            wait_for_engine()
            on_run.cleanup()
            on_build.cleanup()
    print(f"\n  build image {STACK}: {sizes[STACK] / 1e6:.0f} MB")
    print(
        f"  run image   {RUN}: {sizes[RUN] / 1e6:.0f} MB ({sizes[RUN] / sizes[STACK]:.0%} of it)"
        + (f", derived in {derived:.1f}s" if derived else "")
    )
    print(
        f"  Flask app image: {max(on_build.sizes) / 1e6:.0f} MB on the build image, "
        f"{max(on_run.sizes) / 1e6:.0f} MB on the run image"
    )
    report(
        "run image: size (MB)",
        {"build image": [sizes[STACK] / 1e6], "run image": [sizes[RUN] / 1e6]},
        "MB",
        "build image",
    )
    for key, label in {"cold": "cold build", "code": "code-only rebuild"}.items():
        report(
            f"run image: {label} (Flask app)",
            {f"on the build image, {label}": results["build"][key], f"on the run image, {label}": results["run"][key]},
            baseline=f"on the build image, {label}",
        )


if __name__ == "__main__":
    main()
