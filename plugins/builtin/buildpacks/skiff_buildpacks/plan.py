"""The pack plan: what the chosen packs ask of one build, merged in pack order.

Each pack's hook results (plain dicts, see :mod:`skiff_buildpacks.hookspecs`)
are merged into one :class:`PackPlan`; the builder then reads typed fields
instead of juggling the dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from skiff import contracts

Step = dict[str, Any]


def _extend_unique(target: list[str], items: list[str]) -> None:
    target.extend(item for item in items if item not in target)


@dataclass
class PackPlan:
    """Dependencies, code-layer steps and processes of the packs of one build.

    ``additive_lines`` holds each installing pack's normalised requirement
    lines while every pack that installs something is additive (pip); it is
    ``None`` as soon as one is not, and then the layer never stacks.
    """

    packs: list[str]
    files: list[str] = field(default_factory=list)
    generated: dict[str, bytes] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    build_env: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, str] = field(default_factory=dict)
    path_prefix: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    archives: list[dict[str, str]] = field(default_factory=list)
    read_only: dict[str, str] = field(default_factory=dict)  # container path -> server cache dir (bind, ro)
    after_install: list[Callable[[dict[str, Any], Any], list[str]]] = field(default_factory=list)
    #: shared dependency layers the install step may resolve to: hash -> record (``image``)
    shared_layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    additive_lines: dict[str, list[str]] | None = field(default_factory=dict)
    compile_steps: list[Step] = field(default_factory=list)
    compile_files: dict[str, bytes] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[str, str] = field(default_factory=dict)
    run_needs: list[str] = field(default_factory=list)  # what the run image must have (node, npm)

    def add_dependencies(self, pack: str, deps: dict[str, Any]) -> None:
        """Merge one pack's ``skiff_buildpack_dependencies`` result."""
        _extend_unique(self.files, deps.get("files", []))
        self.generated.update(deps.get("generated", {}))
        self.steps += deps.get("steps", [])
        self.build_env.update(deps.get("env", {}))
        self.runtime_env.update(deps.get("runtime_env", {}))
        _extend_unique(self.path_prefix, deps.get("path", []))
        self.exclude += deps.get("exclude", [])
        self.archives += deps.get("archives", [])
        self.read_only.update(deps.get("read_only", {}))
        self.after_install += deps.get("after_install", [])
        self.shared_layers.update(deps.get("shared_layers", {}))
        _extend_unique(self.run_needs, deps.get("run_needs", []))
        if deps.get("steps"):
            self._add_lines(pack, deps.get("additive_lines"))

    def _add_lines(self, pack: str, lines: list[str] | None) -> None:
        if self.additive_lines is not None and lines is not None:
            self.additive_lines[pack] = list(lines)
        else:
            self.additive_lines = None

    def add_compile(self, result: dict[str, Any]) -> None:
        """Merge one pack's ``skiff_buildpack_compile`` result."""
        self.compile_steps += result.get("steps", [])
        self.compile_files.update(result.get("files", {}))
        if result.get("stage"):
            self.stages.append(result["stage"])

    def add_processes(self, processes: dict[str, str]) -> None:
        """Merge one pack's default process types (an earlier pack's type wins)."""
        for ptype, command in processes.items():
            self.processes.setdefault(ptype, command)

    @property
    def archive_keys(self) -> list[str]:
        return [a["key"] for a in self.archives]

    @property
    def archive_paths(self) -> list[str]:
        return [a["path"] for a in self.archives]

    def path(self, stack_path: str) -> str:
        return ":".join(self.path_prefix + [stack_path])

    def env(self, stack_path: str) -> dict[str, str]:
        """The environment of the build steps."""
        return {"PATH": self.path(stack_path), **self.build_env}

    def image_env(self, stack_path: str) -> dict[str, str]:
        """The environment the image runs with."""
        return {**self.env(stack_path), **self.runtime_env, "PORT": str(contracts.DEFAULT_PORT)}
