import pytest

import skiff_stack.plugin as stack_plugin
from skiff.errors import SkiffError
from skiff_stack import build


def test_find_mirror_reads_deb822_and_one_line_sources(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bookworm\n"
    )
    (d / "other.list").write_text("deb https://packages.example.com/apt stable main\n")
    assert build.find_mirror(d, tmp_path / "missing") == "http://mirror.example.org/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://ftp.example.net/debian/ trixie main\n")
    assert build.find_mirror(d, tmp_path / "sources.list") == "http://ftp.example.net/debian"
    assert build.find_mirror(tmp_path / "none", tmp_path / "none") == build.DEFAULT_MIRROR


@pytest.mark.parametrize("suite", ["trixie", "bookworm", "sid"])
def test_valid_suites(suite):
    assert build.validate_suite(suite) == suite


@pytest.mark.parametrize("suite", ["", "Trixie", "../x", "trixie;rm", "a"])
def test_invalid_suites(suite):
    with pytest.raises(SkiffError):
        build.validate_suite(suite)


def test_stack_dockerfile_installs_node_and_a_non_root_user():
    text = build.DOCKERFILE.format(
        base="skiff/stack-base:trixie", packages=" ".join(build.STACK_PACKAGES), uid=1000, suite="trixie", version="1"
    )
    assert "nodejs" in text and "npm" in text and "useradd --uid 1000" in text
    assert "nodejs" not in build.BASE_PACKAGES  # npm does not configure inside debootstrap


def test_stack_set_global_image(skiff):
    h = skiff(("stack", stack_plugin))
    assert stack_plugin.stack_image(h.context) == "skiff/stack:trixie"
    r = h.invoke("stack:set", "image", "x")
    assert r.exit_code == 1 and "--global" in r.stderr
    assert h.invoke("stack:set", "--global", "image", "registry.example.com/stack:1").exit_code == 0
    assert h.state.get_property("stack", "image") == "registry.example.com/stack:1"
    r = h.invoke("stack:set", "--global", "image", "bad name;")
    assert r.exit_code == 1 and "invalid image name" in r.stderr
    r = h.invoke("stack:set", "--global", "colour", "blue")
    assert r.exit_code == 1 and "unknown stack property" in r.stderr
    assert h.invoke("stack:set", "--global", "image").exit_code == 0
    assert stack_plugin.stack_image(h.context) == "skiff/stack:trixie"


@pytest.mark.e2e
def test_stack_image_has_python_node_and_the_app_user(stack_image, docker_client):
    image = docker_client.images.get(stack_image)
    labels = image.labels
    assert labels["skiff.stack"] == "trixie" and labels["skiff.stack.python"].startswith("3.13")
    assert labels["skiff.stack.node"].split(".")[0] >= "18"
    out = (
        docker_client.containers.run(stack_image, ["sh", "-c", "id -u app; node --version; npm --version"], remove=True)
        .decode()
        .split()
    )
    assert out[0] == "1000" and out[1].startswith("v")


@pytest.mark.e2e
def test_stack_build_is_a_no_op_when_the_tag_exists(skiff, stack_image):
    h = skiff(("stack", stack_plugin))
    r = h.invoke("stack:build")
    assert r.exit_code == 0 and "already exists; nothing to do" in r.stdout
    report = h.invoke("stack:report", "--format", "json")
    assert report.exit_code == 0 and '"present": true' in report.stdout
