"""Detached retirement: ``python -m skiff_docker.retire --wait S --container ID ... --image REF ...``.

Started by a deploy (in its own session, output discarded) so the deploy
returns at once: sleeps ``wait`` seconds (wait-to-retire), stops the old
containers (SIGTERM, SIGKILL after ``stop-timeout``), removes them, then
removes the given images when they belong to the app and nothing uses them,
and with ``--remove-network`` the app's own network (a renamed app's old one).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

RETRY_FOR = 600.0  # seconds to keep trying while the engine is away (restarting)


def connect(stop_timeout: int):
    """A docker client, retrying while the engine does not answer (for up to RETRY_FOR)."""
    from skiff import dockerclient

    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return dockerclient.client(max(60, stop_timeout + 30))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)


def retire(
    app: str, containers: list[str], images: list[str], wait: float, stop_timeout: int, remove_network: bool = False
) -> None:
    from docker.errors import APIError

    if wait > 0:
        time.sleep(wait)
    c = connect(stop_timeout)

    def stop_and_remove(ident: str) -> None:
        client = c
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                try:
                    client.api.stop(ident, timeout=stop_timeout)
                except APIError:  # already stopped, or being removed
                    pass
                client.api.remove_container(ident, force=True, v=True)
                return
            except APIError:  # gone, or being removed by someone else
                return
            except Exception:  # the engine went away (restart): try again when it is back
                if time.monotonic() > deadline:
                    return
                time.sleep(5)
                try:
                    client = connect(stop_timeout)
                except Exception:
                    return

    if containers:
        with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
            list(pool.map(stop_and_remove, containers))
    for image in images:
        try:
            labels = c.api.inspect_image(image).get("Config", {}).get("Labels") or {}
            if labels.get("skiff.app") == app:
                c.api.remove_image(image)  # no force: an image in use stays
        except Exception:  # in use, gone, or the engine is away: a later prune gets it
            pass
    if remove_network:
        from .engine import remove_app_network

        try:
            remove_app_network(c, app)
        except Exception:  # the engine is away: apps:destroy of the app's new name does not need it
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--wait", type=float, default=10.0)
    parser.add_argument("--stop-timeout", type=int, default=10)
    parser.add_argument("--container", action="append", default=[])
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--remove-network", action="store_true")
    args = parser.parse_args()
    retire(args.app, args.container, args.image, args.wait, args.stop_timeout, args.remove_network)


if __name__ == "__main__":
    main()
