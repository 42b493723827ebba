"""The example third-party builder, without Docker: what it declares, when it answers, what it builds."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import pytest

from skiff import builders
from skiff.deploy import Deploy
from skiff.output import Output

MODULE = Path(__file__).resolve().parents[2] / "examples" / "tiny-builder" / "skiff_tiny_builder.py"


@pytest.fixture(scope="module")
def tiny():
    spec = importlib.util.spec_from_file_location("skiff_tiny_builder_under_test", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def h(skiff, tiny):
    harness = skiff(("tiny", tiny))
    harness.create_app("demo")
    return harness


def make_deploy(h, workdir: Path, builder=None) -> Deploy:
    return Deploy(
        context=h.context,
        app="demo",
        kind="deploy",
        description="",
        output=Output(quiet=True),
        workdir=workdir,
        builder=builder,
    )


def test_declares_tiny_and_detects_tiny_txt(h, tmp_path):
    assert list(builders.installed(h.context)) == ["tiny"]
    deploy = make_deploy(h, tmp_path)
    assert builders.choose(deploy) is None
    (tmp_path / "tiny.txt").write_text("purr\nsecond line\n")
    assert builders.choose(deploy) == "tiny"


def test_builds_only_when_chosen(h, tiny, tmp_path):
    (tmp_path / "tiny.txt").write_text("purr\n")
    assert tiny.skiff_build(make_deploy(h, tmp_path, builder="buildpacks")) is None
    assert tiny.skiff_build(make_deploy(h, tmp_path, builder=None)) is None


def test_answer_and_build_context(h, tiny, tmp_path):
    deploy = make_deploy(h, tmp_path, builder="tiny")
    assert tiny.answer(deploy) == "hello from tiny"
    (tmp_path / "tiny.txt").write_text("  purr  \nsecond line\n")
    assert tiny.answer(deploy) == "purr"
    with tarfile.open(fileobj=tiny.context_tar("skiff/stack:trixie", "purr")) as tf:
        dockerfile = tf.extractfile("Dockerfile").read().decode()
        assert tf.extractfile("answer.txt").read() == b"purr\n"
    assert dockerfile.startswith("FROM skiff/stack:trixie\n") and "USER 1000:1000" in dockerfile
