"""``registry:login``, ``registry:logout`` and ``registry:report`` (Dokku's names); ``registry:set`` is generated."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from skiff import access, dockerclient
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from . import credentials
from .settings import SETTINGS, repository
from .settings import server as parse_server

USERNAME_MAX = 255
PASSWORD_MAX = 4096


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def report_fields(context: Context, app: str | None) -> dict[str, Any]:
    values = SETTINGS.values(context.state, app or "")
    server = values.get("server") or ""
    fields: dict[str, Any] = {
        "server": server,
        "push_on_release": bool(values.get("push-on-release")),
        "logged_in": bool(server) and credentials.lookup(context.root, server) is not None,
    }
    if app:
        fields["image_repo"] = repository(context.state, app)
    return fields


def read_password(stream: Any = None) -> str:
    """The password: the first line of stdin (never an argument, so never in ``ps``)."""
    stream = stream or sys.stdin
    if stream is None or stream.isatty():
        raise ValidationError("registry:login reads the password from stdin: echo PASSWORD | skiff registry:login ...")
    password = stream.readline(PASSWORD_MAX + 2).rstrip("\r\n")
    if not password or len(password) > PASSWORD_MAX or "\n" in password:
        raise ValidationError("registry:login: an empty or too long password on stdin")
    return password


@access.admin_command
@click.command("registry:login")
@click.option("--global", "is_global", is_flag=True, help="Accepted for Dokku's syntax: credentials are per server.")
@click.argument("server")
@click.argument("username")
@pass_context
def registry_login(context: Context, is_global: bool, server: str, username: str) -> None:
    """Log in to the registry SERVER as USERNAME; the password is read from stdin.

    The engine checks the credentials with the registry first; they are stored 0600 in
    Skiff's own docker config directory (never the host's ~/.docker).
    """
    import docker.errors

    parse_server(server)
    if not username or len(username) > USERNAME_MAX or not username.isprintable() or ":" in username:
        raise ValidationError(f"invalid registry user name {username[:40]!r}")
    password = read_password()
    client = dockerclient.shared()
    try:
        client.login(username=username, password=password, registry=server, reauth=True)
    except docker.errors.APIError as exc:
        raise SkiffError(
            f"registry {server} refused the login of {username}: {_one_line(exc.explanation or exc)}"
        ) from None
    credentials.store(context.root, server, username, password)
    context.output.step(f"Logged in to {server} as {username}")


@access.admin_command
@click.command("registry:logout")
@click.option("--global", "is_global", is_flag=True, help="Accepted for Dokku's syntax: credentials are per server.")
@click.argument("server")
@pass_context
def registry_logout(context: Context, is_global: bool, server: str) -> None:
    """Forget the stored credentials of SERVER."""
    parse_server(server)
    if not credentials.forget(context.root, server):
        raise SkiffError(f"not logged in to {server}")
    context.output.step(f"Logged out of {server}")


@access.app_command(app="app")
@click.command("registry:report")
@click.argument("app", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def registry_report(context: Context, app: str | None, fmt: str) -> None:
    """Show the registry settings of APP (or the global ones) and whether Skiff is logged in there."""
    if app:
        context.state.require_app(app)
    fields = report_fields(context, app)
    if fmt == "json":
        click.echo(json.dumps(fields, indent=2, sort_keys=True))
    else:
        context.output.fields(f"{app} registry information" if app else "registry global information", fields)


COMMANDS = (registry_login, registry_logout, registry_report)
