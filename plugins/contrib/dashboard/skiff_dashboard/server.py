"""``dashboard:serve``: uvicorn running :mod:`.web`, the stats sampler beside it.

With ``--service`` (what make install's unit runs) the process stays up whether the
dashboard is on or off: it waits while ``enabled`` is false, serves while it is true, and
stops serving within :data:`POLL` seconds of ``dashboard:disable``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from skiff.context import Context

from .settings import SETTINGS

POLL = 3.0


def _enabled(context: Context) -> bool:
    fresh = Context(context.pm, root=context.root)
    try:
        return bool(SETTINGS.get(fresh.state, "enabled"))
    finally:
        fresh.close()


def serve(context: Context, host: str, port: int | None, service: bool) -> None:
    import uvicorn

    from skiff import dockerclient

    from . import stats, web

    context.pm.load_all()  # every plugin registered before threads call hooks
    root, pm = context.root, context.pm
    port = port or int(SETTINGS.get(context.state, "port"))
    dash = web.Dashboard(root=root, new_context=lambda: Context(pm, root=root))
    app = web.build(dash)
    while True:
        if service and not _enabled(context):
            time.sleep(POLL)
            continue
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        disabled = threading.Event()
        if service:
            threading.Thread(target=_watch, args=(context, server, disabled), daemon=True).start()
        # the charts' samples: taken only while serving, kept in memory (a new hour after a restart)
        dash.sampler = stats.Sampler(lambda: dockerclient.shared(30))
        dash.sampler.start()
        print(f"dashboard: serving on http://{host}:{port}", file=sys.stderr, flush=True)
        try:
            server.run()
        finally:
            dash.sampler.stop()
        if not disabled.is_set():
            return
        print("dashboard: disabled; waiting for dashboard:enable", file=sys.stderr, flush=True)


def _watch(context: Context, server: Any, disabled: threading.Event) -> None:
    while not server.should_exit:
        time.sleep(POLL)
        try:
            on = _enabled(context)
        except Exception:
            continue
        if not on:
            disabled.set()
            server.should_exit = True
            return
