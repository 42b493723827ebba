"""Run every benchmark under bench/ (or those named) and print their tables.

    make bench                    # all, BENCH_RUNS rounds each (default per benchmark)
    BENCH_RUNS=3 make bench
    .venv/bin/python bench/run.py cli_startup deploy

Each benchmark measures its own baseline in the same run; results merge into bench/results.json.
The benchmarks in OPT_IN run only when named (``make bench BENCH=cluster``): they take longer
or need a swarm manager (``BENCH_SWARM_MANAGER=unix:///PATH/docker.sock make bench BENCH=swarm_update``).
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
#: run only when named: cluster.py starts three engines and takes about 10 minutes here
OPT_IN = {"cluster", "swarm_update"}  # swarm_update needs a manager socket


def main(names: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run.py")
    if names:
        scripts = [p for p in scripts if p.stem in names]
    else:
        scripts = [p for p in scripts if p.stem not in OPT_IN]
    failed = []
    for script in scripts:
        start = time.perf_counter()
        print(f"=====> {script.stem}", flush=True)
        try:
            runpy.run_path(str(script), run_name="__main__")
        except Exception as exc:  # one broken benchmark must not hide the others
            failed.append(script.stem)
            print(f"!     {script.stem} failed: {type(exc).__name__}: {exc}", flush=True)
        print(f"       ({time.perf_counter() - start:.0f}s)", flush=True)
    print(f"\nResults: {HERE / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
