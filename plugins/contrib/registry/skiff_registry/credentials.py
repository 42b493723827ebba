"""Registry credentials: docker's ``config.json`` format in Skiff's own config directory.

The file is :func:`skiff.contracts.registry_config_dir` ``/config.json``, 0600 in a 0700
directory, written whole (a temporary file renamed over it). Passwords come from stdin,
never from argv; they are never printed, logged or put in labels.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from skiff.contracts import registry_config_dir
from skiff.errors import SkiffError


def config_file(root: Path) -> Path:
    return registry_config_dir(root) / "config.json"


def _load(root: Path) -> dict[str, Any]:
    path = config_file(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SkiffError(f"cannot read the registry credentials {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write(root: Path, data: dict[str, Any]) -> None:
    directory = registry_config_dir(root)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    temporary = directory / f".config.json.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(temporary, config_file(root))
    finally:
        temporary.unlink(missing_ok=True)


def store(root: Path, server: str, username: str, password: str) -> None:
    """Remember ``username``/``password`` for ``server`` (replacing what was there)."""
    data = _load(root)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    data.setdefault("auths", {})[server] = {"auth": token}
    _write(root, data)


def forget(root: Path, server: str) -> bool:
    """Remove the credentials of ``server``; whether there were any."""
    data = _load(root)
    auths = data.get("auths") or {}
    if server not in auths:
        return False
    del auths[server]
    _write(root, data)
    return True


def lookup(root: Path, server: str) -> dict[str, str] | None:
    """``{"username", "password"}`` for ``server`` (the SDK's ``auth_config``), or ``None``."""
    entry = (_load(root).get("auths") or {}).get(server) or {}
    token = entry.get("auth") if isinstance(entry, dict) else None
    if not isinstance(token, str):
        return None
    try:
        username, _, password = base64.b64decode(token).decode().partition(":")
    except ValueError:
        return None
    return {"username": username, "password": password}


def servers(root: Path) -> list[str]:
    """The servers with stored credentials."""
    return sorted((_load(root).get("auths") or {}).keys())
