"""CLI start-up: `skiff --help` and `skiff apps:list` next to `python -c "import click"`.

Every case runs interleaved in the same process, N rounds (BENCH_RUNS, default 20),
with skiff's own interpreter. The commands run as the service account (``skiff``,
or BENCH_USER), as they do on a server, so they use the command cache
(docs/plugins.md); root never reads it, and its `skiff --help` is shown for
reference. Target (issue 18): `skiff --help` ≤ 1.5x `import click`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_command, interleave, report, runs, service_account, time_command  # noqa: E402

FLOOR = 'python -c "import click" (floor)'


def main() -> None:
    python = sys.executable
    skiff = shutil.which("skiff", path=str(Path(python).parent)) or "skiff"
    root = tempfile.mkdtemp(prefix="bench-cli-")
    user = service_account()
    if user is not None:
        shutil.chown(root, user)
    env = {**os.environ, "SKIFF_ROOT": root}
    time_command([skiff, "apps:create", "bench"], env, user)
    cases = {
        FLOOR: lambda: time_command([python, "-c", "import click"], env, user),
        "skiff --help": lambda: time_command([skiff, "--help"], env, user),
        "skiff apps:list": lambda: time_command([skiff, "apps:list"], env, user),
        "skiff version": lambda: time_command([skiff, "version"], env, user),
    }
    if user is not None:
        cases["skiff --help as root (no cache)"] = lambda: time_command([skiff, "--help"], env)
    interleave(cases, 2)  # warm the page cache (and write the command cache)
    print(f"  (as {user or 'this account'})")
    table = report("cli_startup", interleave(cases, runs(20)), baseline=FLOOR)
    # CPU time (user + system) of the same commands: it moves far less than wall time when
    # other work shares the two cores, so it shows the change when the machine is busy.
    cpu_cases = {
        f"cpu: {name}": (lambda argv=argv: cpu_command(argv, env, user))
        for name, argv in {
            FLOOR: [python, "-c", "import click"],
            "skiff --help": [skiff, "--help"],
            "skiff apps:list": [skiff, "apps:list"],
        }.items()
    }
    cpu = report("cli_startup_cpu", interleave(cpu_cases, runs(20)), baseline=f"cpu: {FLOOR}")
    print(f"  skiff --help / import click: {table['skiff --help']['ratio']:.2f}x wall (target ≤ 1.5x)")
    print(f"  skiff --help / import click: {cpu['cpu: skiff --help']['ratio']:.2f}x cpu")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
