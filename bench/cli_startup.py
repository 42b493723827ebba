"""CLI start-up: `skiff --help` and `skiff apps:list` next to `python -c "import click"`.

Every case runs interleaved in the same process, N rounds (BENCH_RUNS, default 20).
Target: `skiff --help` median under 250 ms with every builtin plugin installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs, time_command  # noqa: E402


def main() -> None:
    python = sys.executable
    skiff = shutil.which("skiff", path=str(Path(python).parent)) or "skiff"
    root = tempfile.mkdtemp(prefix="bench-cli-")
    env = {**os.environ, "SKIFF_ROOT": root}
    time_command([skiff, "apps:create", "bench"], env)
    cases = {
        'python -c "import click" (floor)': lambda: time_command([python, "-c", "import click"], env),
        "skiff --help": lambda: time_command([skiff, "--help"], env),
        "skiff apps:list": lambda: time_command([skiff, "apps:list"], env),
    }
    interleave(cases, 2)  # warm the page cache
    report("cli_startup", interleave(cases, runs(20)), baseline='python -c "import click" (floor)')
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
