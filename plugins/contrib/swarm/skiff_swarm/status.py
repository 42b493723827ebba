"""What runs on the swarm for an app: its services and their tasks, across nodes."""

from __future__ import annotations

from typing import Any

from skiff.context import Context

from . import engine, settings, spec


def tasks_of(c: Any, app: str) -> list[dict[str, Any]]:
    """One row per task that should run: service, process, release, slot, node, state, address."""
    nodes = {n["ID"]: n for n in c.api.nodes()}
    rows = []
    for service in engine.services(c, app):
        labels = (service.get("Spec") or {}).get("Labels") or {}
        for task in engine.tasks(c, service["ID"]):
            if task.get("DesiredState") != "running":
                continue
            node = nodes.get(task.get("NodeID") or "") or {}
            address = spec.node_address(node) if node else None
            ports = spec.task_ports(task)
            rows.append(
                {
                    "service": service["Spec"]["Name"],
                    "process": labels.get(spec.LABEL_PROCESS),
                    "release": int(labels.get(spec.LABEL_RELEASE) or 0),
                    "slot": task.get("Slot"),
                    "node": ((node.get("Description") or {}).get("Hostname")) or task.get("NodeID"),
                    "state": (task.get("Status") or {}).get("State"),
                    "address": f"{address}:{ports[0]}" if address and ports else None,
                    "task": task.get("ID") or "",
                }
            )
    return sorted(rows, key=lambda r: (r["process"] or "", r["release"], r["slot"] or 0))


def summary(context: Context, app: str) -> dict[str, Any]:
    try:
        c = engine.client(settings.manager(context.state))
        rows = tasks_of(c, app)
    except Exception as exc:  # the manager is down: the rest of apps:report still works
        return {"error": str(exc)}
    return {
        "services": sorted({r["service"] for r in rows}),
        "tasks": [f"{r['process']}.{r['slot']} v{r['release']} {r['state']} on {r['node']}" for r in rows],
    }
