"""Procfile and app.json: the process table and the app's deploy settings.

In ``skiff_pre_build`` this plugin reads ``Procfile`` and ``app.json`` from
the received source and fills ``deploy.processes``, ``deploy.app_json`` and
``deploy.release_command`` (``meta["release_command"]``). ``app.json`` ``env`` entries are checked
against the app's config: a missing required key stops the deploy, a
``"generator": "secret"`` key is generated once and stored in the config, a
``value`` is stored as the default when the key is unset.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from skiff import hookimpl
from skiff.deploy import Deploy
from skiff.errors import ValidationError

from .parse import parse_app_json, parse_procfile

MAX_FILE = 256 * 1024


def _read(path: Path, name: str) -> str:
    if path.is_symlink() or not path.is_file():
        raise ValidationError(f"{name} must be a regular file")
    if path.stat().st_size > MAX_FILE:
        raise ValidationError(f"{name} is larger than {MAX_FILE // 1024} KiB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{name} is not valid UTF-8") from None


@hookimpl
def skiff_pre_build(deploy: Deploy) -> None:
    assert deploy.workdir is not None
    procfile = deploy.workdir / "Procfile"
    if procfile.exists() or procfile.is_symlink():
        processes, release = parse_procfile(_read(procfile, "Procfile"))
        deploy.processes = processes
        deploy.release_command = release or None
        names = ", ".join(sorted(processes)) or "none"
        deploy.output.step(f"Procfile declares process types: {names}" + (" (and a release task)" if release else ""))
    app_json = deploy.workdir / "app.json"
    if app_json.exists() or app_json.is_symlink():
        deploy.app_json = parse_app_json(_read(app_json, "app.json"))
        apply_env(deploy, deploy.app_json.get("env", {}))


def apply_env(deploy: Deploy, env: dict[str, dict[str, Any]]) -> None:
    """Check app.json ``env`` against the app's config; store generated secrets and defaults.

    Everything is checked before anything is written, so a missing required
    key leaves the config untouched.
    """
    if not env:
        return
    config = deploy.state.effective_config(deploy.app)
    to_set: dict[str, str] = {}
    missing = []
    for key, spec in env.items():
        if key in config:
            continue
        if spec.get("generator") == "secret":
            to_set[key] = secrets.token_hex(32)
        elif "value" in spec:
            to_set[key] = spec["value"]
        elif spec.get("required", True):
            missing.append(key)
    if missing:
        keys = " ".join(f"{k}=..." for k in missing)
        raise ValidationError(
            f"app.json requires config {'vars' if len(missing) > 1 else 'var'} {', '.join(missing)}: "
            f"set {'them' if len(missing) > 1 else 'it'} with 'config:set --no-restart {deploy.app} {keys}'"
        )
    if to_set:
        deploy.state.set_config(deploy.app, to_set)
        for key in to_set:
            how = "generated a secret" if env[key].get("generator") == "secret" else "set the app.json default"
            deploy.output.info(f"app.json: {how} for {key}")
