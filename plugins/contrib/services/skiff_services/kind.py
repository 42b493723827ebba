"""The one description of a kind of service, from which the toolkit makes everything else."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .record import Service

PASSWORD_RE = re.compile(r"\A[A-Za-z0-9._~-]{8,128}\Z")
PASSWORD_HELP = "8 to 128 characters (letters, digits and . _ ~ -)"


@dataclass(frozen=True)
class Option:
    """A ``KIND:set NAME KEY VALUE`` key: a full-match pattern for its value and a help line."""

    pattern: str
    help: str

    def check(self, key: str, value: str) -> str:
        if not re.fullmatch(self.pattern, value):
            from skiff.errors import ValidationError

            raise ValidationError(f"invalid value {value!r} for {key}: {self.help}")
        return value


@dataclass(frozen=True)
class TLS:
    """How a kind's server takes its per-service certificate (see :mod:`skiff_services.tls`).

    The toolkit makes ``server.crt`` and ``server.key`` (key 0600) in the service's ``tls/``
    folder, gives both to ``owner`` (a user of the image: the server's), and mounts the folder
    read-only at ``mount``; the kind's ``command`` turns TLS on when ``tls.enabled(service)``.
    """

    mount: str
    owner: str

    def enabled(self, service: Service) -> bool:
        """On unless the service's ``tls`` setting is ``false`` (``KIND:set NAME tls false``)."""
        return service.options.get("tls", "true") != "false"


TLS_OPTION = Option("true|false", "true or false")


@dataclass(frozen=True)
class ServiceKind:
    """What a service plugin tells the toolkit about its kind of service.

    ``name`` is the plugin's name: the command prefix (``redis:create``), the namespace of
    its records in the state store, and the ``kind`` of its access declarations.
    Argument lists (``ready``, ``connect``, ``export``, ``import_``, ``version``) run inside
    the service container with ``docker exec`` and the container's own environment (where
    the password is: never on a command line).
    """

    name: str
    title: str  # "Redis": in messages
    port: int
    data_mount: str  # where the data volume is mounted in the container
    local_image: str  # "skiff/redis:trixie": built by KIND:build-image FROM the stack image
    image_files: Callable[[], Mapping[str, bytes]]  # the build context: Dockerfile, entrypoint, ...
    packages: str  # "Debian's redis-server": said while building
    url: Callable[[Service, str], str]  # (service, password or a mask) -> the URL set on link
    environment: Callable[[Service], dict[str, str]]  # the container's environment (the password)
    ready: list[str]  # exits 0 once the server accepts connections
    connect: list[str]  # the interactive client
    export: list[str]  # writes the dump to stdout
    import_: list[str]  # reads a dump from stdin; non-zero: nothing was imported
    url_key: str = "DATABASE_URL"  # the config key a link sets by default
    version: list[str] | None = None  # prints the server's version
    restart_after_import: bool = False  # the server picks the import up when it starts
    dump_magic: bytes = b""  # an export starts with this (checked by clone, backup and restore)
    dump_suffix: str = "dump"  # the backup files' extension: redis-NAME-STAMP.rdb
    options: Mapping[str, Option] = field(default_factory=dict)  # KIND:set keys
    command: Callable[[Service], list[str] | None] = lambda service: None  # the container's command
    stop_timeout: int = 30
    shm_size: str | None = None
    record: Callable[..., Service] | None = None  # a Service subclass with fields of its own
    password_ok: Callable[[str], object] = PASSWORD_RE.fullmatch  # a password given at create
    password_help: str = PASSWORD_HELP  # what password_ok accepts (in its error)
    registry_image: str | None = None  # the default image when it is here (else local_image)
    pull: bool = False  # an image that is not here is pulled (else only local_image is built)
    exec_user: str | None = None  # the user ``ready`` and ``version`` run as
    dump_tools: tuple[str, str] = ("export", "the import")  # how a failed export / import is named
    tls: TLS | None = None  # a per-service certificate (and the ``tls`` set key)

    @property
    def settable(self) -> Mapping[str, Option]:
        """The ``KIND:set`` keys: the kind's options, and ``tls`` for a kind with TLS."""
        return {**self.options, "tls": TLS_OPTION} if self.tls else self.options

    @property
    def label(self) -> str:
        return "skiff.service"

    @property
    def name_label(self) -> str:
        return f"skiff.{self.name}.name"

    def container_name(self, name: str) -> str:
        return f"skiff.{self.name}.{name}"

    def hostname(self, name: str) -> str:
        """The DNS alias of the service on its own network and on its linked apps' networks."""
        return f"skiff-{self.name}-{name}"

    def network(self, name: str) -> str:
        """The service's own network: no app is on it (a link puts the service on the app's)."""
        return f"skiff-service-{self.name}-{name}"
