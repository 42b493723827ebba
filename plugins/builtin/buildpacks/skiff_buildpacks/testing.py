"""Helpers for the unit tests of language packs (this plugin's and third-party ones): no Docker.

``pack_build(source, version)`` is a :class:`~skiff_buildpacks.build.Build` of ``source`` on a
trixie stack whose toolchain layers (``build.toolchain(...)``) are :class:`FakeToolchains`:
the calls are recorded in ``build.toolchain_loader.calls`` and every layer answers
``skiff/stack-NAME:trixie`` with the given version.
"""

from __future__ import annotations

from pathlib import Path

from skiff import contracts
from skiff.output import Output

from .build import Build, Stack
from .toolchains import Toolchain

TRIXIE = Stack(image=contracts.DEFAULT_STACK_IMAGE, id="sha256:aaa", python="3.13.5", node="20.19.2")


class FakeToolchains:
    """Stands for :func:`skiff_buildpacks.toolchains.ensure`."""

    def __init__(self, version: str):
        self.version = version
        self.calls: list[tuple[str, str, list[str], list[str]]] = []

    def __call__(self, stack: Stack, name: str, packages: list[str], command: list[str]) -> Toolchain:
        self.calls.append((stack.image, name, list(packages), list(command)))
        return Toolchain(name, f"skiff/stack-{name}:trixie", f"sha256:{name}", self.version)


def pack_build(source: Path, version: str, config: dict[str, str] | None = None, stack: Stack = TRIXIE) -> Build:
    return Build(
        app="demo",
        source=source,
        config=dict(config or {}),
        stack=stack,
        stacks=[stack],
        output=Output(quiet=True),
        toolchain_loader=FakeToolchains(version),
    )
