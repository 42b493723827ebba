"""The upgrade off the one shared network ``skiff`` (``state:migrate``, which ``make install`` runs).

Before apps were isolated, every app container and every service container
joined the docker network ``skiff``. The migration moves them live, without
a restart: each process container of an app of this state store joins its
own network ``skiff-app-APP`` (alias ``APP.PROCESS``) and the shared networks
its settings name; each service container (``skiff.KIND.NAME``, label
``skiff.service=KIND``) joins the networks of the apps it is linked to (the
answer of ``skiff_service_apps``), with the aliases it had on ``skiff``; then
all of them leave ``skiff``, and ``skiff`` is removed when that left nothing on
it (an empty ``skiff`` this run moved nothing off is left alone: another user
of the engine may be about to start a container on it).

Containers of other state stores on the same engine are left alone: an app
container counts only when it runs an image a release of that app in this
store recorded (app names may repeat across stores, images do not), a service
container only when its ``skiff.root`` label, if any, is this store's root and
its plugin knows the service. Running it again changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from skiff import contracts, dockerclient
from skiff.context import Context

from . import networks

LEGACY = contracts.LEGACY_NETWORK
SERVICE_NAME = re.compile(r"skiff\.(?P<kind>[a-z][a-z0-9-]*)\.(?P<name>[a-z][a-z0-9-]*)")


def migrate(context: Context) -> list[str]:
    """Move this store's apps and services off ``skiff``; one line per kind of change."""
    from skiff.errors import SkiffError

    try:
        c = networks.client()
    except SkiffError as exc:  # not a change: said, and tried again at the next state:migrate
        context.output.warn(f"network: {exc}; apps move off the shared network {LEGACY} at their next deploy")
        return []
    legacy = networks.docker_network(c, LEGACY)
    if legacy is None:
        return []
    images = {app: {r.image for r in context.state.releases(app) if r.image} for app in context.state.list_apps()}
    moved_apps: list[str] = []
    moved_services: list[str] = []
    for ident in _on_legacy(c, legacy):
        try:
            attrs = c.api.inspect_container(ident)
        except Exception:  # gone meanwhile
            continue
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        name = str(attrs.get("Name", "")).lstrip("/")
        if labels.get(networks.LABEL_ROOT, str(context.root)) != str(context.root):
            continue
        app = labels.get(networks.LABEL_APP) or ""
        image = (attrs.get("Config") or {}).get("Image")
        ours = image in images.get(app, ()) and labels.get(networks.LABEL_ROLE) == "process"
        if ours and ".old-" not in name:
            entry = {"Id": ident, "Labels": labels}
            networks.attach_container(context, c, entry, networks.wanted(context, app), detach=False)
            networks.disconnect(c, ident, LEGACY)
            moved_apps.append(name)
        elif labels.get(networks.LABEL_SERVICE) and _service(context, c, attrs, name, labels):
            moved_services.append(name)
    lines = []
    if moved_apps:
        lines.append(
            f"moved {len(moved_apps)} app container(s) off the shared network {LEGACY} onto their own networks"
        )
    if moved_services:
        lines.append(f"moved {len(moved_services)} service container(s) onto the networks of their linked apps")
    if (moved_apps or moved_services) and _remove_if_empty(c):
        lines.append(f"removed the shared network {LEGACY}: apps reach each other only through network:* networks")
    return lines


def _service(context: Context, c: Any, attrs: dict[str, Any], name: str, labels: dict[str, str]) -> bool:
    """Move one service container; ``False`` when it is not one of this store's services."""
    kind = labels.get(networks.LABEL_SERVICE, "")
    match = SERVICE_NAME.fullmatch(name)
    if match is None or match["kind"] != kind:
        return False
    linked = context.hook.skiff_service_apps(context=context, kind=kind, service=match["name"])
    if linked is None:
        return False  # not ours (another store, or the plugin is not loaded)
    endpoint = ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(LEGACY) or {}
    short = str(attrs.get("Id", ""))[:12]
    aliases = [a for a in endpoint.get("Aliases") or [] if a != short and a != name] or None
    current = ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys()
    for app in linked:
        network = contracts.app_network(app)
        if network not in current:
            dockerclient.ensure_network(c, network, {contracts.APP_NETWORK_LABEL: app})
            networks.connect(c, attrs["Id"], network, aliases)
    networks.disconnect(c, attrs["Id"], LEGACY)
    return True


def _on_legacy(c: Any, legacy: dict[str, Any]) -> list[str]:
    """Every container on ``skiff``: the running ones (the network's endpoints) and the stopped
    ones (which would not start again once it is gone)."""
    found = list(legacy.get("Containers") or {})
    for entry in c.api.containers(all=True, filters={"network": LEGACY}):
        if entry["Id"] not in found:
            found.append(entry["Id"])
    return found


def _remove_if_empty(c: Any) -> bool:
    from docker.errors import APIError
    from docker.errors import NotFound as DockerNotFound

    legacy = networks.docker_network(c, LEGACY)
    if legacy is None or _on_legacy(c, legacy):
        return False
    try:
        c.api.remove_network(legacy["Id"])
    except (DockerNotFound, APIError):  # someone joined it meanwhile
        return False
    return True
