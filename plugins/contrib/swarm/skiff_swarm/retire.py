"""Detached helper: ``python -m skiff_swarm.retire --manager ADDR --wait S --service ID ...``.

Sleeps ``--wait`` seconds (nginx already points at the new tasks), then removes the old
release's services; swarm stops their tasks with SIGTERM and the stop grace period.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skiff_swarm.retire")
    parser.add_argument("--manager", default="")
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--service", action="append", default=[])
    args = parser.parse_args(argv)
    time.sleep(max(0.0, args.wait))
    from . import engine

    c = engine.client(args.manager)
    for ident in args.service:
        engine.remove_service(c, ident)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
