"""The ``postgres:*`` commands (Dokku's postgres plugin names)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from typing import IO, Any

import click

from skiff import access, lifecycle
from skiff.cli import local_only, pass_context
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError

from . import container as pg_container
from . import service as pg_service
from .service import Service

# -- create / destroy -------------------------------------------------------


@access.admin_command
@click.command("postgres:create")
@click.argument("name")
@click.option(
    "--image",
    help="Image with the official postgres image's interface (default: postgres:17 "
    "if present, else the local skiff/postgres:trixie).",
)
@click.option("--password", help="Use this password (visible in ps while skiff runs; prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_context
def postgres_create(context: Context, name: str, image: str | None, password: str | None, password_stdin: bool) -> None:
    """Create a postgres service NAME and wait until it accepts connections."""
    pg_service.service_name(name)
    if password and password_stdin:
        raise click.UsageError("give --password or --password-stdin, not both")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password:
        context.output.warn("--password is visible in process listings; --password-stdin is safer")
    password = pg_service.check_password(password) if password else pg_service.new_password()
    if image is not None and (not image.strip() or image.startswith("-")):
        raise ValidationError(f"invalid image {image!r}")
    with pg_service.service_lock(context, name):
        if pg_service.exists(context, name):
            raise SkiffError(f"postgres service {name} already exists")
        c = pg_container.client()
        image = image or pg_container.default_image(context, c)
        service = Service(name=name, image=image, password=password)
        if pg_container.get(c, service) is not None:
            raise SkiffError(f"a container named {service.container} already exists; remove it first")
        path = pg_service.data_dir(context, name)
        if path.exists() and any(path.iterdir()):
            raise SkiffError(f"{path} already holds data; remove it or pick another name")
        pg_container.ensure_image(context, c, image)
        context.output.step(f"Starting postgres {name} ({image})")
        try:
            running = pg_container.run(context, c, service)
            context.output.info("Waiting for the server to accept connections")
            pg_container.wait_ready(running, service)
        except BaseException:
            pg_container.remove(c, service, graceful=False)
            remove_data(context, c, service)
            raise
        pg_service.save(context, service)
    context.output.banner(f"Postgres service created: {name}")
    context.output.info(f"Link it to an app with: postgres:link {name} APP")


def _refuse_if_linked(context: Context, service: Service) -> None:
    """Refuse while apps are linked; links to apps that no longer exist are dropped."""
    live = [app for app in sorted(service.links) if context.state.app_exists(app)]
    if live:
        raise SkiffError(f"postgres {service.name} is linked to {', '.join(live)}; unlink it first")


def remove_data(context: Context, c: Any, service: Service) -> None:
    """Delete the service's data directory (the server's files belong to its uid)."""
    path = pg_service.data_dir(context, service.name)
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        pass
    c.containers.run(
        service.image,
        entrypoint=["rm", "-rf", "--one-file-system", "/service/data"],
        volumes={str(path): {"bind": "/service", "mode": "rw"}},
        remove=True,
        user="0",
        labels={pg_service.LABEL: "postgres"},
    )
    shutil.rmtree(path)


@access.admin_command
@click.command("postgres:destroy")
@click.argument("name")
@click.option("--force", "-f", is_flag=True, help="Do not ask for the service name.")
@pass_context
def postgres_destroy(context: Context, name: str, force: bool) -> None:
    """Destroy service NAME and its data (refused while apps are linked)."""
    _refuse_if_linked(context, pg_service.load(context, name))
    if not force:
        if context.via_ssh and not sys.stdin.isatty():
            raise SkiffError("destroying needs confirmation: pass --force, or run it with a terminal (ssh -t)")
        context.output.warn(f"This will destroy postgres {name} and all of its data.")
        answer = click.prompt("To proceed, type the service name", default="", show_default=False)
        if answer.strip() != name:
            raise SkiffError("confirmation did not match the service name; nothing was destroyed")
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        _refuse_if_linked(context, service)
        c = pg_container.client()
        context.output.step(f"Destroying postgres {name}")
        pg_container.remove(c, service, graceful=False)
        pg_container.remove_network(c, service)
        remove_data(context, c, service)
        pg_service.delete(context, name)
    context.output.step(f"Destroyed postgres {name}")


# -- looking ------------------------------------------------------------------


def _status(container: Any) -> str:
    return container.status if container is not None else "missing"


def _exposed(service: Service) -> str:
    if not service.expose:
        return "-"
    host, port = service.expose["host"], service.expose.get("port")
    return f"{host}:{port}->{pg_service.PORT}" if ":" not in host else f"[{host}]:{port}->{pg_service.PORT}"


@access.admin_command
@click.command("postgres:list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_context
def postgres_list(context: Context, fmt: str) -> None:
    """List postgres services (never their passwords)."""
    services = sorted(pg_service.all_services(context), key=lambda s: s.name)
    c = pg_container.client() if services else None
    rows = [
        {
            "name": s.name,
            "image": s.image,
            "status": _status(pg_container.get(c, s)),
            "exposed": _exposed(s),
            "links": sorted(s.links),
        }
        for s in services
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    context.output.banner("Postgres services")
    click.echo(f"{'NAME':<20} {'IMAGE':<24} {'STATUS':<10} {'EXPOSED':<24} LINKS")
    for r in rows:
        click.echo(
            f"{r['name']:<20} {r['image']:<24} {r['status']:<10} {r['exposed']:<24} {', '.join(r['links']) or '-'}"
        )


@access.service_command(service="name", kind="postgres")
@click.command("postgres:exists")
@click.argument("name")
@pass_context
def postgres_exists(context: Context, name: str) -> None:
    """Exit 0 if service NAME exists, 1 if not."""
    pg_service.load(context, name)
    click.echo(f"postgres service {name} exists")


INFO_FIELDS = (
    "dsn",
    "status",
    "version",
    "image",
    "id",
    "data-dir",
    "internal-ip",
    "hostname",
    "exposed-ports",
    "links",
)


def _info_options(f):
    for name in reversed(INFO_FIELDS):
        f = click.option(
            f"--{name}",
            "field",
            flag_value=name,
            help=f"Print only the {name.replace('-', ' ')}" + (" (with the password)." if name == "dsn" else "."),
        )(f)
    return f


@access.service_command(service="name", kind="postgres")
@click.command("postgres:info")
@click.argument("name")
@_info_options
@pass_context
def postgres_info(context: Context, name: str, field: str | None) -> None:
    """Show service NAME: status, version, data dir, links. The password only with --dsn."""
    service = pg_service.load(context, name)
    if field == "dsn":
        click.echo(service.dsn())
        return
    c = pg_container.client()
    container = pg_container.get(c, service)
    running = container is not None and container.status == "running"
    info = {
        "status": _status(container),
        "version": pg_container.server_version(container, service) if running else "",
        "image": service.image,
        "id": container.id if container is not None else "",
        "data-dir": str(pg_service.data_dir(context, name) / "data"),
        "internal-ip": pg_container.internal_ip(container, service) if container is not None else "",
        "hostname": service.host,
        "exposed-ports": _exposed(service),
        "links": " ".join(f"{app}:{key}" for app, key in sorted(service.links.items())) or "-",
        "dsn": service.dsn(masked=True),
    }
    if field:
        click.echo(info[field])
        return
    context.output.fields(f"{name} postgres service information", {key: info[key] for key in INFO_FIELDS})


# -- links ------------------------------------------------------------------------


no_restart_option = click.option("--no-restart", is_flag=True, help="Change the config without a new release.")


def _refuse_locked(context: Context, app: str, no_restart: bool) -> None:
    """A link change that would redeploy a locked app (apps:lock) is refused before it is stored."""
    if not no_restart and context.state.current_release(app) is not None:
        lifecycle.refuse_if_locked(context, app)


def _redeploy(context: Context, app: str, description: str, no_restart: bool) -> None:
    if no_restart:
        context.output.info("The change applies on the app's next release (--no-restart)")
    elif context.state.current_release(app) is not None:
        lifecycle.redeploy(context, app, description)


def _on_network(context: Context, service: Service, app: str, change: Any) -> None:
    """Attach the service to (or detach it from) the app's network; with the engine away, say when it happens."""
    try:
        change(pg_container.client(), service, app)
    except SkiffError as exc:
        context.output.warn(
            f"postgres {service.name}: the network of {app} is not changed yet ({exc}); it is at {app}'s next deploy"
        )


@access.service_command(service="name", kind="postgres", app="app")
@click.command("postgres:link")
@click.argument("name")
@click.argument("app")
@click.option("--alias", "-a", help="Set <ALIAS>_URL instead of DATABASE_URL.")
@no_restart_option
@pass_context
def postgres_link(context: Context, name: str, app: str, alias: str | None, no_restart: bool) -> None:
    """Link service NAME to APP: set DATABASE_URL (or <ALIAS>_URL) and release."""
    pg_service.load(context, name)
    context.state.require_app(app)
    _refuse_locked(context, app, no_restart)
    # lock order: the app, then the service (as apps:destroy and apps:rename do)
    with lifecycle.app_lock(context, app), pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        if app in service.links:
            raise SkiffError(f"postgres {name} is already linked to {app} as {service.links[app]}")
        key = pg_service.pick_key(service, context.state.get_config(app), alias)
        context.state.set_config(app, {key: service.dsn()})
        service.links[app] = key
        pg_service.save(context, service)
        _on_network(context, service, app, pg_container.attach)  # the app's network: only linked apps reach it
    context.output.step(f"Linked postgres {name} to {app} as {key}")
    _redeploy(context, app, f"Link postgres {name}", no_restart)


@access.service_command(service="name", kind="postgres", app="app")
@click.command("postgres:unlink")
@click.argument("name")
@click.argument("app")
@no_restart_option
@pass_context
def postgres_unlink(context: Context, name: str, app: str, no_restart: bool) -> None:
    """Unlink service NAME from APP: unset its URL and release."""
    service = pg_service.load(context, name)
    if app in service.links and not context.state.app_exists(app):
        # a link left behind by an app destroyed while this plugin was disabled
        with pg_service.service_lock(context, name):
            service = pg_service.load(context, name)
            service.links.pop(app, None)
            pg_service.save(context, service)
        context.output.step(f"Removed the stale link of postgres {name} to {app} (the app no longer exists)")
        return
    context.state.require_app(app)
    _refuse_locked(context, app, no_restart)
    with lifecycle.app_lock(context, app), pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        if app not in service.links:
            raise NotFound(f"postgres {name} is not linked to {app}")
        key = service.links.pop(app)
        context.state.unset_config(app, [key])
        pg_service.save(context, service)
        _on_network(context, service, app, pg_container.detach)
    context.output.step(f"Unlinked postgres {name} from {app} ({key} removed)")
    _redeploy(context, app, f"Unlink postgres {name}", no_restart)


@access.service_command(service="name", kind="postgres")
@click.command("postgres:links")
@click.argument("name")
@pass_context
def postgres_links(context: Context, name: str) -> None:
    """List the apps linked to service NAME (and the key each one has)."""
    for app, key in sorted(pg_service.load(context, name).links.items()):
        click.echo(f"{app} {key}")


# -- data -----------------------------------------------------------------------------


def _running(context: Context, name: str) -> tuple[Service, Any]:
    service = pg_service.load(context, name)
    container = pg_container.get(pg_container.client(), service)
    if container is None or container.status != "running":
        raise SkiffError(f"postgres {name} is not running; start it with postgres:start {name}")
    return service, container


def _binary(stream: IO[Any], what: str) -> IO[bytes]:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        raise SkiffError(f"{what} needs a binary stream")
    return buffer


@access.service_command(service="name", kind="postgres")
@click.command("postgres:connect")
@click.argument("name")
@pass_context
def postgres_connect(context: Context, name: str) -> None:
    """Open psql in the service's container (interactive)."""
    service, container = _running(context, name)
    tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    code = subprocess.call(
        ["docker", "exec", "-i", *tty, container.id, "psql", "-U", service.user, "-d", service.database]
    )
    if code:
        raise click.exceptions.Exit(code)


@access.service_command(service="name", kind="postgres")
@click.command("postgres:export")
@click.argument("name")
@pass_context
def postgres_export(context: Context, name: str) -> None:
    """Write a pg_dump -Fc dump of NAME's database to stdout: postgres:export NAME > dump."""
    service, container = _running(context, name)
    if sys.stdout.isatty():
        raise SkiffError("the dump is binary: redirect stdout to a file (postgres:export NAME > FILE)")
    out = _binary(sys.stdout, "export")
    proc = subprocess.Popen(
        ["docker", "exec", container.id, "pg_dump", "-Fc", "-U", service.user, "-d", service.database],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    shutil.copyfileobj(proc.stdout, out, 64 * 1024)
    out.flush()
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.wait() != 0:
        raise SkiffError(f"pg_dump failed: {err.splitlines()[-1] if err else 'exit ' + str(proc.returncode)}")


@access.service_command(service="name", kind="postgres")
@click.command("postgres:import")
@click.argument("name")
@pass_context
def postgres_import(context: Context, name: str) -> None:
    """Restore a pg_dump -Fc dump from stdin into NAME (one transaction): postgres:import NAME < dump."""
    service, container = _running(context, name)
    if sys.stdin.isatty():
        raise SkiffError("pipe a dump into postgres:import (postgres:import NAME < FILE)")
    source = _binary(sys.stdin, "import")
    proc = subprocess.Popen(
        [
            "docker",
            "exec",
            "-i",
            container.id,
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "-U",
            service.user,
            "-d",
            service.database,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        shutil.copyfileobj(source, proc.stdin, 64 * 1024)
    except BrokenPipeError:
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.wait() != 0:
        detail = next((line for line in err.splitlines() if "error" in line.lower()), err[-200:])
        raise SkiffError(f"pg_restore failed, nothing was imported: {detail}")
    context.output.step(f"Imported the dump into postgres {name}")


@access.service_command(service="name", kind="postgres")
@click.command("postgres:logs")
@click.argument("name")
@click.option("--tail", "-t", "follow", is_flag=True, help="Keep following the log.")
@click.option("--num", "-n", type=click.IntRange(min=0), default=100, show_default=True, help="Lines to show (0: all).")
@pass_context
def postgres_logs(context: Context, name: str, follow: bool, num: int) -> None:
    """Show the server's log."""
    service = pg_service.load(context, name)
    container = pg_container.get(pg_container.client(), service)
    if container is None:
        raise SkiffError(f"postgres {name} has no container; start it with postgres:start {name}")
    if follow:
        code = subprocess.call(["docker", "logs", "--follow", "--tail", str(num) if num else "all", container.id])
        if code:
            raise click.exceptions.Exit(code)
        return
    click.echo(container.logs(tail=num or "all").decode("utf-8", "replace"), nl=False)


# -- running --------------------------------------------------------------------------------


def recreate(context: Context, c: Any, service: Service) -> Any:
    """Replace the container (same data, same password) with one built from ``service``."""
    pg_container.remove(c, service)
    running = pg_container.run(context, c, service)
    pg_container.wait_ready(running, service)
    return running


@access.service_command(service="name", kind="postgres")
@click.command("postgres:start")
@click.argument("name")
@pass_context
def postgres_start(context: Context, name: str) -> None:
    """Start service NAME (recreating its container from the data dir if it is gone)."""
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        c = pg_container.client()
        container = pg_container.get(c, service)
        if container is None:
            context.output.step(f"Recreating the container of postgres {name}")
            pg_container.ensure_image(context, c, service.image)
            container = pg_container.run(context, c, service)
        elif container.status != "running":
            container.start()
        pg_container.wait_ready(container, service)
    context.output.step(f"Postgres {name} is running")


@access.service_command(service="name", kind="postgres")
@click.command("postgres:stop")
@click.argument("name")
@pass_context
def postgres_stop(context: Context, name: str) -> None:
    """Stop service NAME (a fast shutdown; linked apps lose their database)."""
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        container = pg_container.get(pg_container.client(), service)
        if container is not None:
            container.stop(timeout=30)
    context.output.step(f"Postgres {name} stopped")


@access.service_command(service="name", kind="postgres")
@click.command("postgres:restart")
@click.argument("name")
@pass_context
def postgres_restart(context: Context, name: str) -> None:
    """Restart service NAME and wait until it accepts connections."""
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        c = pg_container.client()
        container = pg_container.get(c, service)
        if container is None:
            raise SkiffError(f"postgres {name} has no container; start it with postgres:start {name}")
        context.output.step(f"Restarting postgres {name}")
        container.restart(timeout=30)
        pg_container.wait_ready(container, service)
    context.output.step(f"Postgres {name} is running")


def parse_bind(target: str | None) -> tuple[str, int | None]:
    """``None`` / ``PORT`` / ``ADDR:PORT`` / ``[ADDR6]:PORT`` -> (address, port or None)."""
    if not target:
        return "127.0.0.1", None
    host, sep, port_text = target.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValidationError(f"invalid address {host!r}: give an IP address such as 127.0.0.1") from None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValidationError(f"invalid port {port_text!r}: give a number from 1 to 65535")
    return host, int(port_text)


@access.admin_command
@click.command("postgres:expose")
@click.argument("name")
@click.argument("target", required=False, metavar="[[ADDR:]PORT]")
@pass_context
def postgres_expose(context: Context, name: str, target: str | None) -> None:
    """Publish NAME's port 5432 on the host: on 127.0.0.1 unless an address is given."""
    host, port = parse_bind(target)
    root = context.from_root_shell
    if not pg_container.is_loopback(host) and not root:
        raise SkiffError(
            f"{host} is not a loopback address and reaches the host's network: only root on the server "
            "may expose a service on it (postgres:expose from a root shell)"
        )
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        c = pg_container.client()
        previous = service.expose
        service.expose = {"host": host, "port": port}
        if not pg_container.is_loopback(host):
            service.expose["root"] = True  # root stored it: applied at container creation
        context.output.step(f"Exposing postgres {name} on {host}:{port or '(any free port)'}")
        try:
            running = recreate(context, c, service)
        except Exception:
            service.expose = previous
            recreate(context, c, service)
            raise
        bound = pg_container.host_port(running)
        if bound:
            service.expose["port"] = bound[1]
        pg_service.save(context, service)
    context.output.info(f"Exposed on {_exposed(service)}")


@access.admin_command
@click.command("postgres:unexpose")
@click.argument("name")
@pass_context
def postgres_unexpose(context: Context, name: str) -> None:
    """Stop publishing NAME's port on the host."""
    with pg_service.service_lock(context, name):
        service = pg_service.load(context, name)
        if not service.expose:
            raise SkiffError(f"postgres {name} is not exposed")
        service.expose = None
        recreate(context, pg_container.client(), service)
        pg_service.save(context, service)
    context.output.step(f"Postgres {name} is no longer exposed")


@local_only
@click.command("postgres:build-image")
@click.option("--base", help="Image to build FROM (default: the stack image).")
@pass_context
def postgres_build_image(context: Context, base: str | None) -> None:
    """Build the local skiff/postgres:trixie image from the stack image and Debian's postgresql."""
    if base is not None and (not base.strip() or base.startswith("-")):
        raise ValidationError(f"invalid image {base!r}")
    pg_container.build_image(context, pg_container.client(), base=base)


COMMANDS: list[click.Command] = [
    postgres_create,
    postgres_destroy,
    postgres_list,
    postgres_exists,
    postgres_info,
    postgres_link,
    postgres_unlink,
    postgres_links,
    postgres_connect,
    postgres_export,
    postgres_import,
    postgres_logs,
    postgres_start,
    postgres_stop,
    postgres_restart,
    postgres_expose,
    postgres_unexpose,
    postgres_build_image,
]
