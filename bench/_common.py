"""Helpers shared by the benchmarks: timing, medians, one printed table, results.json."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).with_name("results.json")


def runs(default: int = 5) -> int:
    return int(os.environ.get("BENCH_RUNS", default))


def time_command(argv: Sequence[str], env: dict | None = None, user: str | None = None) -> float:
    """Seconds ``argv`` takes; ``user``: run it as that account (set by this process, no wrapper)."""
    start = time.perf_counter()
    _run(argv, env, user)
    return time.perf_counter() - start


def _run(argv: Sequence[str], env: dict | None, user: str | None) -> None:
    subprocess.run(
        list(argv),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        **service_account_kwargs(user),
    )


def cpu_command(argv: Sequence[str], env: dict | None = None, user: str | None = None) -> float:
    """CPU seconds (user + system) ``argv`` and its children used: steadier than wall time on a busy host."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _run(argv, env, user)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def service_account() -> str | None:
    """The account Skiff runs as on a server (``BENCH_USER``, default ``skiff`` when it exists).

    ``None`` when this process is not root (it then already runs as some account)
    or the account is missing. Commands of the service account use the command
    cache (docs/plugins.md); root never does.
    """
    import pwd

    if os.geteuid() != 0:
        return None
    name = os.environ.get("BENCH_USER", "skiff")
    try:
        pwd.getpwnam(name)
    except KeyError:
        return None
    return name


def service_account_kwargs(user: str | None) -> dict:
    """``subprocess`` arguments that run a command as ``user`` with its groups (docker)."""
    if user is None:
        return {}
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def interleave(cases: dict[str, Callable[[], float]], n: int) -> dict[str, list[float]]:
    """Run every case once per round, n rounds, so noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(n):
        for name, case in cases.items():
            samples[name].append(case())
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def report(bench: str, rows: dict[str, list[float]], unit: str = "s", baseline: str | None = None) -> dict:
    """Print a table (median, min, max, ratio to the baseline) and merge it into results.json."""
    table = {name: summary(values) for name, values in rows.items()}
    base = table[baseline]["median"] if baseline else None
    print(f"\n{bench}")
    print(f"  {'case':<40} {'median':>10} {'min':>10} {'max':>10} {'ratio':>7}")
    for name, row in table.items():
        ratio = f"{row['median'] / base:.2f}x" if base else ""
        if base:
            row["ratio"] = round(row["median"] / base, 3)
        print(f"  {name:<40} {row['median']:>9.3f}{unit} {row['min']:>9.3f}{unit} {row['max']:>9.3f}{unit} {ratio:>7}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[bench] = {"unit": unit, "baseline": baseline, "rows": table, "when": time.strftime("%Y-%m-%d %H:%M")}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True))
    return table
