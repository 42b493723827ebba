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

import shutil
import subprocess
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
    """Build ``tag``: FROM scratch, the server, CMD answering ``text``; return its id."""
    context = tmp_path / f"ctx-{tag.replace('/', '-').replace(':', '-')}"
    context.mkdir()
    shutil.copy(tiny_server, context / "server")
    (context / "Dockerfile").write_text(f'FROM scratch\nCOPY server /server\nCMD ["/server", "{text}"]\n')
    image, _ = docker_client.images.build(path=str(context), tag=tag, rm=True, pull=False)
    docker_cleanup.image(image.id)
    return image.id


def save(docker_client, ref: str, path: Path) -> Path:
    with open(path, "wb") as out:
        for chunk in docker_client.images.get(ref).save(named=True):
            out.write(chunk)
    return path


def ssh_with_stdin(sshd, args: list[str], data: Path) -> subprocess.CompletedProcess:
    with open(data, "rb") as stdin:
        return subprocess.run(
            [*sshd.ssh_args(), *args], stdin=stdin, capture_output=True, text=True, timeout=300, env=sshd.env
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
