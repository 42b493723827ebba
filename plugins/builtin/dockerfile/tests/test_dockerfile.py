import shutil
from pathlib import Path

import pytest

import skiff_buildpacks.plugin as bp
import skiff_buildpacks.python as python
import skiff_docker.plugin as docker_plugin
import skiff_dockerfile.plugin as df
import skiff_procfile.plugin as procfile
from skiff import hookimpl, lifecycle
from skiff.builders import BuilderInfo
from skiff.errors import DeployError
from skiff.testing import DirReceiver, StubScheduler, dir_source
from skiff.testing.docker import http_get, new_app_name, run_image

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"


@pytest.fixture
def h(skiff):
    harness = skiff(
        DirReceiver(),
        ("procfile", procfile),
        ("buildpacks", bp),
        ("buildpack-python", python),
        ("dockerfile", df),
        StubScheduler(),
    )
    return harness


@pytest.mark.parametrize("value", ["/etc/Dockerfile", "../Dockerfile", "a/../../b"])
def test_dockerfile_path_must_stay_inside_the_app(h, value):
    h.create_app("demo")
    r = h.invoke("builder:set", "demo", "dockerfile-path", value)
    assert r.exit_code == 1 and "relative path inside the app" in r.stderr


def test_builder_set_validates(h):
    h.create_app("demo")
    r = h.invoke("builder:set", "demo", "selected", "herokuish")
    assert r.exit_code == 1 and "unknown builder 'herokuish'; installed: dockerfile, buildpacks" in r.stderr
    assert r.stderr.startswith("!     ") and r.stderr.count("\n") == 1
    assert h.state.get_property("builder", "selected", app="demo") is None
    assert h.invoke("builder:set", "demo", "build-args", "VERSION, FLAVOUR").exit_code == 0
    assert h.state.get_property("builder", "build-args", app="demo") == "VERSION,FLAVOUR"
    assert "VERSION,FLAVOUR" in h.invoke("builder:report", "demo").stdout


def test_builder_set_accepts_any_installed_builder(skiff):
    class Tiny:
        @hookimpl
        def skiff_builders(self):
            return [BuilderInfo("tiny", order=50)]

    h = skiff(("dockerfile", df), ("buildpacks", bp), ("tiny", Tiny()))
    h.create_app("demo")
    r = h.invoke("builder:set", "demo", "selected", "tiny")
    assert r.exit_code == 0, r.output
    assert h.state.get_property("builder", "selected", app="demo") == "tiny"
    report = h.invoke("builder:report", "demo").stdout
    assert "tiny" in report and "tiny, dockerfile, buildpacks" in report
    r = h.invoke("builder:set", "demo", "selected", "herokuish")
    assert r.stderr == "!     unknown builder 'herokuish'; installed: tiny, dockerfile, buildpacks\n"
    assert h.state.get_property("builder", "selected", app="demo") == "tiny"


def test_detection_prefers_the_dockerfile(h, tmp_path):
    from skiff import builders
    from skiff.deploy import Deploy
    from skiff.output import Output

    h.create_app("demo")
    (tmp_path / "requirements.txt").write_text("flask\n")
    deploy = Deploy(
        context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True), workdir=tmp_path
    )
    assert builders.choose(deploy) == "buildpacks"
    (tmp_path / "Dockerfile").write_text("FROM skiff/stack:trixie\n")
    assert builders.choose(deploy) == "dockerfile"
    assert h.invoke("builder:set", "demo", "selected", "buildpacks").exit_code == 0
    assert builders.choose(deploy) == "buildpacks"


def test_selected_dockerfile_without_dockerfile_fails(h, tmp_path):
    h.create_app("demo")
    source = tmp_path / "src"
    source.mkdir()
    (source / "requirements.txt").write_text("flask\n")
    assert h.invoke("builder:set", "demo", "selected", "dockerfile").exit_code == 0
    with pytest.raises(DeployError, match="builder is set to dockerfile but Dockerfile is missing"):
        lifecycle.deploy(h.context, "demo", dir_source(source))


@pytest.mark.e2e
def test_dockerfile_app_builds_exposes_and_answers(h, stack_image, docker_client, docker_cleanup, tmp_path, capsys):
    app = docker_cleanup.app(new_app_name("df"))
    h.create_app(app)
    source = tmp_path / "src"
    shutil.copytree(APPS / "dockerfile", source)
    (source / "Dockerfile").write_text(
        (source / "Dockerfile").read_text() + "ARG GREETING=unset\nENV GREETING=$GREETING\n"
    )
    (source / "requirements.txt").write_text("flask\n")  # the Dockerfile wins over detection
    h.state.set_config(app, {"GREETING": "hello from a build arg", "SECRET": "s3cret"})
    assert h.invoke("builder:set", app, "build-args", "GREETING").exit_code == 0
    release = lifecycle.deploy(h.context, app, dir_source(source))
    out = capsys.readouterr().out
    assert "-----> Dockerfile app detected (Dockerfile)" in out
    assert release.meta["builder"] == "dockerfile" and release.meta["exposed_ports"] == [8080]
    assert release.processes == {}  # no Procfile: the image's CMD is the web process
    image = docker_client.images.get(release.image)
    assert image.labels["skiff.app"] == app
    assert "s3cret" not in str(image.history())  # only allowed config keys become build args
    container, port = run_image(docker_client, release.image, docker_cleanup, port=8080)
    assert http_get(f"http://127.0.0.1:{port}/", container=container) == (200, "hello from a build arg\n")

    # a second build of the same source uses the engine's layer cache
    lifecycle.deploy(h.context, app, dir_source(source))
    assert "Using cache" in capsys.readouterr().out

    # builder:set selected buildpacks overrides the Dockerfile
    assert h.invoke("builder:set", app, "selected", "buildpacks").exit_code == 0
    (source / ".python-version").write_text("2.7\n")
    with pytest.raises(DeployError, match="requests Python 2.7"):  # the buildpacks builder took it
        lifecycle.deploy(h.context, app, dir_source(source))


def test_docker_options_of_the_build_phase_become_sdk_arguments(h):
    from skiff.deploy import Deploy
    from skiff.output import Output

    h.create_app("demo")
    h.state.set_property(
        "docker",
        "docker-options",
        {
            "build": [
                "--build-arg=VERSION=1.2",
                "--label=team=cats",
                "--add-host=db:10.0.0.2",
                "--shm-size=64m",
                "--ulimit=nofile=1024",
            ]
        },
        app="demo",
    )
    deploy = Deploy(context=h.context, app="demo", kind="deploy", description="", output=Output(quiet=True))
    docker_plugin.skiff_pre_build(deploy)  # the docker plugin publishes them, checked: deploy.build_options
    assert deploy.build_options["ulimits"] == {"nofile": (1024, 1024)}
    assert df.docker_build_options(deploy) == {
        "buildargs": {"VERSION": "1.2"},
        "labels": {"team": "cats"},
        "extra_hosts": {"db": "10.0.0.2"},
        "shmsize": 64 * 1024**2,
    }


def test_host_reaching_build_options_are_never_applied(h):
    from skiff.deploy import Deploy
    from skiff.output import Output

    h.create_app("demo")
    h.state.set_property(
        "docker",
        "docker-options",
        {"build": ["--network=host", "--volume=/:/host", "--privileged", "--shm-size=64m\n", "--label=ok=1"]},
        app="demo",
    )
    out = Output(quiet=True)
    warned: list[str] = []
    out.warn = warned.append
    deploy = Deploy(context=h.context, app="demo", kind="deploy", description="", output=out)
    docker_plugin.skiff_pre_build(deploy)  # the docker plugin checks them against its allow-list
    assert df.docker_build_options(deploy) == {"labels": {"ok": "1"}}
    # the malformed --shm-size is warned about too now (the Dockerfile builder used to drop it silently)
    assert len(warned) == 4 and all("not applied" in w for w in warned)


class DockerOptionsPublisher:
    """The docker plugin's ``skiff_pre_build`` alone (no scheduler): publishes ``deploy.build_options``."""

    @hookimpl
    def skiff_pre_build(self, deploy):
        docker_plugin.skiff_pre_build(deploy)


@pytest.mark.e2e
def test_build_options_published_by_the_docker_plugin_reach_the_build(
    skiff, stack_image, docker_client, docker_cleanup, tmp_path
):
    h = skiff(DirReceiver(), ("procfile", procfile), ("dockerfile", df), DockerOptionsPublisher(), StubScheduler())
    app = docker_cleanup.app(new_app_name("dfopt"))
    h.create_app(app)
    source = tmp_path / "src"
    shutil.copytree(APPS / "dockerfile", source)
    (source / "Dockerfile").write_text(
        (source / "Dockerfile").read_text() + "ARG FLAVOUR=unset\nENV FLAVOUR=$FLAVOUR\n"
    )
    h.state.set_property(
        "docker", "docker-options", {"build": ["--build-arg=FLAVOUR=tabby", "--label=team=cats"]}, app=app
    )
    release = lifecycle.deploy(h.context, app, dir_source(source))
    image = docker_client.images.get(release.image)
    assert image.labels["team"] == "cats" and image.labels["skiff.app"] == app
    assert "FLAVOUR=tabby" in image.attrs["Config"]["Env"]
    assert release.meta["dockerfile"] == "Dockerfile" and release.exposed_ports == [8080]
    assert release.image_id == image.id
