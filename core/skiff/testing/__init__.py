"""pytest helpers for plugin authors (an opt-in pytest plugin: `pytest_plugins = ["skiff.testing"]`).

Fixtures:

``skiff_root``
    a temporary ``SKIFF_ROOT`` (also set in the environment).
``skiff``
    a factory: ``skiff(*plugins, entry_points=False)`` returns a
    :class:`SkiffHarness` with a plugin manager of just those plugins, a
    context on ``skiff_root`` and ``invoke(*args)`` to run CLI commands.

Helper plugins to drive the lifecycle without Docker: :class:`DirReceiver`
(source kind ``dir``), :class:`StubBuilder`, :class:`StubScheduler` and
:class:`HookRecorder`; :class:`MetaRecorder` checks the ``deploy.meta`` keys plugins write
against :class:`skiff.contracts.ReleaseMeta`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from .. import hookimpl
from ..cli import build_cli, run
from ..context import Context
from ..contracts import META_KEYS, ReleaseMeta
from ..deploy import Deploy, Source
from ..output import Output
from ..plugins import SkiffPluginManager, build_plugin_manager

if TYPE_CHECKING:  # pragma: no cover
    from ..state import State

# End-to-end fixtures (real dockerd, sshd, nginx) live in submodules.
pytest_plugins = [
    "skiff.testing.docker",
    "skiff.testing.sshd",
    "skiff.testing.nginx",
    "skiff.testing.scheduler",
    "skiff.testing.browser",
    "skiff.testing.s3",
]

LIFECYCLE_HOOKS = (
    "skiff_receive",
    "skiff_pre_build",
    "skiff_build",
    "skiff_release",
    "skiff_deploy",
    "skiff_post_deploy",
)


@dataclass
class Result:
    """What one CLI invocation printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def make_plugin_manager(
    *plugins: Any, entry_points: bool = False, disabled: tuple[str, ...] = ()
) -> SkiffPluginManager:
    """A plugin manager with the core hookspecs and ``plugins``.

    Each plugin is a module, an object, or a ``(name, plugin)`` pair.
    """
    named = []
    for index, plugin in enumerate(plugins):
        if isinstance(plugin, tuple):
            named.append(plugin)
        else:
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
            named.append((name, plugin))
    return build_plugin_manager(disabled=disabled, plugins=named, load_entry_points=entry_points)


class SkiffHarness:
    """A plugin manager, a context and a CLI, all on one test ``SKIFF_ROOT``."""

    def __init__(self, pm: SkiffPluginManager, root: Path):
        self.pm = pm
        self.root = root
        self.context = Context(pm, root=root, output=Output())
        self.cli = build_cli(self.context)

    @property
    def state(self) -> State:
        return self.context.state

    def invoke(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        """Run ``skiff ARGS`` in-process; capture stdout and stderr."""
        out, err = io.StringIO(), io.StringIO()
        old_env = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(input or "")
        self.context.via_ssh, self.context.ssh_key_name = False, None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(self.cli, self.context, list(args))
        finally:
            self.context.via_ssh, self.context.ssh_key_name = False, None  # each invocation is a new process
            sys.stdin = old_stdin
            for key, value in old_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return Result(code, out.getvalue(), err.getvalue())

    def ssh(self, command: str, key: str = "test") -> Result:
        """Run ``command`` the way an SSH login of key ``key`` does (``skiff ssh-command``)."""
        return self.invoke("ssh-command", env={"SSH_ORIGINAL_COMMAND": command, "SKIFF_KEY_NAME": key})

    def create_app(self, app: str) -> None:
        self.context.create_app(app)


class KeyRole:
    """Answers ``skiff_key_role`` with one role for every key (instead of stored roles)."""

    def __init__(self, role: str = "deployer"):
        self.role = role

    @hookimpl
    def skiff_key_role(self, context: Context, key: str) -> str:
        return self.role


class DirReceiver:
    """Receives ``Source(kind="dir", location=PATH)`` by copying the directory."""

    @hookimpl
    def skiff_receive(self, deploy: Deploy) -> bool | None:
        if deploy.source is None or deploy.source.kind != "dir":
            return None
        assert deploy.workdir is not None
        shutil.copytree(deploy.source.location, deploy.workdir, dirs_exist_ok=True)
        return True


class StubBuilder:
    """Returns ``stub:<app>-<n>`` as the image; ``fail=True`` makes builds fail."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.builds = 0

    @hookimpl(trylast=True)
    def skiff_build(self, deploy: Deploy) -> str:
        if self.fail:
            raise RuntimeError("stub build failed")
        self.builds += 1
        return f"stub:{deploy.app}-{self.builds}"


class StubScheduler:
    """Pretends to run releases; remembers which ones it ran."""

    def __init__(self) -> None:
        self.deployed: list[tuple[str, int]] = []

    @hookimpl(trylast=True)
    def skiff_deploy(self, deploy: Deploy) -> bool:
        assert deploy.release is not None
        self.deployed.append((deploy.app, deploy.release.version))
        return True


class HookRecorder:
    """Records every lifecycle hook call as ``(hook, deploy)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl(tryfirst=True)
    def skiff_receive(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_receive", deploy))

    @hookimpl(tryfirst=True)
    def skiff_pre_build(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_pre_build", deploy))

    @hookimpl(tryfirst=True)
    def skiff_build(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_build", deploy))

    @hookimpl(tryfirst=True)
    def skiff_release(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_release", deploy))

    @hookimpl(tryfirst=True)
    def skiff_deploy(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_deploy", deploy))

    @hookimpl(tryfirst=True)
    def skiff_post_deploy(self, deploy: Deploy) -> None:
        self.calls.append(("skiff_post_deploy", deploy))

    @hookimpl(tryfirst=True)
    def skiff_deploy_failed(self, deploy: Deploy, phase: str, error: BaseException) -> None:
        self.calls.append(("skiff_deploy_failed", (deploy, phase, error)))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class RecordingMeta(dict[str, Any]):
    """A ``deploy.meta`` that adds the name of every key written to ``written``."""

    def __init__(self, initial: dict[str, Any], written: set[str]) -> None:
        super().__init__(initial)
        self.written = written

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.add(key)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        self.written.update(changes)
        super().update(changes)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.written.add(key)
        return super().setdefault(key, default)


class MetaRecorder:
    """Records the ``deploy.meta`` keys plugins write (from ``skiff_receive``, or ``skiff_release``
    in a redeploy); ``undocumented`` are those :class:`skiff.contracts.ReleaseMeta` does not name."""

    def __init__(self) -> None:
        self.written: set[str] = set()

    def _wrap(self, deploy: Deploy) -> None:
        if not isinstance(deploy.meta, RecordingMeta):
            deploy.meta = cast(ReleaseMeta, RecordingMeta(dict(deploy.meta), self.written))

    @hookimpl(tryfirst=True)
    def skiff_receive(self, deploy: Deploy) -> None:
        self._wrap(deploy)

    @hookimpl(tryfirst=True)
    def skiff_release(self, deploy: Deploy) -> None:
        self._wrap(deploy)

    @property
    def undocumented(self) -> set[str]:
        return self.written - META_KEYS


def stub_env(*keep: str) -> dict[str, str]:
    """Environment for a real ``skiff`` process that runs on the stub builder/scheduler.

    Every installed entry-point plugin except those named in ``keep`` is
    disabled, and :mod:`skiff.testing.stubs` is loaded.
    """
    from ..plugins import installed_plugins

    disabled = [ep.name for ep in installed_plugins() if ep.name not in keep]
    return {"SKIFF_DISABLED_PLUGINS": ",".join(disabled), "SKIFF_PLUGINS": "skiff.testing.stubs"}


def dir_source(path: Path | str, revision: str | None = None) -> Source:
    return Source(kind="dir", location=str(path), revision=revision)


@pytest.fixture
def skiff_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "skiff-root"
    root.mkdir()
    monkeypatch.setenv("SKIFF_ROOT", str(root))
    # an installed server's wrapper sets SKIFF_USER; in a test, root must stay root
    monkeypatch.delenv("SKIFF_USER", raising=False)
    yield root


@pytest.fixture
def skiff(skiff_root: Path) -> Iterator[Any]:
    harnesses: list[SkiffHarness] = []

    def factory(*plugins: Any, entry_points: bool = False, disabled: tuple[str, ...] = ()) -> SkiffHarness:
        harness = SkiffHarness(make_plugin_manager(*plugins, entry_points=entry_points, disabled=disabled), skiff_root)
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        harness.context.close()


def pytest_configure(config: pytest.Config) -> None:
    """Point ``SKIFF_ROOT`` at a private folder for the whole run.

    A test (or a process it starts) that forgets to pass its own root must never open the
    server's state store: as root it would create a root-owned ``/var/lib/skiff/skiff.db``
    that the skiff account cannot open. Tests that need the variable unset delete it.
    """
    if getattr(config, "workerinput", None) is None and "SKIFF_ROOT" not in os.environ:
        import tempfile

        os.environ["SKIFF_ROOT"] = tempfile.mkdtemp(prefix="skiff-test-root-")
