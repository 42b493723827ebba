"""Postgres service records: names, the DSN, and where they are kept.

One record per service is a global property of the ``postgres`` plugin
(key ``service:<name>``) in the state store, whose file is 0600. It holds
the password, so it is never printed as a whole.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from skiff import validate
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError
from skiff.locks import file_lock, lock_path

from . import PLUGIN

KEY_PREFIX = "service:"
LABEL = "skiff.service"
NAME_LABEL = "skiff.postgres.name"
ROOT_LABEL = "skiff.root"
PORT = 5432
DATA_MOUNT = "/var/lib/postgresql/data"
LOCAL_IMAGE = "skiff/postgres:trixie"
REGISTRY_IMAGE = "postgres:17"
ALIAS_RE = re.compile(r"\A[A-Z][A-Z0-9_]{0,62}\Z")
LOCK_TIMEOUT = 300.0


def service_name(name: str) -> str:
    """Return ``name`` if it is a valid service name (the app-name rules)."""
    if not isinstance(name, str) or not validate.APP_NAME.fullmatch(name) or name.endswith("-"):
        raise ValidationError(
            f"invalid service name {name!r}: use lowercase letters, digits and dashes, "
            "start with a letter, at most 48 characters, no trailing dash"
        )
    return name


def container_name(name: str) -> str:
    return f"skiff.postgres.{name}"


def hostname(name: str) -> str:
    """The DNS alias of the service on its own network and on the networks of the apps linked to it."""
    return f"skiff-postgres-{name}"


def network(name: str) -> str:
    """The service's own docker network: its container is created on it, and only on it.

    Apps are not on it: a link puts the service on the app's own network
    (:func:`skiff.contracts.app_network`), so only linked apps reach it.
    """
    return f"skiff-service-postgres-{name}"


def database_name(name: str) -> str:
    return name.replace("-", "_")


def alias_key(alias: str) -> str:
    """``--alias blue_db`` -> ``BLUE_DB_URL``; ``DATABASE`` -> ``DATABASE_URL``."""
    alias = alias.upper()
    if alias.endswith("_URL"):
        alias = alias[:-4]
    if not ALIAS_RE.fullmatch(alias):
        raise ValidationError(f"invalid alias {alias!r}: use letters, digits and underscores, starting with a letter")
    return f"{alias}_URL"


def new_password() -> str:
    return secrets.token_hex(16)


def check_password(password: str) -> str:
    if not (8 <= len(password) <= 128) or any(ch.isspace() or not ch.isprintable() for ch in password):
        raise ValidationError("the password must be 8 to 128 printable characters without spaces")
    return password


@dataclass
class Service:
    """What skiff keeps about one postgres service."""

    name: str
    image: str
    password: str
    user: str = "postgres"
    database: str = ""
    created: float = field(default_factory=time.time)
    expose: dict[str, Any] | None = None  # {"host": "127.0.0.1", "port": 5999}
    links: dict[str, str] = field(default_factory=dict)  # app -> config key

    def __post_init__(self) -> None:
        self.database = self.database or database_name(self.name)

    @property
    def container(self) -> str:
        return container_name(self.name)

    @property
    def host(self) -> str:
        return hostname(self.name)

    @property
    def network(self) -> str:
        return network(self.name)

    def dsn(self, masked: bool = False) -> str:
        password = "********" if masked else quote(self.password, safe="")
        return f"postgres://{quote(self.user, safe='')}:{password}@{self.host}:{PORT}/{self.database}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_dir(context: Context, name: str) -> Path:
    """``SKIFF_ROOT/services/postgres/<name>``; the server's files are in ``data/``."""
    return context.path("services", "postgres", service_name(name))


@contextmanager
def service_lock(context: Context, name: str) -> Iterator[None]:
    with file_lock(
        lock_path(context.root, f"postgres-{name}"),
        LOCK_TIMEOUT,
        on_wait=lambda: context.output.step(f"Waiting for another command on postgres {name}"),
    ):
        yield


def load(context: Context, name: str) -> Service:
    service_name(name)
    raw = context.state.get_property(PLUGIN, KEY_PREFIX + name)
    if raw is None:
        raise NotFound(f"postgres service {name} does not exist; see postgres:list")
    return Service(**raw)


def exists(context: Context, name: str) -> bool:
    return context.state.get_property(PLUGIN, KEY_PREFIX + name) is not None


def save(context: Context, service: Service) -> None:
    context.state.set_property(PLUGIN, KEY_PREFIX + service.name, service.as_dict())


def delete(context: Context, name: str) -> None:
    context.state.delete_property(PLUGIN, KEY_PREFIX + name)


def all_services(context: Context) -> list[Service]:
    props = context.state.properties(PLUGIN)
    return [Service(**value) for key, value in props.items() if key.startswith(KEY_PREFIX)]


def pick_key(service: Service, app_config: dict[str, str], alias: str | None) -> str:
    """The config key a link sets: DATABASE_URL, or <ALIAS>_URL when taken or asked for."""
    if alias:
        key = alias_key(alias)
    elif "DATABASE_URL" not in app_config:
        key = "DATABASE_URL"
    else:
        key = alias_key(database_name(service.name) + "_DATABASE")
    if key in app_config:
        raise SkiffError(f"{key} is already set on the app; choose another name with --alias")
    return key
