"""nginx:* and proxy:* commands (nginx:set is generated from the declared settings)."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import click

from skiff import access
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from .. import control, proxy
from .. import settings as nginx_settings
from ..settings import PLUGIN, load
from .domains import print_fields, switch

MAX_CUSTOM = 16 * 1024


@access.app_command()
@click.command("nginx:show-config")
@click.argument("app")
@pass_context
def nginx_show_config(context: Context, app: str) -> None:
    """Print the nginx config skiff wrote for APP."""
    context.state.require_app(app)
    path = load(context).app_file(app)
    if not path.exists():
        raise SkiffError(f"app {app} has no nginx config (not deployed, no web process, or proxy disabled)")
    click.echo(path.read_text().rstrip())


@access.app_command()
@click.command("nginx:validate-config")
@click.argument("app", required=False)
@pass_context
def nginx_validate_config(context: Context, app: str | None) -> None:
    """Check the whole nginx config with nginx -t (with APP: also that its file is current)."""
    settings = load(context)
    ok, message = control.test(settings)
    if not ok:
        raise SkiffError(f"nginx config is invalid: {message}")
    if app:
        context.state.require_app(app)
        path = settings.app_file(app)
        want = proxy.config_text(context, app, proxy.current_meta(context, app), settings)
        have = path.read_text() if path.exists() else None
        if want != have:
            raise SkiffError(f"the nginx config of {app} is out of date; run proxy:build-config {app}")
    context.output.step("nginx config is valid")


@access.admin_command
@click.command("nginx:reload")
@pass_context
def nginx_reload(context: Context) -> None:
    """Test the config and reload nginx."""
    settings = load(context)
    ok, message = control.test(settings)
    if not ok:
        raise SkiffError(f"nginx config is invalid, not reloading: {message}")
    if control.reload(settings, context.output):
        context.output.step("nginx reloaded")


def _show_log(path: Path, tail: bool, lines: int) -> None:
    if not path.exists():
        if not tail:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    with open(path, errors="replace") as f:
        for line in deque(f, maxlen=lines):
            click.echo(line.rstrip("\n"))
        if not tail:
            return
        try:
            while True:
                line = f.readline()
                if line:
                    click.echo(line.rstrip("\n"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            return


def _logs_command(kind: str) -> click.Command:
    @access.app_command()
    @click.command(f"nginx:{kind}-logs")
    @click.argument("app")
    @click.option("-t", "--tail", is_flag=True, help="Keep printing new lines.")
    @click.option("-n", "--num", "num", type=click.IntRange(0, 100000), default=100, show_default=True)
    @pass_context
    def command(context: Context, app: str, tail: bool, num: int) -> None:
        context.state.require_app(app)
        _show_log(load(context).log_file(app, kind), tail, num)

    command.help = f"Print APP's nginx {kind} log (-t follows it)."
    return command


nginx_access_logs = _logs_command("access")
nginx_error_logs = _logs_command("error")


@local_only
@click.command("nginx:custom-config")
@click.argument("app")
@click.option("--clear", is_flag=True, help="Remove APP's custom config.")
@pass_context
def nginx_custom_config(context: Context, app: str, clear: bool) -> None:
    """Add raw nginx directives (stdin) to every server block of APP (server admin only).

    The text is tested with nginx -t before it is kept; a config nginx
    refuses leaves APP's current config (and every other app) serving.
    """
    context.state.require_app(app)
    text = "" if clear else sys.stdin.read(MAX_CUSTOM + 1)
    if len(text) > MAX_CUSTOM or "\x00" in text:
        raise ValidationError("custom config too large or not text")
    if context.state.current_release(app) is not None:
        context.output.step(f"Testing the custom config of {app}")
        proxy.rebuild(context, [app], custom={app: text})
    if text.strip():
        context.state.set_property(PLUGIN, "custom-config", text, app=app)
    else:
        context.state.delete_property(PLUGIN, "custom-config", app=app)
    context.output.step(f"Custom config of {app} {'cleared' if not text.strip() else 'stored'}")


def nginx_report_fields(context: Context, app: str | None) -> dict[str, Any]:
    settings = load(context)
    fields: dict[str, Any] = {
        "binary": settings.bin,
        "main_config": settings.conf or "(nginx default)",
        "include_dir": str(settings.conf_dir),
        "running": control.master_pid(settings) is not None,
        "http_port": settings.http_port,
        "https_port": settings.https_port,
    }
    if app:
        path = settings.app_file(app)
        fields.update(
            {
                "config_file": str(path) if path.exists() else None,
                "access_log": str(settings.log_file(app, "access")),
                "error_log": str(settings.log_file(app, "error")),
                "proxy_enabled": bool(proxy.prop(context, "proxy", app, default=True)),
                "custom_config": bool(proxy.prop(context, "custom-config", app, default="")),
                **{key.replace("-", "_"): value for key, value in nginx_settings.app_options(context, app).items()},
            }
        )
    return fields


@access.app_command()
@click.command("nginx:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def nginx_report(context: Context, app: str | None, fmt: str) -> None:
    """Show where nginx is, whether it runs, and APP's settings."""
    if app:
        context.state.require_app(app)
    print_fields(context, f"{app + ' ' if app else ''}nginx information", nginx_report_fields(context, app), fmt)


@access.app_command()
@click.command("proxy:enable")
@click.argument("app")
@pass_context
def proxy_enable(context: Context, app: str) -> None:
    """Put APP behind nginx again."""
    switch(context, app, "proxy", "the proxy", True)


@access.app_command()
@click.command("proxy:disable")
@click.argument("app")
@pass_context
def proxy_disable(context: Context, app: str) -> None:
    """Take APP out of nginx (its containers keep running)."""
    switch(context, app, "proxy", "the proxy", False)


@access.admin_command
@click.command("proxy:build-config")
@click.argument("app", required=False)
@click.option("--all", "all_apps", is_flag=True, help="Every app.")
@pass_context
def proxy_build_config(context: Context, app: str | None, all_apps: bool) -> None:
    """Rewrite APP's nginx config from its current release and reload."""
    if not app and not all_apps:
        raise click.UsageError("give APP or --all")
    apps = context.state.list_apps() if all_apps else [context.state.require_app(app or "")]
    proxy.apply_change(context, apps)


@access.app_command()
@click.command("proxy:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def proxy_report(context: Context, app: str, fmt: str) -> None:
    """Show APP's proxy: enabled, type, upstreams, URLs."""
    context.state.require_app(app)
    meta = proxy.current_meta(context, app) or {}
    fields = {
        "enabled": bool(proxy.prop(context, "proxy", app, default=True)),
        "type": "nginx",
        "upstreams": list(meta.get("upstreams") or []),
        "urls": proxy.urls(context, app, meta),
    }
    print_fields(context, f"{app} proxy information", fields, fmt)


COMMANDS: list[click.Command] = [
    nginx_show_config,
    nginx_validate_config,
    nginx_reload,
    nginx_access_logs,
    nginx_error_logs,
    nginx_custom_config,
    nginx_report,
    proxy_enable,
    proxy_disable,
    proxy_build_config,
    proxy_report,
]
