"""The context of one ``skiff`` invocation: root, plugin manager, state, output."""

from __future__ import annotations

import os
from pathlib import Path

from .output import Output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)

if TYPE_CHECKING:  # pragma: no cover
    from .commandcache import CommandCache
    from .plugins import SkiffPluginManager
    from .state import State

DEFAULT_ROOT = "/var/lib/skiff"


def root_from_env() -> Path:
    return Path(os.environ.get("SKIFF_ROOT") or DEFAULT_ROOT)


class Context:
    """Everything a command or a hook needs; ``click``'s ``ctx.obj``.

    The state database is opened on first use so ``skiff --help`` never
    touches it.
    """

    def __init__(self, pm: SkiffPluginManager, root: Path | None = None, output: Output | None = None):
        self.pm = pm
        #: hooks as callers reach them (deferred plugins register when one of their hooks is reached)
        self.hook = getattr(pm, "calls", pm.hook)
        self.root = Path(root) if root else root_from_env()
        self.output = output or Output()
        self.via_ssh = False
        self.ssh_key_name: str | None = None
        # before the CLI drops from root to the service account (skiff.privileges)
        self.started_as_root = os.geteuid() == 0
        self._state: State | None = None
        #: the command cache of this start (:mod:`skiff.commandcache`), if it may use one
        self.command_cache: CommandCache | None = None

    @property
    def from_root_shell(self) -> bool:
        """True when root on the server runs this command (not over SSH): host-reaching options are allowed."""
        return self.started_as_root and not self.via_ssh

    @property
    def state(self) -> State:
        if self._state is None:
            from .state import State

            self._state = State(self.root)
        return self._state

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def create_app(self, app: str) -> None:
        """Create ``app`` in the state store, then call ``skiff_app_created``."""
        self.state.create_app(app)
        self.hook.skiff_app_created(context=self, app=app)

    def path(self, *parts: str) -> Path:
        """A path under ``SKIFF_ROOT`` (parts must already be validated names)."""
        return self.root.joinpath(*parts)
