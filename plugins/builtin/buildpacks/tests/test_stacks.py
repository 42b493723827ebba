"""Stack probes with a fake Docker client: a failed probe is not cached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import pytest

from skiff_buildpacks import stacks

IMAGE_ID = "sha256:" + "ab" * 32
Outcome = Union[bytes, Exception]


@dataclass
class FakeImage:
    id: str = IMAGE_ID
    labels: dict[str, str] = field(default_factory=dict)  # unlabelled: a registry image, so it is probed
    attrs: dict[str, Any] = field(default_factory=lambda: {"Config": {"Env": ["PATH=/usr/local/bin:/usr/bin"]}})


class FakeImages:
    def get(self, ref: str) -> FakeImage:
        return FakeImage()


class FakeContainers:
    """``containers.run`` answers the queued outcomes in turn (bytes printed, or an exception raised)."""

    def __init__(self, outcomes: list[Outcome]):
        self.outcomes = list(outcomes)
        self.runs = 0

    def run(self, image: str, command: list[str], **kwargs: Any) -> bytes:
        self.runs += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeClient:
    def __init__(self, *outcomes: Outcome):
        self.images = FakeImages()
        self.containers = FakeContainers(list(outcomes))


@pytest.fixture
def context(skiff):
    return skiff().context


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("engine busy"), b"", b"python3: not found\n", b"\xff\xfe junk"],
    ids=["raises", "empty", "no-python", "garbage"],
)
def test_a_failed_probe_is_not_cached(context, failure: Outcome) -> None:
    client = FakeClient(failure, b"3.13.5 20.19.2\n")
    first = stacks.stack_from_image(context, client, "debian-python:13")
    assert (first.python, first.node) == ("", "")
    second = stacks.stack_from_image(context, client, "debian-python:13")
    assert (second.python, second.node) == ("3.13.5", "20.19.2")
    assert client.containers.runs == 2


def test_a_successful_probe_is_cached(context) -> None:
    client = FakeClient(b"3.13.5 -\n")
    for _ in range(3):
        stack = stacks.stack_from_image(context, client, "debian-python:13")
        assert (stack.python, stack.node, stack.path) == ("3.13.5", "", "/usr/local/bin:/usr/bin")
    assert client.containers.runs == 1


def test_a_failure_cached_by_an_older_version_is_probed_again(context) -> None:
    context.state.set_property("buildpacks", f"probe-{'ab' * 16}", ["", ""])
    client = FakeClient(b"3.11.2 -\n")
    assert stacks.stack_from_image(context, client, "debian-python:12").python == "3.11.2"
    assert client.containers.runs == 1
