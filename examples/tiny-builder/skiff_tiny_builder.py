"""A third-party Skiff builder: ``tiny``.

It builds an image ``FROM`` the stack image whose web process answers every
GET with one fixed text: the first line of ``tiny.txt`` in the source (or
``hello from tiny``). It is detected by a ``tiny.txt`` file (order 50, before
the dockerfile and buildpacks builders) and can be forced with
``builder:set APP selected tiny``.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time

from skiff import contracts, hookimpl
from skiff.builders import BuilderInfo
from skiff.errors import SkiffError

NAME = "tiny"
MARKER = "tiny.txt"
DEFAULT_TEXT = "hello from tiny"
SERVER = """\
import http.server, os
BODY = open("/tiny/answer.txt", "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
"""


def _detect(deploy) -> bool:
    path = deploy.workdir / MARKER
    return path.is_file() and not path.is_symlink()


@hookimpl
def skiff_builders() -> list[BuilderInfo]:
    return [BuilderInfo(NAME, order=50, detect=_detect, description="answers one fixed text (tiny.txt)")]


def answer(deploy) -> str:
    """The first line of ``tiny.txt`` (a regular file only), else the default text."""
    if not _detect(deploy):
        return DEFAULT_TEXT
    lines = (deploy.workdir / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()
    return (lines[0].strip() if lines else "") or DEFAULT_TEXT


def context_tar(stack: str, text: str) -> io.BytesIO:
    """A small build context: the Dockerfile, the server and the answer."""
    dockerfile = (
        f"FROM {stack}\nCOPY server.py answer.txt /tiny/\nUSER 1000:1000\nENV PORT=5000\n"
        f"CMD {json.dumps(['python3', '/tiny/server.py'])}\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", dockerfile), ("server.py", SERVER), ("answer.txt", text + "\n")):
            raw = data.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(raw), 0o644
            tf.addfile(info, io.BytesIO(raw))
    buf.seek(0)
    return buf


@hookimpl
def skiff_build(deploy) -> str | None:
    if deploy.builder != NAME:
        return None
    import docker
    import docker.errors

    stack = contracts.stack_image(deploy.state)
    text = answer(deploy)
    tag = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    ref = f"skiff/{deploy.app}:{tag}"
    deploy.output.step(f"Tiny app detected: it will answer {text!r}")
    try:
        client = docker.from_env(timeout=300)
        image, _ = client.images.build(
            fileobj=context_tar(stack, text),
            custom_context=True,
            tag=ref,
            pull=False,
            rm=True,
            forcerm=True,
            labels={"skiff.app": deploy.app, "skiff.build": tag, "skiff.builder": NAME},
        )
    except docker.errors.DockerException as exc:
        raise SkiffError(f"tiny build failed: {exc}") from exc
    deploy.image_id = image.id
    deploy.output.step(f"Built {ref} with the tiny builder")
    return ref
