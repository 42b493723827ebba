"""Test plugin for the git e2e tests: a build that waits at a gate, and a probe.

A source with a ``PROBE`` file (a path) gets a JSON report written there at
build time: the files of the workdir, the push-lock files a process started by
the build inherits (``close_fds=False``: every inheritable descriptor), and,
when it has a ``.git``, its HEAD and ``git status --porcelain``.

A source with a ``GATE`` file (JSON ``{"announce": PATH, "wait": PATH}``)
touches ``announce`` when its build starts, prints a line, and waits until
``wait`` exists (at most 20 s, then the build fails). Loaded into the
server-side skiff with ``SKIFF_PLUGINS`` and ``PYTHONPATH``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from skiff import hookimpl

TIMEOUT = 20.0
INHERITED_LOCKS = """
import json, os
found = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if "/git-push-" in target:
        found.append(target)
print(json.dumps(found))
"""


def _probe(workdir: Path) -> None:
    files = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file() and ".git" not in p.parts)
    listed = subprocess.run(
        [sys.executable, "-c", INHERITED_LOCKS], capture_output=True, text=True, close_fds=False, check=True
    )
    locks = json.loads(listed.stdout)
    report = {"files": files, "head": None, "status": None, "push_lock_fds": locks}
    if (workdir / ".git").is_dir():

        def run(*a):
            return subprocess.run(
                ["git", "-C", str(workdir), *a],
                capture_output=True,
                text=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            )

        report["head"] = run("rev-parse", "HEAD").stdout.strip()
        report["status"] = run("status", "--porcelain").stdout
    Path((workdir / "PROBE").read_text().strip()).write_text(json.dumps(report))


@hookimpl(tryfirst=True)
def skiff_build(deploy):
    if (deploy.workdir / "PROBE").exists():
        _probe(deploy.workdir)
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
