"""checks:*, resource:*, docker-options:* (checks:set and ps:set are generated from the declared settings)."""

from __future__ import annotations

import json
import re

import click

from skiff import access
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from .. import hostreach, options, settings

MEMORY = re.compile(r"\A[0-9]+[bkmgBKMG]?\Z")
CPU = re.compile(r"\A[0-9]+(\.[0-9]+)?\Z")


def _processes(value: str | None) -> list[str]:
    from ..scheduler import validate_process

    if not value:
        return []
    return [validate_process(p.strip()) for p in value.split(",") if p.strip()]


def _banner_fields(context: Context, title: str, fields: dict) -> None:
    context.output.fields(title, fields)


# -- checks ----------------------------------------------------------------------


def _check_mode_command(name: str, mode: str, doc: str) -> click.Command:
    @access.app_command()
    @click.command(name, help=doc)
    @click.argument("app")
    @click.argument("processes", required=False)
    @pass_context
    def command(context: Context, app: str, processes: str | None) -> None:
        context.state.require_app(app)
        names = _processes(processes)
        settings.set_check_mode(context.state, app, names, mode)
        what = ", ".join(names) or "all processes"
        context.output.step(f"Checks {mode} for {app} ({what}); applies on the next deploy")

    return command


checks_enable = _check_mode_command("checks:enable", "enabled", "Run the checks again: checks:enable APP [PROCESS,...]")
checks_disable = _check_mode_command(
    "checks:disable",
    "disabled",
    "Stop old containers before starting new ones, without checks (downtime): checks:disable APP [PROCESS,...]",
)
checks_skip = _check_mode_command(
    "checks:skip", "skipped", "Keep zero-downtime starts but skip the checks: checks:skip APP [PROCESS,...]"
)


@access.app_command()
@click.command("checks:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def checks_report(context: Context, app: str, fmt: str) -> None:
    """Show APP's check settings and the app.json checks of its current release."""
    state = context.state
    state.require_app(app)
    data = settings.checks(state, app)
    release = state.current_release(app)
    data["healthchecks"] = (release.meta.get("app_json") or {}).get("healthchecks", {}) if release else {}
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    data["disabled"] = ", ".join(data["disabled"]) or "none"
    data["skipped"] = ", ".join(data["skipped"]) or "none"
    _banner_fields(context, f"{app} checks information", data)


@access.app_command()
@click.command("checks:run")
@click.argument("app")
@click.argument("process", required=False)
@pass_context
def checks_run(context: Context, app: str, process: str | None) -> None:
    """Run the checks against APP's running containers (or PROCESS's)."""
    from .. import engine
    from ..checks import CheckFailed, checks_for, run_check
    from ..engine import LABEL_PORT, LABEL_PROCESS
    from ..scheduler import alive_probe, running_instances

    state = context.state
    state.require_app(app)
    release = state.current_release(app)
    if release is None:
        raise SkiffError(f"app {app} has not been deployed yet: push it first")
    check_settings = settings.checks(state, app)
    app_json = release.meta.get("app_json") or {}
    c = engine.client()
    failures = 0
    for entry in running_instances(c, app):
        labels = entry["Labels"]
        if process and labels.get(LABEL_PROCESS) != process:
            continue
        name = engine.name_of(entry)
        port = int(labels[LABEL_PORT]) if labels.get(LABEL_PORT) else None
        try:
            for chk in checks_for(app_json, labels.get(LABEL_PROCESS, ""), check_settings):
                run_check(chk, port, alive_probe(c, entry["Id"]), float(check_settings["timeout"]))
        except CheckFailed as exc:
            failures += 1
            context.output.warn(f"{name}: {exc}")
        else:
            context.output.step(f"{name}: checks passed")
    if failures:
        raise SkiffError(f"{failures} container{'s' if failures > 1 else ''} of {app} failed the checks")


# -- resources -------------------------------------------------------------------


@access.app_command()
@click.command("resource:limit")
@click.argument("app")
@click.option("--memory", help="Memory limit, e.g. 512m or 1g.")
@click.option("--cpu", help="CPUs, e.g. 0.5 or 2.")
@click.option(
    "--process",
    "process",
    default=settings.DEFAULT_PROCESS,
    show_default="every process",
    help="Limit only this process type.",
)
@pass_context
def resource_limit(context: Context, app: str, memory: str | None, cpu: str | None, process: str) -> None:
    """Set memory / CPU limits of APP's containers (applies on the next deploy)."""
    state = context.state
    state.require_app(app)
    if process != settings.DEFAULT_PROCESS:
        _processes(process)
    if memory is None and cpu is None:
        raise click.UsageError("give --memory and/or --cpu")
    if memory is not None and not MEMORY.fullmatch(memory):
        raise ValidationError(f"invalid memory {memory!r}: use a number with b, k, m or g")
    if cpu is not None and (not CPU.fullmatch(cpu) or float(cpu) <= 0):
        raise ValidationError(f"invalid cpu {cpu!r}: use a positive number like 0.5")
    table = settings.resources(state, app)
    entry = dict(table.get(process, {}))
    if memory is not None:
        entry["memory"] = memory
    if cpu is not None:
        entry["cpu"] = cpu
    table[process] = entry
    state.set_property(settings.PLUGIN, "resources", table, app=app)
    context.output.step(
        f"Limits of {app} ({'all processes' if process == settings.DEFAULT_PROCESS else process}): "
        + ", ".join(f"{k}={v}" for k, v in entry.items())
        + "; run ps:restart to apply"
    )


@access.app_command()
@click.command("resource:limit-clear")
@click.argument("app")
@click.option("--process", "process", default=None, help="Clear only this process type's limits.")
@pass_context
def resource_limit_clear(context: Context, app: str, process: str | None) -> None:
    """Remove APP's resource limits."""
    state = context.state
    state.require_app(app)
    table = settings.resources(state, app)
    if process:
        table.pop(process, None)
    else:
        table = {}
    state.set_property(settings.PLUGIN, "resources", table, app=app)
    context.output.step(f"Cleared limits of {app}; run ps:restart to apply")


@access.app_command()
@click.command("resource:report")
@click.argument("app")
@pass_context
def resource_report(context: Context, app: str) -> None:
    """Show APP's resource limits."""
    context.state.require_app(app)
    table = settings.resources(context.state, app)
    fields = {("all processes" if k == settings.DEFAULT_PROCESS else k): v for k, v in table.items()}
    _banner_fields(context, f"{app} resource information", fields or {"limits": "none"})


# -- docker options ---------------------------------------------------------------


def is_root_shell(context: Context) -> bool:
    """Root in a shell on the server: not over SSH (whatever the key), started as root."""
    return context.from_root_shell


def _phases(value: str) -> list[str]:
    phases = value.split(",")
    for phase in phases:
        if phase not in options.PHASES:
            raise ValidationError(f"unknown phase {phase!r}: use build, deploy or run")
    return phases


def _refuse_host_reaching(context: Context, app: str, normal: str) -> str | None:
    """The (normalised) option's host-reaching reason, if any; refused unless from a root shell."""
    reason = hostreach.host_reaching_reason([normal], app)
    if reason and not is_root_shell(context):
        raise SkiffError(
            f"{normal} reaches the host ({reason}): only root on the server may set it "
            f"(docker-options:add from a root shell)"
        )
    return reason


@access.app_command()
@click.command("docker-options:add", context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("phases")
@click.argument("option", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_context
def docker_options_add(context: Context, app: str, phases: str, option: tuple[str, ...]) -> None:
    """Add a docker option for PHASES (build,deploy,run): docker-options:add APP deploy --add-host=db:10.0.0.2

    Host-reaching options (host paths, --privileged, --cap-add, root, host
    namespaces, ...) only from a root shell on the server; adding one there
    also confirms it for APP.
    """
    state = context.state
    state.require_app(app)
    normals = [(phase, options.normalise(phase, list(option))) for phase in _phases(phases)]  # all or nothing
    reasons = {normal: _refuse_host_reaching(context, app, normal) for _, normal in normals}
    table = settings.docker_options(state, app)
    confirmed = settings.root_confirmed(state, app)
    for phase, normal in normals:
        entries = table.setdefault(phase, [])
        if normal not in entries:
            entries.append(normal)
        if reasons[normal]:
            confirmed.setdefault(phase, {})[normal] = app
        context.output.step(
            f"Added {normal} to the {phase} options of {app}"
            + (" (host-reaching: confirmed by root)" if reasons[normal] else "")
        )
    state.set_property(settings.PLUGIN, "docker-options", table, app=app)
    settings.set_root_confirmed(state, app, confirmed)


@access.admin_command  # the command itself refuses anything but a root shell
@click.command("docker-options:confirm")
@click.argument("app")
@click.argument("phases")
@pass_context
def docker_options_confirm(context: Context, app: str, phases: str) -> None:
    """Root only: confirm the host-reaching options stored for APP's PHASES so they apply (e.g. after an upgrade)."""
    state = context.state
    state.require_app(app)
    names = _phases(phases)
    if not is_root_shell(context):
        raise SkiffError(
            "only root on the server may confirm host-reaching options (docker-options:confirm from a root shell)"
        )
    table = settings.docker_options(state, app)
    confirmed = settings.root_confirmed(state, app)
    count = 0
    for phase in names:
        for option in table.get(phase, []):
            if isinstance(option, str) and hostreach.host_reaching_reason([option], app):
                options.normalise(phase, [option])
                confirmed.setdefault(phase, {})[option] = app
                context.output.step(f"Confirmed {option} for the {phase} phase of {app}")
                count += 1
    settings.set_root_confirmed(state, app, confirmed)
    if not count:
        context.output.info(f"{app} has no host-reaching options in {phases}")


@access.app_command()
@click.command("docker-options:remove", context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("phases")
@click.argument("option", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_context
def docker_options_remove(context: Context, app: str, phases: str, option: tuple[str, ...]) -> None:
    """Remove a docker option: docker-options:remove APP PHASES OPTION"""
    state = context.state
    state.require_app(app)
    normals = [(phase, options.normalise(phase, list(option))) for phase in _phases(phases)]
    table = settings.docker_options(state, app)
    confirmed = settings.root_confirmed(state, app)
    for phase, normal in normals:
        confirmed.get(phase, {}).pop(normal, None)
        if normal in table.get(phase, []):
            table[phase].remove(normal)
            context.output.step(f"Removed {normal} from the {phase} options of {app}")
        else:
            context.output.warn(f"{normal} was not set for {phase}")
    state.set_property(settings.PLUGIN, "docker-options", table, app=app)
    settings.set_root_confirmed(state, app, confirmed)


@access.app_command()
@click.command("docker-options:clear")
@click.argument("app")
@click.argument("phases", required=False)
@pass_context
def docker_options_clear(context: Context, app: str, phases: str | None) -> None:
    """Remove every docker option of APP (or of PHASES)."""
    state = context.state
    state.require_app(app)
    table = settings.docker_options(state, app)
    confirmed = settings.root_confirmed(state, app)
    for phase in _phases(phases) if phases else list(options.PHASES):
        table.pop(phase, None)
        confirmed.pop(phase, None)
    state.set_property(settings.PLUGIN, "docker-options", table, app=app)
    settings.set_root_confirmed(state, app, confirmed)
    context.output.step(f"Cleared docker options of {app}")


def _shown(app: str, phase: str, option: str, confirmed: dict[str, dict[str, str]]) -> str:
    if hostreach.host_reaching_reason([option], app) and not settings.is_confirmed(confirmed, app, phase, option):
        return f"{option} (not applied: needs root's confirmation)"
    return option


@access.app_command()
@click.command("docker-options:report")
@click.argument("app")
@pass_context
def docker_options_report(context: Context, app: str) -> None:
    """Show APP's docker options per phase (host-reaching ones root has not confirmed are marked)."""
    context.state.require_app(app)
    table = settings.docker_options(context.state, app)
    confirmed = settings.root_confirmed(context.state, app)
    _banner_fields(
        context,
        f"{app} docker options information",
        {
            phase: " ".join(_shown(app, phase, str(o), confirmed) for o in table.get(phase, []))
            for phase in options.PHASES
        },
    )


COMMANDS: list[click.Command] = [
    checks_enable,
    checks_disable,
    checks_skip,
    checks_report,
    checks_run,
    resource_limit,
    resource_limit_clear,
    resource_report,
    docker_options_add,
    docker_options_confirm,
    docker_options_remove,
    docker_options_clear,
    docker_options_report,
]
