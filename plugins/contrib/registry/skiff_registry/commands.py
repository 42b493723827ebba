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
from .push import one_line
from .settings import SETTINGS, push_server, repository
from .settings import server as parse_server

USERNAME_MAX = 255
PASSWORD_MAX = 4096


def report_fields(context: Context, app: str | None) -> dict[str, Any]:
    values = SETTINGS.values(context.state, app or "")
    server = values.get("server") or ""
    fields: dict[str, Any] = {
        "server": server,
        "push_server": values.get("push-server") or "",
        "push_on_release": bool(values.get("push-on-release")),
        "logged_in": bool(server) and credentials.lookup(context.root, server) is not None,
    }
    if app:
        fields["image_repo"] = repository(context.state, app)
    else:
        from . import serve

        fields["serving"] = serve.running_pid(context.root) is not None
        fields["ca_certificate"] = str(serve.ca_file(context.root)) if serve.ca_file(context.root).exists() else ""
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
@click.argument("args", nargs=-1, required=True)
@pass_context
def registry_login(context: Context, is_global: bool, args: tuple[str, ...]) -> None:
    """registry:login [--global|APP] SERVER USERNAME: log in; the password is read from stdin.

    The engine checks the credentials with the registry first; they are stored 0600 in
    Skiff's own docker config directory (never the host's ~/.docker). Credentials are per
    server: an APP (Dokku's syntax) must exist, and its pushes to SERVER use them.
    """
    import docker.errors

    if len(args) == 3 and not is_global:
        context.state.require_app(args[0])
        args = args[1:]
    if len(args) != 2:
        raise click.UsageError("usage: registry:login [--global|APP] SERVER USERNAME (password on stdin)")
    server, username = args
    parse_server(server)
    if not username or len(username) > USERNAME_MAX or not username.isprintable() or ":" in username:
        raise ValidationError(f"invalid registry user name {username[:40]!r}")
    password = read_password()
    client = dockerclient.shared()
    via = push_server(context.state, "", server) if SETTINGS.get(context.state, "server") == server else server
    try:
        client.login(username=username, password=password, registry=via, reauth=True)
    except docker.errors.APIError as exc:
        raise SkiffError(
            f"registry {server} refused the login of {username}: {one_line(exc.explanation or exc)}"
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


@access.root_command
@click.command("registry:serve")
@click.argument("address", required=False)
@click.option("--stop", "stop_it", is_flag=True, help="Stop the registry Skiff runs.")
@pass_context
def registry_serve(context: Context, address: str | None, stop_it: bool) -> None:
    """Run a registry for the cluster on ADDRESS (HOST[:PORT], default port 5443): TLS, a password.

    ADDRESS must mean the same on every node (the manager's address on the cluster network,
    never 127.0.0.1). Skiff makes its own CA and a certificate for ADDRESS, an account with a
    generated password (stored like registry:login's), and sets the global server. Each node's
    engine trusts the CA as /etc/docker/certs.d/HOST:PORT/ca.crt. It also listens on
    127.0.0.1:PORT, where this host's engine may push without trusting the CA (docker trusts
    loopback registries): registry:set --global push-server 127.0.0.1:PORT. Root on the server only.
    It starts again at boot (ps:restore, skiff-restore.service) until registry:serve --stop.
    """
    from . import serve

    if stop_it:
        if address:
            raise click.UsageError("registry:serve --stop takes no address")
        context.output.step(
            "Stopped the registry" if serve.stop(context.root, forget=True) else "No registry was running"
        )
        return
    if not address:
        raise click.UsageError("usage: registry:serve HOST[:PORT] | registry:serve --stop")
    host, _, port_text = address.partition(":")
    parse_server(address)
    if host in ("localhost", "0.0.0.0") or host.startswith("127."):
        raise ValidationError(
            f"{address}: a loopback address means another machine on each node; give the manager's address"
        )
    port = int(port_text) if port_text else serve.DEFAULT_PORT
    server, local = serve.start(context.root, host, port)
    SETTINGS.set(context, "server", server)
    context.output.step(f"Registry listening on {server} and {local} (TLS, user {serve.USER}); global server set")
    context.output.info(
        f"An engine in this host's own network namespace that does not trust the CA pushes over loopback: "
        f"registry:set --global push-server {local}"
    )
    context.output.info(f"Nodes trust its CA as /etc/docker/certs.d/{server}/ca.crt: {serve.ca_file(context.root)}")


COMMANDS = (registry_login, registry_logout, registry_report, registry_serve)
