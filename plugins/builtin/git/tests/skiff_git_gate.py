"""Test plugin for the git e2e tests: a build that waits at a gate.

A source with a ``GATE`` file (JSON ``{"announce": PATH, "wait": PATH}``)
touches ``announce`` when its build starts, prints a line, and waits until
``wait`` exists (at most 20 s, then the build fails). Loaded into the
server-side skiff with ``SKIFF_PLUGINS`` and ``PYTHONPATH``.
"""
import json
import time
from pathlib import Path

from skiff import hookimpl

TIMEOUT = 20.0


@hookimpl(tryfirst=True)
def skiff_build(deploy):
    gate = deploy.workdir / "GATE"
    if not gate.exists():
        return None
    spec = json.loads(gate.read_text())
    if spec.get("announce"):
        Path(spec["announce"]).touch()
    deploy.output.info(f"gate: waiting for {spec['wait']}")
    deadline = time.monotonic() + TIMEOUT
    while not Path(spec["wait"]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate: {spec['wait']} did not appear")
        time.sleep(0.02)
    deploy.output.info("gate: open")
    return None
