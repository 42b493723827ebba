"""Detached helper: ``python -m skiff_swarm.retire --manager ADDR --wait S --service ID ...``.

Sleeps ``--wait`` seconds (nginx already points at the new tasks), then removes the old
release's services; swarm stops their tasks with SIGTERM and the stop grace period.
``--network-of APP``: then the overlay network of APP (the old name of a renamed app).
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skiff_swarm.retire")
    parser.add_argument("--manager", default="")
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--service", action="append", default=[])
    parser.add_argument("--network-of", default="")
    args = parser.parse_args(argv)
    time.sleep(max(0.0, args.wait))
    from . import engine

    c = engine.client(args.manager)
    for ident in args.service:
        engine.remove_service(c, ident)
    if args.network_of:
        engine.remove_network(c, args.network_of, wait=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
