"""Print bench/results.json as Markdown tables (for docs/performance.md).

.venv/bin/python bench/_markdown.py [BENCH ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "":
        return f"{value:g}"
    return f"{value:.3g} {unit}".strip()


def timeline_tables(name: str, entry: dict) -> str:
    """The push timelines of bench/deploy.py: one table per timed command."""
    parts = []
    for kind, steps in entry["tables"].items():
        n = max((s.get("n", 0) for s in steps), default=0)
        lines = [f"**{name}: {kind}** ({entry.get('when', '')}, n={n}; ms after the client command started)", ""]
        lines += ["| step | at (ms) | gap (ms) |", "|---|---:|---:|"]
        lines += [f"| {s['step']} | {s['at_ms']:.0f} | {s['gap_ms']:.0f} |" for s in steps]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def table(name: str, entry: dict) -> str:
    if "tables" in entry:
        return timeline_tables(name, entry)
    unit = entry.get("unit", "s")
    rows = entry["rows"]
    base = entry.get("baseline")
    if base in rows:  # results.json sorts the rows: the baseline goes first again
        rows = {base: rows[base], **{k: v for k, v in rows.items() if k != base}}
    n = max(r.get("n", 0) for r in rows.values())
    lines = [f"**{name}** ({entry.get('when', '')}, n={n})", ""]
    if all("median" in r for r in rows.values()):
        lines += ["| case | median | min | max | ratio |", "|---|---:|---:|---:|---:|"]
        for case, row in rows.items():
            ratio = f"{row['ratio']:.2f}x" if "ratio" in row else ""
            lines.append(
                f"| {case} | {fmt(row['median'], unit)} | {fmt(row['min'], unit)} | {fmt(row['max'], unit)} | {ratio} |"
            )
        return "\n".join(lines)
    # skiff vs baseline rows (bench/deploy.py): {"skiff": {...}, "baseline": {...}, "ratio", "target"}
    lines += [
        "| case | skiff median | min | max | baseline median | ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, row in rows.items():
        mine, base = row.get("skiff", {}), row.get("baseline", {})
        u = "" if any(w in case for w in ("failed", "probes")) else unit
        cells = [fmt(mine[k], u) if k in mine else "" for k in ("median", "min", "max")]
        base_cell = fmt(base["median"], u) if "median" in base else ""
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else ""
        target = fmt(row["target"], u) if row.get("target") is not None else ""
        lines.append(f"| {case} | {' | '.join(cells)} | {base_cell} | {ratio} | {target} |")
    return "\n".join(lines)


def main(names: list[str]) -> None:
    results = json.loads(RESULTS.read_text())
    for name in sorted(results):
        if names and not any(name.startswith(n) for n in names):
            continue
        print(table(name, results[name]))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
