"""Progress output in the Heroku/Dokku style.

``-----> step``, indented detail lines, `` !     warning`` and ``=====> banner``.
Every write is flushed so a ``git push`` shows it live as ``remote:`` lines.
:meth:`Output.tee` copies every line to a sink as well (the lifecycle keeps each
deploy's output with it: :mod:`skiff.builds`), quiet lines included.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start may not need it)
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any, Callable

INDENT = "       "


class Output:
    """Writes progress lines to a stream (stdout by default)."""

    def __init__(self, stream: IO[str] | None = None, err: IO[str] | None = None, quiet: bool = False):
        self._stream = stream
        self._err = err
        self.quiet = quiet
        self._sinks: list[Callable[[str], None]] = []

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stdout

    @property
    def err(self) -> IO[str]:
        return self._err or sys.stderr

    @contextmanager
    def tee(self, sink: Callable[[str], None]) -> Iterator[None]:
        """Also pass every line written (without its newline) to ``sink`` while the block runs."""
        self._sinks.append(sink)
        try:
            yield
        finally:
            self._sinks.remove(sink)

    def _tee(self, text: str) -> None:
        for sink in self._sinks:
            sink(text)

    def _write(self, text: str, stream: IO[str] | None = None) -> None:
        self._tee(text)
        stream = stream or self.stream
        stream.write(text + "\n")
        stream.flush()

    def _progress(self, text: str) -> None:
        """A line ``quiet`` leaves out (a sink still gets it)."""
        if self.quiet:
            self._tee(text)
        else:
            self._write(text)

    def step(self, message: str) -> None:
        """A phase or step: ``-----> message``."""
        self._progress(f"-----> {message}")

    def info(self, message: str) -> None:
        """Detail under a step, indented."""
        for line in message.splitlines() or [""]:
            self._progress(f"{INDENT}{line}")

    def lines(self, lines: Iterable[str]) -> None:
        """Indent and write each line of another program's output as it arrives."""
        for line in lines:
            self.info(line.rstrip("\r\n"))

    def warn(self, message: str) -> None:
        self._write(f" !     {message}", self.err)

    def error(self, message: str) -> None:
        """One error line: ``!     message`` on stderr."""
        self._write(f"!     {message}", self.err)

    def fields(self, title: str, fields: Mapping[str, Any]) -> None:
        """A report section: ``=====> title`` and one aligned ``Label: value`` line per field.

        Keys become labels (``deploy_branch`` -> ``Deploy branch``); lists are joined with
        spaces, dicts shown as JSON, ``None`` as nothing. Every ``*:report`` command uses it.
        """
        self.banner(title)
        labels = {key: key.replace("_", " ").replace("-", " ").capitalize() + ":" for key in fields}
        width = max((len(label) for label in labels.values()), default=0)
        for key, value in fields.items():
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            elif isinstance(value, dict):
                import json

                value = json.dumps(value, sort_keys=True)
            self._write(f"{INDENT}{labels[key]:<{width}} {'' if value is None else value}")

    def banner(self, message: str) -> None:
        self._progress(f"=====> {message}")

    def plain(self, message: str = "") -> None:
        self._write(message)
