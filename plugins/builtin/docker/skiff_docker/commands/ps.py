"""ps:*, releases, releases:rollback: the commands about running processes."""

from __future__ import annotations

import datetime
import json

import click

from skiff import access, lifecycle
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from .. import settings


def _scale_args(pairs: tuple[str, ...]) -> dict[str, int]:
    from ..scheduler import validate_process

    changes: dict[str, int] = {}
    for pair in pairs:
        process, sep, value = pair.partition("=")
        if not sep or not (value.isascii() and value.isdigit()):  # '²'.isdigit() but int('²') fails
            raise ValidationError(f"expected PROCESS=QUANTITY, got {pair!r}")
        validate_process(process)
        if int(value) > 100:
            raise ValidationError(f"{process}={value}: at most 100 containers per process type")
        changes[process] = int(value)
    return changes


@access.app_command(app="app", log_assignments=True)
@click.command("ps:scale")
@click.option("--skip-deploy", is_flag=True, help="Store the scale; apply it on the next deploy.")
@click.argument("app")
@click.argument("pairs", nargs=-1)
@pass_context
def ps_scale(context: Context, skip_deploy: bool, app: str, pairs: tuple[str, ...]) -> None:
    """Show or set how many containers run per process type: ps:scale APP web=2 worker=1"""
    state = context.state
    state.require_app(app)
    current = state.current_release(app)
    if not pairs:
        from ..scheduler import process_table

        table = process_table(current.processes) if current else {}
        scale = settings.formation(state, app, table, current.meta.get("app_json", {}) if current else {})
        context.output.banner(f"Scaling for {app}")
        click.echo(f"{'proctype':<12} qty")
        for process, quantity in (scale or settings.scale_overrides(state, app)).items():
            click.echo(f"{process:<12} {quantity}")
        return
    changes = _scale_args(pairs)
    if current is not None:
        from ..scheduler import process_table

        unknown = sorted(set(changes) - set(process_table(current.processes)))
        if unknown:
            raise ValidationError(
                f"{app} has no process type {', '.join(unknown)} (Procfile: "
                f"{', '.join(process_table(current.processes))})"
            )
    settings.set_scale(state, app, changes)
    description = "Scale " + " ".join(f"{p}={n}" for p, n in changes.items())
    context.output.step(description)
    if current is None or skip_deploy or settings.is_stopped(state, app):
        context.output.info("stored; it applies on the next ps:start or deploy")
        return
    lifecycle.redeploy(context, app, description, locked_ok=True)  # the same release, other counts


@access.app_command()
@click.command("ps:stop")
@click.argument("app")
@pass_context
def ps_stop(context: Context, app: str) -> None:
    """Stop APP's containers (they stay stopped across reboots until ps:start)."""
    from .. import lifecycle_ops

    context.state.require_app(app)
    count = lifecycle_ops.stop(context, app)
    context.output.step(f"Stopped {count} containers of {app}")


@access.app_command()
@click.command("ps:start")
@click.argument("app")
@pass_context
def ps_start(context: Context, app: str) -> None:
    """Start APP's containers (a new release when some are missing)."""
    from .. import lifecycle_ops

    context.state.require_app(app)
    result = lifecycle_ops.start(context, app)
    context.output.step(f"{app}: {result}")


@access.app_command()
@click.command("ps:restart")
@click.argument("app")
@pass_context
def ps_restart(context: Context, app: str) -> None:
    """Restart APP with zero downtime: new containers, checks, then the old ones retire."""
    context.state.require_app(app)
    lifecycle.redeploy(context, app, "Restart", locked_ok=True)


@access.app_command()
@click.command("ps:rebuild")
@click.argument("app", required=False)
@click.option("--all", "every", is_flag=True, help="Rebuild every app (admin keys only), e.g. after stack:update.")
@pass_context
def ps_rebuild(context: Context, app: str | None, every: bool) -> None:
    """Build APP (or every app: --all) again from the source of its last deploy, then deploy it.

    With --all, apps never pushed are skipped and a failed rebuild does not stop
    the others: each keeps its running release, and the command exits 1 naming them.
    """
    if every == bool(app):
        raise SkiffError("name one app, or --all for every app")
    if app:
        _rebuild(context, context.state.require_app(app), required=True)
        return
    failed = []
    for name in context.state.list_apps():
        try:
            if _rebuild(context, name, required=False):
                context.output.step(f"{name}: rebuilt")
        except SkiffError as exc:
            context.output.warn(f"{name}: rebuild failed ({exc}); its running release is unchanged")
            failed.append(name)
    if failed:
        raise SkiffError(f"rebuild failed for {', '.join(failed)}")


def _rebuild(context: Context, app: str, required: bool) -> bool:
    from skiff.deploy import Source

    source = context.state.get_property(settings.PLUGIN, "source", app=app)
    if not source:
        if required:
            raise SkiffError(f"no source recorded for {app}: push it first")
        context.output.step(f"{app}: never pushed, skipped")
        return False
    rev = (source.get("revision") or "")[:7]
    lifecycle.deploy(context, app, Source(**source), description=f"Rebuild {rev}".strip())
    return True


@local_only
@click.command("ps:restore")
@click.argument("app", required=False)
@pass_context
def ps_restore(context: Context, app: str | None) -> None:
    """Start every app that should be running (run at boot by skiff-restore.service).

    Without APP, what plugins run outside the apps (the registry registry:serve started) is
    started first (skiff_boot)."""
    from .. import lifecycle_ops

    apps = [context.state.require_app(app)] if app else context.state.list_apps()
    if not app:  # the whole server (at boot): what plugins run outside the apps comes first
        lifecycle_ops.boot(context)
    for name, result in lifecycle_ops.restore(context, apps).items():
        context.output.step(f"{name}: {result}")


@access.app_command()
@click.command("ps:retire")
@click.argument("app", required=False)
@pass_context
def ps_retire(context: Context, app: str | None) -> None:
    """Remove retiring containers now (and leftovers of killed deploys and runs)."""
    from .. import lifecycle_ops

    if app:
        context.state.require_app(app)
    lifecycle_ops.cleanup(context, app)
    context.output.step("Retired old containers" + (f" of {app}" if app else ""))


@access.app_command()
@click.command("ps:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def ps_report(context: Context, app: str | None, fmt: str) -> None:
    """Show APP's (or every app's) containers: status, restarts, ports."""
    from .. import lifecycle_ops

    apps = [context.state.require_app(app)] if app else context.state.list_apps()
    reports = [lifecycle_ops.report(context, name) for name in apps]
    if fmt == "json":
        click.echo(json.dumps(reports[0] if app else reports, indent=2, sort_keys=True))
        return
    for data in reports:
        context.output.banner(f"{data['app']} ps information")
        click.echo(
            f"       Deployed:   {'true' if data['deployed'] else 'false'}"
            + (f" (v{data['release']})" if data["release"] else "")
        )
        click.echo(
            f"       Running:    {data['running']} of {sum(data['formation'].values())}"
            + ("  (stopped by ps:stop)" if data["stopped"] else "")
        )
        click.echo(f"       Formation:  {' '.join(f'{p}={n}' for p, n in data['formation'].items())}")
        click.echo(f"       Restarts:   {data['restarts']}")
        for row in data["processes"]:
            port = row.get("address") or (f"127.0.0.1:{row['port']}" if row.get("port") else "-")
            if row.get("node"):
                port += f" on {row['node']}"
            click.echo(
                f"       {row['name']:<28} {row['status']:<11} v{row['release']:<4} "
                f"restarts={row['restarts']:<3} {port}"
            )


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@access.app_command()
@click.command("releases")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("-n", "--num", "limit", type=click.IntRange(1), default=20, show_default=True)
@pass_context
def releases(context: Context, app: str, fmt: str, limit: int) -> None:
    """List APP's releases: version, time, source revision, description."""
    state = context.state
    state.require_app(app)
    current = state.current_release(app)
    rows = list(reversed(state.releases(app)))[:limit]
    if fmt == "json":
        click.echo(
            json.dumps(
                [r.as_dict() | {"current": bool(current and r.version == current.version)} for r in rows], indent=2
            )
        )
        return
    context.output.banner(f"{app} releases")
    for r in rows:
        mark = "*" if current and r.version == current.version else " "
        rev = (r.revision or "")[:7] or "-"
        status = "" if r.status == "succeeded" else f" ({r.status})"
        click.echo(f"{mark} v{r.version:<4} {_when(r.created)}  {rev:<7}  {r.description}{status}")


@access.app_command()
@click.command("releases:rollback")
@click.argument("app")
@click.argument("version", required=False)
@pass_context
def releases_rollback(context: Context, app: str, version: str | None) -> None:
    """Make a new release with the image and config of VERSION (default: the previous one)."""
    context.state.require_app(app)
    number: int | None = None
    if version is not None:
        text = version[1:] if version.startswith("v") else version
        if not (text.isascii() and text.isdigit()):
            raise ValidationError(f"invalid version {version!r}: use a number like 3 or v3")
        number = int(text)
    target = lifecycle.rollback_target(context, app, number)
    if target.image and not _image_exists(target.image):
        raise SkiffError(f"the image of v{target.version} was pruned (ps:set {app} keep-releases N keeps more)")
    lifecycle.redeploy(context, app, f"Rollback to v{target.version}", base=target, use_base_config=True)


def _image_exists(image: str) -> bool:
    from docker.errors import ImageNotFound

    from .. import engine

    try:
        engine.client().api.inspect_image(image)
    except ImageNotFound:
        return False
    return True


COMMANDS: list[click.Command] = [
    ps_scale,
    ps_stop,
    ps_start,
    ps_restart,
    ps_rebuild,
    ps_restore,
    ps_retire,
    ps_report,
    releases,
    releases_rollback,
]
