"""What the pack helpers that download from a registry or an index share."""

from __future__ import annotations

from collections.abc import Iterable


def read_capped(chunks: Iterable[bytes], limit: int) -> bytes:
    """The chunks of a response joined; ``ValueError`` as soon as they pass ``limit`` bytes."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise ValueError("too large")
    return bytes(data)
