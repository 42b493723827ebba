"""Detached retirement: ``python -m skiff_docker.retire --wait S --container ID ... --image REF ...``.

Started by a deploy (in its own session, output discarded) so the deploy
returns at once: sleeps ``wait`` seconds (wait-to-retire), stops the old
containers (SIGTERM, SIGKILL after ``stop-timeout``), removes them, then
removes the given images when they belong to the app and nothing uses them.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor


def retire(app: str, containers: list[str], images: list[str], wait: float, stop_timeout: int) -> None:
    import docker
    from docker.errors import APIError, NotFound

    if wait > 0:
        time.sleep(wait)
    c = docker.from_env(timeout=max(60, stop_timeout + 30))

    def stop_and_remove(ident: str) -> None:
        try:
            c.api.stop(ident, timeout=stop_timeout)
        except (NotFound, APIError):
            pass
        try:
            c.api.remove_container(ident, force=True, v=True)
        except (NotFound, APIError):
            pass

    if containers:
        with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
            list(pool.map(stop_and_remove, containers))
    for image in images:
        try:
            labels = c.api.inspect_image(image).get("Config", {}).get("Labels") or {}
            if labels.get("skiff.app") == app:
                c.api.remove_image(image)  # no force: an image in use stays
        except (NotFound, APIError):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--wait", type=float, default=10.0)
    parser.add_argument("--stop-timeout", type=int, default=10)
    parser.add_argument("--container", action="append", default=[])
    parser.add_argument("--image", action="append", default=[])
    args = parser.parse_args()
    retire(args.app, args.container, args.image, args.wait, args.stop_timeout)


if __name__ == "__main__":
    main()
