"""App-level operations: stop, start, restore, destroy, rename, report."""

from __future__ import annotations

from typing import Any

from skiff import contracts, lifecycle
from skiff.context import Context
from skiff.errors import SkiffError

from . import engine, rollout, scheduler, settings
from .engine import LABEL_PORT, LABEL_PROCESS, LABEL_RELEASE


def _parallel(items: list[Any], fn) -> None:
    if not items:
        return
    with scheduler.pool(len(items)) as pool:
        list(pool.map(fn, items))


def stop(context: Context, app: str) -> int:
    """Stop the app's containers (they stay, and stay stopped across engine restarts)."""
    with lifecycle.app_lock(context, app):
        stopped = context.hook.skiff_app_stop(context=context, app=app)  # another scheduler's app
        if stopped is not None:
            settings.set_stopped(context.state, app, True)
            return int(stopped)
        c = engine.client()
        timeout = int(settings.checks(context.state, app)["stop-timeout"])
        running = [e for e in scheduler.running_instances(c, app) if e.get("State") == "running"]
        _parallel(running, lambda e: c.api.stop(e["Id"], timeout=timeout))
        settings.set_stopped(context.state, app, True)
    return len(running)


def expected(context: Context, app: str) -> dict[str, int]:
    """The formation the current release should run with now (ps:scale changes included)."""
    release = context.state.current_release(app)
    if release is None:
        return {}
    table = scheduler.process_table(release.processes)
    return settings.formation(context.state, app, table, release.meta.get("app_json") or {})


def healthy_as_recorded(context: Context, app: str, c) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the app's containers are exactly the current release's formation and ports."""
    release = context.state.current_release(app)
    entries = scheduler.running_instances(c, app)
    if release is None:
        return True, entries
    want = {f"{app}.{p}.{i}" for p, n in expected(context, app).items() for i in range(1, n + 1)}
    have = {engine.name_of(e): e for e in entries}
    ok = set(have) == want and all(e["Labels"].get(LABEL_RELEASE) == str(release.version) for e in entries)
    upstreams = set(release.upstreams)
    ports = {f"127.0.0.1:{e['Labels'][LABEL_PORT]}" for e in entries if e["Labels"].get(LABEL_PORT)}
    return ok and ports == upstreams, entries


def start(context: Context, app: str, description: str = "Start") -> str:
    """Start the current release's containers; redeploy when they are not all there."""
    if context.state.current_release(app) is None:
        raise SkiffError(f"app {app} has not been deployed yet: push it first")
    # another scheduler's app: it takes the app's lock itself (nginx's rebuild takes it too)
    started = context.hook.skiff_app_start(context=context, app=app)
    if started is not None:
        settings.set_stopped(context.state, app, False)
        return str(started)
    with lifecycle.app_lock(context, app):
        c = engine.client()
        ok, entries = healthy_as_recorded(context, app, c)
        if ok:
            stopped = [e for e in entries if e.get("State") != "running"]
            _parallel(stopped, lambda e: c.api.start(e["Id"]))
            settings.set_stopped(context.state, app, False)
            return f"started {len(stopped)} containers" if stopped else "running"
    lifecycle.redeploy(context, app, description, locked_ok=True)  # takes the lock itself
    return "redeployed"


def cleanup(context: Context, app: str | None = None) -> None:
    """Remove leftovers: retiring containers, stray deploy containers, exited one-off containers."""
    c = engine.client()
    leftovers = scheduler.retiring_containers(c, app)
    if app:
        leftovers += scheduler.stray_containers(c, app)
    leftovers += [e for e in engine.list_containers(c, app, role="oneoff") if e.get("State") == "exited"]
    _parallel(leftovers, lambda e: engine.remove_container(c, e["Id"]))


def boot(context: Context) -> None:
    """``skiff_boot``: plugins start what they run outside the apps' containers, and say what."""
    for lines in context.hook.skiff_boot(context=context):
        for line in lines or []:
            context.output.step(line)


def restore(context: Context, apps: list[str]) -> dict[str, str]:
    """Start every app that should run (after a reboot or an engine restart)."""
    results: dict[str, str] = {}
    cleanup(context)
    for app in apps:
        if context.state.current_release(app) is None:
            results[app] = "not deployed"
            continue
        if settings.is_stopped(context.state, app):
            results[app] = "stopped (ps:stop)"
            continue
        try:
            results[app] = start(context, app, "Restore")
        except SkiffError as exc:
            results[app] = f"failed: {exc}"
    return results


def bring_back(context: Context) -> None:
    """After a whole-server restore: start every app from its release image, else rebuild it
    from the source of its last deploy (its repository came back with the backup).

    Apps never deployed or stopped with ``ps:stop`` stay as they are; a failure does not stop
    the others, and is named at the end.
    """
    import docker

    from skiff.deploy import Source

    out = context.output
    c = engine.client()
    failed = []
    for app in context.state.list_apps():
        release = context.state.current_release(app)
        if release is None or settings.is_stopped(context.state, app):
            out.info(f"{app}: {'not deployed' if release is None else 'stopped (ps:stop)'}, left as it is")
            continue
        try:
            try:
                c.images.get(release.image or "")
                have_image = bool(release.image)
            except (docker.errors.ImageNotFound, docker.errors.NullResource):
                have_image = False
            if have_image:
                out.step(f"{app}: starting v{release.version} from its image {release.image}")
                start(context, app, "Restore")
                continue
            source = context.state.get_property(settings.PLUGIN, "source", app=app)
            if not source:
                raise SkiffError(f"the image {release.image} is gone and no source is recorded")
            rev = (source.get("revision") or "")[:7]
            out.step(f"{app}: the image of v{release.version} is gone; rebuilding {rev} from its source")
            lifecycle.deploy(
                context, app, Source(**source), description=" ".join(filter(None, ("Rebuild", rev, "(restore)")))
            )
        except SkiffError as exc:
            out.warn(f"{app}: {exc}")
            failed.append(app)
    if failed:
        raise SkiffError(f"these apps did not come back: {', '.join(failed)}")


def destroy(context: Context, app: str) -> None:
    """Remove every container and image of ``app``."""
    try:
        c = engine.client()
    except SkiffError as exc:
        context.output.warn(f"docker: {exc}; containers of {app} were not removed")
        return
    from docker.errors import APIError, NotFound

    entries = engine.list_containers(c, app, role=None)
    _parallel(entries, lambda e: engine.remove_container(c, e["Id"]))
    images = {r.image for r in context.state.releases(app) if r.image}
    for image in c.api.images(filters={"label": f"{engine.LABEL_APP}={app}"}):
        images.add(image["Id"])
    for image in images:
        try:
            labels = c.api.inspect_image(image).get("Config", {}).get("Labels") or {}
            if labels.get(engine.LABEL_APP) == app:
                c.api.remove_image(image, force=True)
        except (NotFound, APIError):
            pass
    if entries:
        context.output.info(f"removed {len(entries)} containers")
    try:
        if engine.remove_app_network(c, app):
            context.output.info(f"removed the network {contracts.app_network(app)}")
    except APIError as exc:
        context.output.warn(f"docker: the network {contracts.app_network(app)} was not removed ({exc})")


def renamed(context: Context, old: str, new: str) -> None:
    """Run the current release under the new name, then retire the old containers.

    Called under both apps' locks, after the state moved to ``new``: the new
    containers start and pass their checks, the release's upstreams are
    updated, ``skiff_post_deploy`` lets the proxy switch, and the old ones
    retire after wait-to-retire. It never raises (the rename is done): a
    failure says to run ``ps:restart NEW``.
    """
    try:
        c = engine.client()
    except SkiffError:
        return
    try:
        _run_renamed(context, c, old, new)
    except Exception as exc:
        context.output.warn(f"docker: could not start {new}'s containers ({exc}); run 'ps:restart {new}'")


def _run_renamed(context: Context, c, old: str, new: str) -> None:
    from skiff.deploy import Deploy

    state = context.state
    entries = engine.list_containers(c, old, role=None)
    release = state.current_release(new)
    running = [e for e in scheduler.running_instances(c, old, entries) if e.get("State") == "running"]
    if release is None or not release.image or settings.is_stopped(state, new) or not running:
        _parallel(entries, lambda e: engine.remove_container(c, e["Id"]))
        engine.remove_app_network(c, old)
        return
    context.output.step(f"Starting {old}'s release v{release.version} as {new}")
    d = Deploy.of_release(context, new, release, f"Rename {old} to {new}")
    try:
        rollout.deploy(d)
    except BaseException:
        rollout.failed(d, "deploy")
        raise
    release.meta = d.meta
    state.finish_release(release, "succeeded", release.timings)  # same release, new upstreams
    context.hook.skiff_post_deploy(deploy=d)
    wait, stop_timeout = rollout.retire_timing(d)
    scheduler.spawn_retire(
        old, [e["Id"] for e in entries], [], wait=wait, stop_timeout=stop_timeout, remove_network=True
    )


def instance_rows(c, app: str) -> list[dict[str, Any]]:
    rows = []
    for entry in scheduler.running_instances(c, app):
        try:
            info = c.api.inspect_container(entry["Id"])
        except Exception:
            continue
        state = info["State"]
        labels = entry["Labels"]
        rows.append(
            {
                "name": engine.name_of(entry),
                "process": labels.get(LABEL_PROCESS),
                "release": int(labels.get(LABEL_RELEASE) or 0),
                "status": "restarting" if state.get("Restarting") else state.get("Status"),
                "started": state.get("StartedAt"),
                "restarts": info.get("RestartCount", 0),
                "port": int(labels[LABEL_PORT]) if labels.get(LABEL_PORT) else None,
                "id": entry["Id"][:12],
            }
        )
    return rows


def report(context: Context, app: str) -> dict[str, Any]:
    state = context.state
    release = state.current_release(app)
    rows = context.hook.skiff_app_status(context=context, app=app)  # another scheduler's app
    if rows is None:
        rows = instance_rows(engine.client(), app)
    return {
        "app": app,
        "deployed": release is not None,
        "release": release.version if release else None,
        "stopped": settings.is_stopped(state, app),
        "running": sum(1 for r in rows if r["status"] == "running"),
        "formation": expected(context, app),
        "scale": settings.scale_overrides(state, app),
        "restarts": sum(r["restarts"] for r in rows),
        "processes": rows,
    }


def ps_summary(context: Context, app: str) -> dict[str, Any]:
    try:
        data = report(context, app)
    except Exception as exc:  # the engine is down: the rest of apps:report still works
        return {"error": str(exc)}
    return {
        "formation": data["formation"],
        "running": data["running"],
        "stopped": data["stopped"],
        "restarts": data["restarts"],
        "containers": [r["name"] for r in data["processes"]],
    }
