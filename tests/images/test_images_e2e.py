"""End to end, over a real ``git push`` / SSH and a private nginx: prebuilt images.

- a Dockerfile app whose ``FROM`` image is missing and cannot be pulled (a registry on a
  closed loopback port, so nothing leaves the machine) is refused with one line, and the
  previous release keeps serving;
- ``git:load-image`` deploys a ``docker save`` tarball from stdin, ``git:from-image`` an
  image on the server; neither lets the tarball's tags land on the engine.

The tiny images are built here: a static C web server (host gcc) ``FROM scratch``, so a
saved tarball is a few hundred KiB and nothing is pulled.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, free_port, git_push, init_repo

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.img"
STACK = "skiff/stack:trixie"

SERVER_C = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *port = getenv("PORT"), *text = argc > 1 ? argv[1] : "tiny";
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {0};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_family = AF_INET;
    a.sin_port = htons(port ? atoi(port) : 5000);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) return 1;
    for (;;) {
        char buf[4096], head[256];
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        read(c, buf, sizeof buf);
        int n = snprintf(head, sizeof head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            strlen(text) + 1);
        write(c, head, n); write(c, text, strlen(text)); write(c, "\n", 1);
        close(c);
    }
}
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory) -> Path:
    """A static web server binary that answers ``argv[1]`` on ``$PORT``."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: no tiny image can be built without pulls")
    work = tmp_path_factory.mktemp("tiny-server")
    (work / "server.c").write_text(SERVER_C)
    proc = subprocess.run(
        ["gcc", "-static", "-Os", "-o", str(work / "server"), str(work / "server.c")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot link a static binary here: {proc.stderr.strip()[:200]}")
    return work / "server"


def tiny_image(docker_client, docker_cleanup, tiny_server: Path, tmp_path: Path, tag: str, text: str) -> str:
    """Build ``tag``: FROM scratch, the server, CMD answering ``text``; return its id (removed after the test)."""
    context = tmp_path / f"ctx-{tag.replace('/', '-').replace(':', '-')}"
    context.mkdir()
    shutil.copy(tiny_server, context / "server")
    (context / "Dockerfile").write_text(f'FROM scratch\nCOPY server /server\nCMD ["/server", "{text}"]\n')
    owner = new_app_name("tiny")  # cleanup by label removes the app's images (children) first, then these
    image, _ = docker_client.images.build(
        path=str(context), tag=tag, rm=True, pull=False, labels={"skiff.test-image": owner}
    )
    docker_cleanup.label("skiff.test-image", owner)
    return image.id


def save(path: Path, *refs: str) -> Path:
    """``docker save -o PATH REF...`` (the CLI, as a user would; each ref becomes a RepoTag)."""
    subprocess.run(["docker", "save", "-o", str(path), *refs], check=True, timeout=120)
    return path


def retag_tarball(source: Path, dest: Path, tags: list[str]) -> Path:
    """A copy of a saved tarball whose manifest.json names ``tags`` (as a hostile client would send)."""
    with tarfile.open(source) as src, tarfile.open(dest, "w") as out:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isreg() else None
            if member.name == "manifest.json":
                manifest = json.loads(data.read())
                manifest[0]["RepoTags"] = tags
                raw = json.dumps(manifest).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            elif member.name == "repositories":
                raw = json.dumps({tag.split(":")[0]: {tag.split(":")[1]: "x"} for tag in tags}).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            out.addfile(member, data)
    return dest


def ssh_with_stdin(sshd, args: list[str], data: Path) -> subprocess.CompletedProcess:
    with open(data, "rb") as stdin:
        return subprocess.run(
            [*sshd.ssh_args(), sshd.alias, "--", shlex.join(args)],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env=sshd.env,
        )


def bang_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "!     " in line]


def tags_of(docker_client, ref: str) -> list[str]:
    return sorted(docker_client.images.get(ref).tags)


def test_missing_base_image_is_one_line_and_the_old_release_keeps_serving(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    app = docker_cleanup.app(new_app_name("from"))
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    files = {
        "Dockerfile": f"FROM {STACK}\nCOPY index.html /srv/\nEXPOSE 5000\n"
        'CMD ["python3", "-m", "http.server", "5000", "--directory", "/srv"]\n',
        "index.html": "first\n",
    }
    repo = init_repo(tmp_path / app, files)
    first = git_push(repo, app, sshd)
    assert first.exit_code == 0, first.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "first\n"

    image = f"127.0.0.1:{free_port()}/nope/base:1"
    commit_files(repo, {"Dockerfile": f"ARG BASE={image}\nFROM --platform=linux/amd64 $BASE AS base\nFROM base\n"})
    second = git_push(repo, app, sshd)
    assert second.exit_code != 0
    bang = bang_lines(second.output)
    assert len(bang) == 1, second.output
    assert bang[0].split("!     ", 1)[1].rstrip() == (
        f'build failed: base image "{image}" is not on this server and could not be pulled '
        "(registry unreachable): load it with docker load, or change FROM; v1 keeps serving"
    )
    assert "dial tcp" not in second.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "first\n"


def test_load_image_deploys_a_saved_tarball_and_its_tags_never_land(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, tiny_server, tmp_path
):
    app = docker_cleanup.app(new_app_name("load"))
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    local = f"skiff-test-local/{app}:v1"
    tiny_image(docker_client, docker_cleanup, tiny_server, tmp_path, local, "loaded meow")
    tarball = save(tmp_path / "image.tar", local)
    docker_client.images.remove(local)  # the server has it only through the tarball

    loaded = ssh_with_stdin(sshd, ["git:load-image", app, local], tarball)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "loaded meow\n"
    assert not docker_client.images.list(name=f"skiff-test-local/{app}")  # the tarball's tag did not land
    (web,) = docker_client.containers.list(filters={"label": [f"skiff.app={app}", "skiff.process=web"]})
    assert web.image.tags[0].startswith(f"skiff/{app}:") and web.image.labels["skiff.app"] == app

    # a loaded app has no repository: `deploy APP` and `ps:rebuild APP` deploy its image again
    for command in (["deploy", app], ["ps:rebuild", app]):
        again = sshd.ssh(command)
        assert again.exit_code == 0, again.output
        assert f"Tagged skiff/{app}:" in again.output and local in again.output
        assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "loaded meow\n"
    webs = docker_client.containers.list(filters={"label": [f"skiff.app={app}", "skiff.process=web"]})
    assert webs and all(w.image.labels["skiff.app"] == app for w in webs)  # the old one may still be retiring
    assert not docker_client.images.list(name=f"skiff-test-local/{app}")

    # a tarball whose tags name the stack image and another app's image changes neither
    stack_before = docker_client.images.get(STACK).id
    victim = f"skiff/{app}x:latest"  # stands for another app's image
    victim_id = tiny_image(docker_client, docker_cleanup, tiny_server, tmp_path, victim, "the victim")
    tiny_image(docker_client, docker_cleanup, tiny_server, tmp_path, f"skiff-test-local/{app}:v2", "hijacked")
    plain = save(tmp_path / "v2.tar", f"skiff-test-local/{app}:v2")
    docker_client.images.remove(f"skiff-test-local/{app}:v2")
    hostile = retag_tarball(plain, tmp_path / "hostile.tar", [STACK, victim])
    second = ssh_with_stdin(sshd, ["git:load-image", app, STACK], hostile)
    assert second.returncode == 0, second.stdout + second.stderr
    assert docker_client.images.get(STACK).id == stack_before
    assert docker_client.images.get(victim).id == victim_id
    assert "the tarball's tags are not loaded (skiff/stack:trixie, " in second.stdout
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "hijacked\n"  # deployed, as the app's own image


def test_from_image_deploys_an_image_on_the_server(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, tiny_server, tmp_path
):
    app = docker_cleanup.app(new_app_name("fimg"))
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    local = f"skiff-test-local/{app}:v1"
    tiny_image(docker_client, docker_cleanup, tiny_server, tmp_path, local, "from an image")
    deployed = sshd.ssh(["git:from-image", app, local])
    assert deployed.exit_code == 0, deployed.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "from an image\n"
    assert tags_of(docker_client, local) == [local]  # the source image keeps its tag and no other

    missing = f"127.0.0.1:{free_port()}/nope/img:1"
    refused = sshd.ssh(["git:from-image", app, missing])
    assert refused.exit_code != 0
    assert bang_lines(refused.stderr) == [
        f'!     image "{missing}" is not on this server and could not be pulled (registry unreachable): '
        f"load it with git:load-image {app}, or push it to a registry this server reaches"
    ]
    assert private_nginx.request(host=f"{app}.{GLOBAL}").body == "from an image\n"
