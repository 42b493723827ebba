"""Service records: names, passwords, links, and where they are kept.

One record per service is a global property of the service plugin (key
``service:<name>``) in the state store, whose file is 0600. It holds the password,
so it is never printed as a whole.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from skiff import validate
from skiff.context import Context
from skiff.errors import NotFound, SkiffError, ValidationError
from skiff.locks import file_lock, lock_path

from .kind import ServiceKind

KEY_PREFIX = "service:"
ROOT_LABEL = "skiff.root"
ALIAS_RE = re.compile(r"\A[A-Z][A-Z0-9_]{0,62}\Z")
LOCK_TIMEOUT = 300.0
MASK = "********"


def service_name(name: str) -> str:
    """Return ``name`` if it is a valid service name (the app-name rules)."""
    if not isinstance(name, str) or not validate.APP_NAME.fullmatch(name) or name.endswith("-"):
        raise ValidationError(
            f"invalid service name {name!r}: use lowercase letters, digits and dashes, "
            "start with a letter, at most 48 characters, no trailing dash"
        )
    return name


def new_password() -> str:
    return secrets.token_hex(16)


def check_password(kind: ServiceKind, password: str) -> str:
    if not kind.password_ok(password):
        raise ValidationError(f"invalid password for {kind.name}: {kind.password_help}")
    return password


@dataclass
class Service:
    """What skiff keeps about one service (a kind may add fields in a subclass)."""

    name: str
    image: str
    password: str
    created: float = field(default_factory=time.time)
    expose: dict[str, Any] | None = None  # {"host": "127.0.0.1", "port": 5999}
    links: dict[str, str] = field(default_factory=dict)  # app -> config key
    options: dict[str, str] = field(default_factory=dict)  # KIND:set keys

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Store:
    """The records of one kind, with its names and its lock."""

    def __init__(self, kind: ServiceKind):
        self.kind = kind

    def make(self, **raw: Any) -> Service:
        factory = self.kind.record or Service
        known = {f.name for f in fields(factory)}  # type: ignore[arg-type]
        return factory(**{k: v for k, v in raw.items() if k in known})

    def url(self, service: Service, masked: bool = False) -> str:
        return self.kind.url(service, MASK if masked else quote(service.password, safe=""))

    def data_dir(self, context: Context, name: str) -> Path:
        """``SKIFF_ROOT/services/KIND/<name>``; the server's files are in ``data/``."""
        return context.path("services", self.kind.name, service_name(name))

    @contextmanager
    def lock(self, context: Context, name: str) -> Iterator[None]:
        service_name(name)  # the name is part of the lock's path
        with file_lock(
            lock_path(context.root, f"{self.kind.name}-{name}"),
            LOCK_TIMEOUT,
            on_wait=lambda: context.output.step(f"Waiting for another command on {self.kind.name} {name}"),
        ):
            yield

    def load(self, context: Context, name: str) -> Service:
        service_name(name)
        raw = context.state.get_property(self.kind.name, KEY_PREFIX + name)
        if raw is None:
            raise NotFound(f"{self.kind.name} service {name} does not exist; see {self.kind.name}:list")
        return self.make(**raw)

    def exists(self, context: Context, name: str) -> bool:
        return context.state.get_property(self.kind.name, KEY_PREFIX + name) is not None

    def save(self, context: Context, service: Service) -> None:
        context.state.set_property(self.kind.name, KEY_PREFIX + service.name, service.as_dict())

    def delete(self, context: Context, name: str) -> None:
        context.state.delete_property(self.kind.name, KEY_PREFIX + name)

    def all(self, context: Context) -> list[Service]:
        props = context.state.properties(self.kind.name)
        return [self.make(**value) for key, value in props.items() if key.startswith(KEY_PREFIX)]

    def linked_to(self, context: Context, app: str) -> list[Service]:
        return sorted((s for s in self.all(context) if app in s.links), key=lambda s: s.name)

    def pick_key(self, service: Service, app_config: dict[str, str], alias: str | None) -> str:
        """The config key a link sets: the kind's key (``REDIS_URL``), or ``<ALIAS>_URL``."""
        default = self.kind.url_key
        if alias:
            key = alias_key(alias)
        elif default not in app_config:
            key = default
        else:
            key = alias_key(service.name.replace("-", "_") + "_" + default.removesuffix("_URL"))
        if key in app_config:
            raise SkiffError(f"{key} is already set on the app; choose another name with --alias")
        return key


def alias_key(alias: str) -> str:
    """``--alias blue_db`` -> ``BLUE_DB_URL``; ``DATABASE`` -> ``DATABASE_URL``."""
    alias = alias.upper()
    if alias.endswith("_URL"):
        alias = alias[:-4]
    if not ALIAS_RE.fullmatch(alias):
        raise ValidationError(f"invalid alias {alias!r}: use letters, digits and underscores, starting with a letter")
    return f"{alias}_URL"
