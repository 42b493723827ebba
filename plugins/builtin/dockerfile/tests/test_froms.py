"""The base images of a Dockerfile, and the one-line error when one cannot be pulled."""

from types import SimpleNamespace

import pytest

import skiff_dockerfile.plugin as df
from skiff import dockerclient, validate
from skiff.errors import SkiffError, ValidationError
from skiff_dockerfile.froms import base_images, instructions, substitute


def refs(text, args=None):
    return [b.reference for b in base_images(text, args)]


def test_plain_from_lines_and_stages():
    text = "FROM debian:12 AS build\nRUN make\nFROM build\nFROM Build AS again\nFROM scratch\nFROM python:3.13-slim\n"
    assert refs(text) == ["debian:12", "python:3.13-slim"]
    assert [b.line for b in base_images(text)] == [1, 6]


def test_platform_flags_case_and_registry_ports():
    text = "from --platform=$BUILDPLATFORM 127.0.0.1:5000/team/app:1 as base\nFROM base\n"
    assert refs(text) == ["127.0.0.1:5000/team/app:1"]


def test_arg_defaults_and_build_args_override():
    text = 'ARG BASE=debian\nARG TAG="12"\nARG UNUSED\nFROM ${BASE}:$TAG\nARG LATE=x\nFROM ${MISSING:-alpine}:3\n'
    assert refs(text) == ["debian:12", "alpine:3"]
    assert refs(text, {"TAG": "13", "LATE": "ignored"}) == ["debian:13", "alpine:3"]
    assert refs("ARG A B=busybox\nFROM ${A:+x}${B}\n") == ["busybox"]


def test_copy_from_an_image_but_not_a_stage_or_an_index():
    text = "FROM debian:12 AS one\nCOPY --from=one /a /b\nCOPY --from=0 /a /b\nCOPY --from=nginx:1 /etc /etc\n"
    assert refs(text) == ["debian:12", "nginx:1"]


def test_continuations_comments_and_the_escape_directive():
    text = "# escape=`\nFROM `\n  # a comment\n  debian:12 `\n  AS x\nRUN a \\\n"
    assert list(instructions(text))[0] == (2, "FROM", "debian:12 AS x")
    assert refs(text) == ["debian:12"]
    assert refs("FROM \\\n\n   debian:12\n") == ["debian:12"]


def test_digests_and_each_image_once():
    digest = "debian@sha256:" + "a" * 64
    assert refs(f"FROM {digest}\nFROM {digest}\nFROM debian\n") == [digest, "debian"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("FROM\n", "cannot parse FROM"),
        ("FROM a b c\n", "cannot parse FROM"),
        ("FROM --platform linux debian\n", "cannot parse FROM"),
        ("FROM debian AS 9bad\n", "invalid stage name"),
        ("FROM Debian:12\n", "invalid base image reference"),
        ("FROM debian:12;rm\n", "invalid base image reference"),
        ("ARG V\nFROM $V\n", "invalid base image reference"),
        ("FROM ${V#x}\n", "unsupported substitution"),
        ("ARG =x\nFROM a\n", "cannot parse ARG"),
    ],
)
def test_bad_from_lines_are_one_clear_error(text, words):
    with pytest.raises(ValidationError, match=words):
        base_images(text)


def test_substitute_forms():
    args = {"A": "1", "E": ""}
    assert substitute("$A-${A}-${E:-d}-${E-d}-${N-d}-${A:+p}-${N+p}-\\$A", args) == "1-1-d--d-p--$A"


@pytest.mark.parametrize(
    "ref", ["debian", "debian:12", "skiff/stack:trixie", "localhost/x", "reg.example.com:5000/a/b_c:1.0-rc"]
)
def test_image_references(ref):
    assert validate.image_reference(ref) == ref


@pytest.mark.parametrize("ref", ["", "-rm", "UPPER", "a//b", "a:", "a b", "x/" + "a" * 256, "a\n", "a:-x"])
def test_invalid_image_references(ref):
    with pytest.raises(ValidationError, match="invalid image reference"):
        validate.image_reference(ref)


def test_image_name_splits_tags_and_digests():
    assert validate.image_name("debian") == ("debian", "latest")
    assert validate.image_name("127.0.0.1:5000/x:2") == ("127.0.0.1:5000/x", "2")
    assert validate.image_name("x@sha256:" + "b" * 64) == ("x", "@sha256:" + "b" * 64)


@pytest.mark.parametrize(
    "error, reason",
    [
        ('Get "https://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused', "registry unreachable"),
        ("manifest for x:1 not found: manifest unknown", "the registry does not have it"),
        ("pull access denied for x, repository does not exist", "the registry does not have it"),
        ("unauthorized: authentication required", "the registry refused access"),
        ("something\nelse", "something"),
    ],
)
def test_pull_reasons(error, reason):
    assert dockerclient.pull_reason(error) == reason


class FakeImages:
    def __init__(self, present):
        self.present = set(present)

    def get(self, ref):
        import docker.errors

        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return SimpleNamespace(id="sha256:x")


class FakeClient:
    def __init__(self, present, pull_error=None):
        self.images = FakeImages(present)
        self.pulled = []
        self.api = SimpleNamespace(pull=self.pull)
        self.pull_error = pull_error

    def pull(self, ref, stream, decode):
        self.pulled.append(ref)
        if self.pull_error:
            return iter([{"status": "Pulling"}, {"error": self.pull_error}])
        self.images.present.add(ref)
        return iter([{"status": "Downloaded"}])


def fake_deploy(tmp_path, dockerfile):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    lines = []
    output = SimpleNamespace(info=lines.append)
    return SimpleNamespace(workdir=tmp_path, output=output, lines=lines)


def test_present_images_are_not_pulled_and_missing_ones_are(tmp_path):
    deploy = fake_deploy(tmp_path, "FROM skiff/stack:trixie AS a\nFROM a\nFROM debian:12\n")
    client = FakeClient({"skiff/stack:trixie"})
    df.ensure_base_images(deploy, client, "Dockerfile", {})
    assert client.pulled == ["debian:12"]
    assert deploy.lines == ["pulling base image debian:12 (line 3)"]


def test_an_image_that_cannot_be_pulled_is_one_line_naming_it(tmp_path):
    deploy = fake_deploy(tmp_path, "ARG REG=127.0.0.1:9\nFROM $REG/foo/bar:1\n")
    client = FakeClient(set(), pull_error="Get https://127.0.0.1:9/v2/: dial tcp 127.0.0.1:9: connection refused")
    with pytest.raises(SkiffError) as caught:
        df.ensure_base_images(deploy, client, "Dockerfile", {})
    assert str(caught.value) == (
        'base image "127.0.0.1:9/foo/bar:1" is not on this server and could not be pulled '
        "(registry unreachable): load it with docker load, or change FROM"
    )
