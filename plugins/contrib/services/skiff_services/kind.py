"""The one description of a kind of service, from which the toolkit makes everything else."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .record import Service

PASSWORD_RE = re.compile(r"\A[A-Za-z0-9._~-]{8,128}\Z")


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
    password_re: re.Pattern[str] = PASSWORD_RE

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
