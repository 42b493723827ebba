"""What postgres is to the service toolkit: one ServiceKind, and its record's own fields."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote

from skiff_services.kind import TLS, ServiceKind
from skiff_services.record import Service, Store

from . import PLUGIN

PORT = 5432
DATA_MOUNT = "/var/lib/postgresql/data"
TLS_MOUNT = "/var/lib/postgresql/tls"
LOCAL_IMAGE = "skiff/postgres:trixie"
REGISTRY_IMAGE = "postgres:17"
# the container's environment has the user and the database (the official image's interface)
AS_OWNER = '-U "$POSTGRES_USER" -d "$POSTGRES_DB"'
IMPORT = "exec pg_restore --clean --if-exists --no-owner --no-acl --single-transaction " + AS_OWNER


def database_name(name: str) -> str:
    return name.replace("-", "_")


@dataclass
class PgService(Service):
    """A postgres service: the toolkit's record with the role and the database it is for."""

    user: str = "postgres"
    database: str = ""

    def __post_init__(self) -> None:
        self.database = self.database or database_name(self.name)


def image_files() -> dict[str, bytes]:
    image = resources.files("skiff_postgres").joinpath("image")
    return {name: image.joinpath(name).read_bytes() for name in ("Dockerfile", "entrypoint.sh")}


def url(service: Service, password: str) -> str:
    assert isinstance(service, PgService)
    user = quote(service.user, safe="")
    return f"postgres://{user}:{password}@{KIND.hostname(service.name)}:{PORT}/{service.database}"


def environment(service: Service) -> dict[str, str]:
    assert isinstance(service, PgService)
    return {
        "POSTGRES_PASSWORD": service.password,
        "POSTGRES_USER": service.user,
        "POSTGRES_DB": service.database,
        "PGDATA": DATA_MOUNT,
    }


def command(service: Service) -> list[str] | None:
    """The server with TLS on (its certificate), or the image's own command (``tls false``)."""
    if not KIND.tls or not KIND.tls.enabled(service):
        return None
    return [
        "postgres",
        *("-c", "ssl=on"),
        *("-c", f"ssl_cert_file={TLS_MOUNT}/server.crt"),
        *("-c", f"ssl_key_file={TLS_MOUNT}/server.key"),
    ]


def password_ok(password: str) -> bool:
    return 8 <= len(password) <= 128 and not any(ch.isspace() or not ch.isprintable() for ch in password)


KIND = ServiceKind(
    name=PLUGIN,
    title="Postgres",
    # the image: Debian's postgresql built FROM the stack image, or the official one when it is here
    packages="Debian's postgresql",
    local_image=LOCAL_IMAGE,
    image_files=image_files,
    registry_image=REGISTRY_IMAGE,
    pull=True,
    # the server
    port=PORT,
    data_mount=DATA_MOUNT,
    shm_size="128m",
    environment=environment,
    command=command,
    tls=TLS(mount=TLS_MOUNT, owner="postgres"),
    record=PgService,
    password_ok=password_ok,
    password_help="8 to 128 printable characters without spaces",
    url=url,
    # what runs in its container (docker exec)
    exec_user="postgres",
    ready=["sh", "-c", f"exec pg_isready -q -h 127.0.0.1 -p {PORT} {AS_OWNER}"],
    version=["sh", "-c", f'exec psql -X -tA {AS_OWNER} -c "SHOW server_version"'],
    connect=["sh", "-c", "exec psql " + AS_OWNER],
    export=["sh", "-c", "exec pg_dump -Fc " + AS_OWNER],
    import_=["sh", "-c", IMPORT],
    dump_tools=("pg_dump", "pg_restore"),
    dump_magic=b"PGDMP",
)
STORE = Store(KIND)
