"""Stub builder and scheduler for end-to-end tests of other parts (git push, proxies).

Load it into a real ``skiff`` process with ``SKIFF_PLUGINS=skiff.testing.stubs``
(and ``SKIFF_DISABLED_PLUGINS`` for the real builders and scheduler). It
builds nothing and runs nothing, but it records every lifecycle hook call as
one JSON line in ``$SKIFF_ROOT/stub-calls.jsonl``: hook, app, phase data, the
revision and the workdir's file list at build time. A source tree that holds
a file named ``FAIL_BUILD`` fails the build.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import hookimpl
from ..deploy import Deploy

CALLS_FILE = "stub-calls.jsonl"


def _record(deploy: Deploy, hook: str, **extra: Any) -> None:
    entry = {
        "hook": hook,
        "app": deploy.app,
        "deploy": id(deploy),
        "pid": os.getpid(),
        "revision": deploy.revision,
        "time": time.time(),
        **extra,
    }
    with open(deploy.context.path(CALLS_FILE), "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_calls(root: Path | str) -> list[dict[str, Any]]:
    """The calls recorded under ``root`` so far."""
    path = Path(root) / CALLS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@hookimpl(tryfirst=True)
def skiff_receive(deploy: Deploy) -> None:
    _record(deploy, "skiff_receive")


@hookimpl
def skiff_pre_build(deploy: Deploy) -> None:
    _record(deploy, "skiff_pre_build")


@hookimpl(trylast=True)
def skiff_build(deploy: Deploy) -> str | None:
    assert deploy.workdir is not None
    files = sorted(
        str(p.relative_to(deploy.workdir)) for p in deploy.workdir.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    _record(deploy, "skiff_build", files=files)
    if (deploy.workdir / "FAIL_BUILD").exists():
        raise RuntimeError("the source asked the stub builder to fail (FAIL_BUILD)")
    return f"stub:{deploy.app}-{(deploy.revision or 'none')[:12]}"


@hookimpl
def skiff_release(deploy: Deploy) -> None:
    _record(deploy, "skiff_release", version=deploy.release.version if deploy.release else None)


@hookimpl(trylast=True)
def skiff_deploy(deploy: Deploy) -> bool:
    _record(deploy, "skiff_deploy")
    return True


@hookimpl
def skiff_post_deploy(deploy: Deploy) -> None:
    _record(deploy, "skiff_post_deploy")


@hookimpl
def skiff_deploy_failed(deploy: Deploy, phase: str, error: BaseException) -> None:
    _record(deploy, "skiff_deploy_failed", phase=phase, error=str(error))
