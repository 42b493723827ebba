"""The one way plugins get a Docker SDK client for the local engine.

Core does not depend on the ``docker`` package: it is imported here only when
a client is asked for, and every plugin that calls this module declares
``docker>=7`` in its own ``install_requires`` (docs/plugins.md, "Talking to the
Docker engine"). The engine is found as the docker CLI finds it
(``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``).

- :func:`client` makes a new client and checks the engine answers;
- :func:`shared` keeps one client per timeout for the whole process (the
  scheduler's many short calls), :func:`reset` forgets them (after the
  engine restarted).

Both fail with one :class:`~skiff.errors.SkiffError` line when the package is
missing or no engine answers.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import SkiffError

if TYPE_CHECKING:  # pragma: no cover
    import docker

DEFAULT_TIMEOUT = 120  # seconds per API call

_shared: dict[int, docker.DockerClient] = {}
_lock = threading.Lock()


def client(timeout: int = DEFAULT_TIMEOUT, *, ping: bool = True) -> docker.DockerClient:
    """A new client whose API calls time out after ``timeout`` seconds.

    The SDK asks the engine its API version when it connects; ``ping`` asks
    once more that it answers (``False`` saves that round trip).
    """
    try:
        import docker
    except ImportError:
        raise SkiffError("the docker Python package is not installed (pip install 'docker>=7')") from None
    try:
        c = docker.from_env(timeout=timeout)
        if ping:
            c.ping()
    except Exception as exc:
        raise SkiffError(f"cannot reach the Docker engine ({_one_line(exc)}); is dockerd running?") from exc
    return c


def shared(timeout: int = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """The process's client for ``timeout``, made (and pinged) on first use."""
    with _lock:
        found = _shared.get(timeout)
        if found is None:
            found = _shared[timeout] = client(timeout)
        return found


def reset() -> None:
    """Forget the shared clients: the next :func:`shared` connects again."""
    with _lock:
        _shared.clear()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
