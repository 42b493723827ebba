"""Tag a local image ``SERVER/REPO:TAG`` and push it with the stored credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skiff import dockerclient
from skiff.errors import SkiffError

from . import credentials

PUSH_TIMEOUT = 600  # seconds per API call: a first push of a stack-based image is hundreds of MB


def tag_of(image: str) -> str:
    """The tag to push ``image`` under: its own tag, else the first 12 hex digits of its id."""
    name, _, digest = image.partition("@")
    if digest or name.startswith("sha256:"):
        return (digest or name).removeprefix("sha256:")[:12]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def one_line(text: object) -> str:
    """An engine's (multi-line) message on one line."""
    return " ".join(str(text).split())


def push(root: Path, server: str, repository: str, image: str, via: str | None = None, client: Any = None) -> str:
    """Push ``image`` to ``via`` (default ``server``) as ``repository:TAG``; return ``server/repository:TAG``.

    ``via`` is another address of the same registry (a loopback one on this host); the
    credentials are ``server``'s. A push the registry refuses (bad credentials, no such server)
    raises one :class:`SkiffError` line naming the registry.
    """
    import docker.errors

    client = client or dockerclient.shared(PUSH_TIMEOUT)
    target, tag = f"{via or server}/{repository}", tag_of(image)
    reference = f"{server}/{repository}:{tag}"
    auth = credentials.lookup(root, server)
    try:
        client.api.tag(image, target, tag=tag)
        for chunk in client.api.push(target, tag=tag, stream=True, decode=True, auth_config=auth):
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise SkiffError(f"registry {server} refused the push of {reference}: {one_line(error)}")
    except docker.errors.ImageNotFound:
        raise SkiffError(f"no local image {image} to push to {server}") from None
    except docker.errors.APIError as exc:
        raise SkiffError(
            f"registry {server} refused the push of {reference}: {one_line(exc.explanation or exc)}"
        ) from None
    return reference
