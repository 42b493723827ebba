"""cleanup: remove what Skiff's apps left on the engine, and say what it freed (Dokku's ``cleanup``)."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context

from .. import engine, settings
from ..engine import LABEL_APP, LABEL_JOB, LABEL_ROLE

BUILD_LABEL = "skiff.build-for"  # build containers (docs/contracts.md)
DEPS_LABEL = "skiff.deps"  # the buildpacks' dependency layers (docs/contracts.md)
LEFTOVER = re.compile(r"\.(?:v[0-9]+|old-[0-9a-z]+)\Z")  # a deploy's temporary and retired names
GONE = ("exited", "dead", "created")


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def _removable_container(entry: dict[str, Any], kept_jobs: set[str]) -> bool:
    """Exited one-offs (not a job's last run), leftover deploy containers, build containers.

    Never a stopped process container with its plain name (``ps:stop`` keeps those for ``ps:start``)."""
    if entry.get("State") not in GONE:
        return False
    labels = entry.get("Labels") or {}
    if labels.get(BUILD_LABEL):
        return True
    if labels.get(LABEL_ROLE) == "oneoff":
        return entry["Id"] not in kept_jobs
    return labels.get(LABEL_ROLE) == "process" and bool(LEFTOVER.search(engine.name_of(entry)))


def _newest_job_runs(entries: list[dict[str, Any]]) -> set[str]:
    newest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        tag = (entry.get("Labels") or {}).get(LABEL_JOB)
        if tag and entry.get("Created", 0) >= newest.get(tag, {}).get("Created", -1):
            newest[tag] = entry
    return {e["Id"] for e in newest.values()}


def plan(context: Context, c, apps: list[str]) -> dict[str, list[dict[str, Any]]]:
    """What ``cleanup`` would remove for ``apps``: ``{"containers"|"images"|"caches": [item]}``,
    each item ``{"id", "name", "size"}`` (bytes freed, from the engine's disk usage)."""
    df = c.api.df()
    rw = {e["Id"]: int(e.get("SizeRw") or 0) for e in df.get("Containers") or []}
    unique = {}
    for image in df.get("Images") or []:
        shared = int(image.get("SharedSize") or 0)
        unique[image["Id"]] = max(0, int(image.get("Size") or 0) - max(shared, 0))
    found: dict[str, list[dict[str, Any]]] = {"containers": [], "images": [], "caches": []}
    state = context.state
    for app in apps:
        entries = c.api.containers(all=True, filters={"label": f"{LABEL_APP}={app}"})
        entries += c.api.containers(all=True, filters={"label": f"{BUILD_LABEL}={app}"})
        kept = _newest_job_runs(entries)
        for entry in entries:
            if _removable_container(entry, kept):
                name = engine.name_of(entry)
                found["containers"].append({"id": entry["Id"], "name": name, "size": rw.get(entry["Id"], 0)})
        for image in c.api.images(filters={"dangling": True, "label": f"{LABEL_APP}={app}"}):
            found["images"].append({"id": image["Id"], "name": image["Id"][7:19], "size": unique.get(image["Id"], 0)})
        releases = [r for r in state.releases(app) if r.status == "succeeded"][-settings.keep_releases(state, app) :]
        used = {r.meta.get("deps_image") for r in releases}
        for image in c.api.images(filters={"label": f"{DEPS_LABEL}={app}"}):
            if image["Id"] not in used:
                name = (image.get("RepoTags") or [image["Id"][7:19]])[0]
                found["caches"].append({"id": image["Id"], "name": name, "size": unique.get(image["Id"], 0)})
    return found


def remove(c, found: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Remove what :func:`plan` found; return what is gone (an image still used stays)."""
    from docker.errors import APIError, NotFound

    done: dict[str, list[dict[str, Any]]] = {kind: [] for kind in found}
    for item in found["containers"]:
        engine.remove_container(c, item["id"])
        done["containers"].append(item)
    for kind in ("images", "caches"):
        for item in found[kind]:
            try:
                c.api.remove_image(item["id"], force=kind == "caches")
            except NotFound:
                pass
            except APIError:  # a child image or a container still uses it
                continue
            done[kind].append(item)
    return done


WHAT = {"containers": "exited container", "images": "dangling image", "caches": "stale build cache"}


@access.admin_command
@click.command("cleanup")
@click.argument("app", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def cleanup(context: Context, app: str | None, dry_run: bool, fmt: str) -> None:
    """Remove exited containers, dangling images and stale build caches of Skiff's apps (or APP).

    Exited one-off and build containers and a deploy's leftover containers go (a stopped
    app's containers stay for ps:start, a scheduled job's last run stays for logs); so
    do dangling app images and dependency layers no kept release uses. Only the apps of
    this installation are touched. Prints each item and the space freed.
    """
    apps = [context.state.require_app(app)] if app else context.state.list_apps()
    c = engine.client()
    found = plan(context, c, apps)
    done = found if dry_run else remove(c, found)
    total = sum(item["size"] for items in done.values() for item in items)
    if fmt == "json":
        click.echo(json.dumps({**done, "freed": total, "dry_run": dry_run}, indent=2))
        return
    verb = "Would remove" if dry_run else "Removed"
    for kind, items in done.items():
        for item in items:
            context.output.info(f"{verb} {WHAT[kind]} {item['name']} ({human(item['size'])})")
    count = sum(len(items) for items in done.values())
    freed = "would free" if dry_run else "freed"
    context.output.step(f"cleanup: {count} item{'s' if count != 1 else ''}, {freed} {human(total)}")


COMMANDS: list[click.Command] = [cleanup]
