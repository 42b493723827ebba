"""Shared networks: names, the settings that attach apps to them, and the docker side.

A network made with ``network:create NAME`` is the docker bridge network
``NAME`` (labels ``skiff.network.name=NAME`` and ``skiff.root``), recorded as
the global property ``network:NAME`` of this plugin. Apps join it through
their settings (``initial-network``, ``attach-post-create``,
``attach-post-deploy``); an app that names none of them is only on its own
network, ``skiff-app-APP`` (:func:`skiff.contracts.app_network`, made by the
scheduler). The docker SDK is imported lazily.
"""

from __future__ import annotations

import re
import time
from typing import Any

from skiff import contracts
from skiff.context import Context
from skiff.errors import NotFound, ValidationError
from skiff.settings import Namespace, Setting
from skiff.validate import shown

from . import PLUGIN

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: docker's own networks, swarm's, and the legacy shared one; ``skiff-*`` is Skiff's own namespace
RESERVED = frozenset({"bridge", "host", "none", "default", "ingress", "docker_gwbridge", contracts.LEGACY_NETWORK})
KEY_PREFIX = "network:"
LABEL_NAME = "skiff.network.name"
LABEL_ROOT = "skiff.root"
LABEL_APP = "skiff.app"
LABEL_PROCESS = "skiff.process"
LABEL_RELEASE = "skiff.release"
LABEL_ROLE = "skiff.role"
LABEL_SERVICE = "skiff.service"
DOCKER_TIMEOUT = 120

INITIAL = "initial-network"
POST_CREATE = "attach-post-create"
POST_DEPLOY = "attach-post-deploy"
KEYS = (INITIAL, POST_CREATE, POST_DEPLOY)


def network_name(name: str) -> str:
    """``name`` if it may name a shared network (full match; reserved names refused)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValidationError(
            f"invalid network name {shown(name)}: use lowercase letters, digits, '-' and '_', "
            "start with a letter or digit, at most 63 characters"
        )
    if name in RESERVED or name.startswith("skiff-"):
        raise ValidationError(f"network name {name!r} is reserved (docker's own networks and skiff-*)")
    return name


def parse_names(value: str) -> list[str]:
    """``a,b`` or ``a b`` -> ``["a", "b"]``: each one a valid name, no repeats."""
    names: list[str] = []
    for part in re.split(r"[,\s]+", str(value).strip()):
        if part and network_name(part) not in names:
            names.append(part)
    if not names:
        raise ValidationError("give a network name")
    return names


def _must_exist(context: Context, value: Any) -> None:
    for name in [value] if isinstance(value, str) else list(value):
        require(context, name)


SETTINGS = Namespace(
    PLUGIN,
    (
        Setting(
            INITIAL,
            type=network_name,
            validate=_must_exist,
            help="the network the app's containers are created on (they stay on the app's own one too)",
        ),
        Setting(
            POST_CREATE,
            type=parse_names,
            validate=_must_exist,
            help="networks joined after a container is created, before it starts (comma-separated)",
        ),
        Setting(
            POST_DEPLOY,
            type=parse_names,
            validate=_must_exist,
            help="networks the process containers join once the deploy passed its checks (comma-separated)",
        ),
    ),
    commands=(),  # network:set and network:report are the plugin's own (access to the named networks)
)


# -- the record --------------------------------------------------------------------------


def recorded(context: Context) -> list[str]:
    props = context.state.properties(PLUGIN)
    return sorted(key[len(KEY_PREFIX) :] for key in props if key.startswith(KEY_PREFIX))


def require(context: Context, name: str) -> dict[str, Any]:
    network_name(name)
    record = context.state.get_property(PLUGIN, KEY_PREFIX + name)
    if record is None:
        raise NotFound(f"network {name} does not exist; see network:list (network:create {name} makes it)")
    return dict(record)


def exists(context: Context, name: str) -> bool:
    return context.state.get_property(PLUGIN, KEY_PREFIX + name) is not None


def attachments(context: Context, app: str) -> dict[str, list[str]]:
    """``{setting: [network, ...]}`` of ``app`` (the settings it has)."""
    found: dict[str, list[str]] = {}
    for key in KEYS:
        value = SETTINGS.get(context.state, key, app=app)
        if value:
            found[key] = [value] if isinstance(value, str) else list(value)
    return found


def wanted(context: Context, app: str, *, post_deploy: bool = True) -> list[str]:
    """Every network the app's process containers belong on: its own first, then the shared ones."""
    names = [contracts.app_network(app)]
    found = attachments(context, app)
    for key in KEYS:
        if key == POST_DEPLOY and not post_deploy:
            continue
        names += [n for n in found.get(key, []) if n not in names]
    return names


def apps_on(context: Context, name: str) -> dict[str, list[str]]:
    """``{app: [setting, ...]}``: the apps whose settings name the network ``name``."""
    result: dict[str, list[str]] = {}
    for app in context.state.list_apps():
        keys = [key for key, names in attachments(context, app).items() if name in names]
        if keys:
            result[app] = keys
    return result


def detach(context: Context, name: str, app: str) -> None:
    """Take ``name`` out of every network setting of ``app``."""
    for key, names in attachments(context, app).items():
        rest = [n for n in names if n != name]
        if rest == names:
            continue
        value = None if not rest else (rest[0] if key == INITIAL else ",".join(rest))
        SETTINGS.set(context, key, value, app=app)


# -- docker ---------------------------------------------------------------------------------


def client() -> Any:
    from skiff import dockerclient

    return dockerclient.shared(DOCKER_TIMEOUT)


def docker_network(c: Any, name: str) -> dict[str, Any] | None:
    """The engine's network with exactly this name (its inspect), or ``None``."""
    from docker.errors import NotFound as DockerNotFound

    try:
        info = c.api.inspect_network(name)
    except DockerNotFound:
        return None
    return info if info.get("Name") == name else None


def ours(context: Context, info: dict[str, Any], name: str) -> bool:
    labels = info.get("Labels") or {}
    return labels.get(LABEL_NAME) == name and labels.get(LABEL_ROOT) == str(context.root)


def labels_for(context: Context, name: str) -> dict[str, str]:
    return {LABEL_NAME: name, LABEL_ROOT: str(context.root)}


def ensure(context: Context, c: Any, name: str) -> str:
    """Make the recorded network ``name`` exist on the engine (again); its id."""
    from skiff import dockerclient

    return dockerclient.ensure_network(c, name, labels_for(context, name))


def create(context: Context, name: str) -> str:
    from skiff.errors import SkiffError

    network_name(name)
    if exists(context, name):
        raise SkiffError(f"network {name} already exists")
    c = client()
    info = docker_network(c, name)
    if info is not None and not ours(context, info, name):
        raise SkiffError(f"a docker network named {name} exists that skiff did not create; pick another name")
    ident = ensure(context, c, name)
    context.state.set_property(PLUGIN, KEY_PREFIX + name, {"created": time.time()})
    return ident


def connected(info: dict[str, Any]) -> list[str]:
    """Names of the containers on a network (from its inspect)."""
    return sorted(str(v.get("Name") or k[:12]) for k, v in (info.get("Containers") or {}).items())


def destroy(context: Context, name: str) -> None:
    """Disconnect whatever is still on it (force) and remove it; forget the record."""
    from docker.errors import APIError
    from docker.errors import NotFound as DockerNotFound

    c = client()
    info = docker_network(c, name)
    if info is not None and ours(context, info, name):
        for ident in info.get("Containers") or {}:
            try:
                c.api.disconnect_container_from_network(ident, info["Id"], force=True)
            except (DockerNotFound, APIError):
                pass
        try:
            c.api.remove_network(info["Id"])
        except DockerNotFound:
            pass
    context.state.delete_property(PLUGIN, KEY_PREFIX + name)


def info(context: Context, name: str) -> dict[str, Any]:
    record = require(context, name)
    found = docker_network(client(), name)
    return {
        "name": name,
        "id": (found or {}).get("Id", "")[:12],
        "driver": (found or {}).get("Driver", ""),
        "status": "present" if found else "missing (network:rebuild of an attached app makes it again)",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.get("created", 0))),
        "apps": {app: keys for app, keys in sorted(apps_on(context, name).items())},
        "containers": connected(found) if found else [],
    }


def app_containers(c: Any, app: str, release: int | None = None) -> list[dict[str, Any]]:
    """The app's process containers (any state, not those retiring); of one release if given."""
    filters = [f"{LABEL_APP}={app}", f"{LABEL_ROLE}=process"]
    if release is not None:
        filters.append(f"{LABEL_RELEASE}={release}")
    entries = c.api.containers(all=True, filters={"label": filters})
    return [e for e in entries if ".old-" not in (e.get("Names") or ["/"])[0]]


def networks_of(c: Any, ident: str) -> tuple[str, dict[str, Any]]:
    """``(network mode, {network: endpoint})`` of a container."""
    attrs = c.api.inspect_container(ident)
    mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
    return mode, dict((attrs.get("NetworkSettings") or {}).get("Networks") or {})


def own_mode(mode: str) -> bool:
    """Whether the container has networks of its own (not root's --network=host/none/container:)."""
    return mode not in ("host", "none") and not mode.startswith("container:")


def connect(c: Any, ident: str, name: str, aliases: list[str] | None) -> None:
    c.api.connect_container_to_network(ident, name, aliases=aliases)


def disconnect(c: Any, ident: str, name: str) -> None:
    from docker.errors import APIError
    from docker.errors import NotFound as DockerNotFound

    try:
        c.api.disconnect_container_from_network(ident, name, force=True)
    except (DockerNotFound, APIError):
        pass


def managed(context: Context, name: str) -> bool:
    """Networks Skiff puts app containers on (and so may take them off): the legacy one,
    app networks and the recorded shared ones; root's own docker networks are left alone."""
    return name == contracts.LEGACY_NETWORK or name.startswith(contracts.APP_NETWORK_PREFIX) or exists(context, name)


def attach_container(context: Context, c: Any, entry: dict[str, Any], names: list[str], *, detach: bool) -> list[str]:
    """Put one process container on ``names`` (alias ``APP.PROCESS``); with ``detach``, take it off the
    other managed networks. Returns ``"+net"`` / ``"-net"`` per change. Never restarts it."""
    labels = entry.get("Labels") or {}
    app, process = labels.get(LABEL_APP, ""), labels.get(LABEL_PROCESS, "")
    mode, current = networks_of(c, entry["Id"])
    if not own_mode(mode):
        return []
    changes = []
    for name in names:
        if name not in current:
            if name == contracts.app_network(app):
                from skiff import dockerclient

                dockerclient.ensure_network(c, name, {contracts.APP_NETWORK_LABEL: app})
            elif exists(context, name):
                ensure(context, c, name)
            connect(c, entry["Id"], name, [f"{app}.{process}"] if process else None)
            changes.append(f"+{name}")
    if detach:
        for name in current:
            if name not in names and managed(context, name):
                disconnect(c, entry["Id"], name)
                changes.append(f"-{name}")
    return changes


def rebuild(context: Context, app: str) -> dict[str, list[str]]:
    """Bring the app's process containers onto the networks its settings name now, and off the
    others Skiff manages (the legacy ``skiff`` one included), live: ``{container: changes}``."""
    c = client()
    names = wanted(context, app)
    result: dict[str, list[str]] = {}
    for entry in app_containers(c, app):
        changes = attach_container(context, c, entry, names, detach=True)
        if changes:
            result[(entry.get("Names") or ["/?"])[0].lstrip("/")] = changes
    return result


def attach_post_deploy(context: Context, app: str, release: int) -> list[str]:
    """``attach-post-deploy``: the new release's process containers join those networks."""
    names = attachments(context, app).get(POST_DEPLOY, [])
    if not names:
        return []
    c = client()
    done = []
    for entry in app_containers(c, app, release):
        if attach_container(context, c, entry, names, detach=False):
            done.append((entry.get("Names") or ["/?"])[0].lstrip("/"))
    return done
