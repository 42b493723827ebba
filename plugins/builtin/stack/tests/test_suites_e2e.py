"""End to end: Python 3.14 and 3.11 apps run on the stacks of Debian forky and bookworm.

Each app is a real ``git push`` over SSH through a private nginx (127.0.0.1) and serves a page
that reports its ``sys.version``. The two extra stacks take minutes each to build on a 2-core
machine, so each is built once per machine and reused while its recipe version (the label
``skiff.stack.version``) matches this checkout's:

- ``skiff/stack:bookworm`` is bootstrapped by the stack plugin's ``skiff_stack_ensure`` hook in a
  process that is not root (uid ``nobody`` with only the docker group), as a push of the
  ``skiff`` user would: debootstrap runs in an unprivileged container;
- ``skiff/stack:forky`` is built by the push of the 3.14 app itself (build on push), whose
  output then says so.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo
from skiff_stack import build as stack_build

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
APP_PY = """\
import http.server, os, sys

class Version(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python " + sys.version.split()[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("", int(os.environ["PORT"])), Version).serve_forever()
"""
ENSURE = """\
import os, sys
from skiff.context import Context
from skiff.output import Output
from skiff.plugins import build_plugin_manager

assert os.geteuid() != 0 and os.getegid() != 0, "must not run as root"
print(f"uid={os.geteuid()} gid={os.getegid()} groups={os.getgroups()}", flush=True)
context = Context(build_plugin_manager(load_entry_points=True), root=sys.argv[1], output=Output())
labels = context.hook.skiff_stack_ensure(context=context, image=sys.argv[2], output=context.output)
print("labels", labels["skiff.stack"], labels["skiff.stack.version"], labels["skiff.stack.python"], flush=True)
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


def _current(docker_client, tag: str) -> bool:
    return stack_build.is_current(stack_build.labels_of(docker_client, tag))


@pytest.fixture(scope="module")
def bookworm_stack(docker_client, stack_image) -> str:
    """``skiff/stack:bookworm`` of this recipe, bootstrapped as a user that is not root when missing."""
    tag = "skiff/stack:bookworm"
    if _current(docker_client, tag):
        return tag
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to start a process as nobody) and setpriv")
    bootstraps = stack_build.labels_of(docker_client, "skiff/stack-base:bookworm") is None
    root = Path(tempfile.mkdtemp(prefix="skiff-nonroot-"))
    os.chown(root, 65534, 65534)
    try:
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                f"--regid={grp.getgrnam('docker').gr_gid}",
                "--clear-groups",
                sys.executable,
                "-c",
                ENSURE,
                str(root),
                tag,
            ],
            env={"PATH": os.environ["PATH"], "HOME": str(root), "SKIFF_ROOT": str(root)},
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=root,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "uid=65534" in proc.stdout
    if bootstraps:  # no rootfs yet: debootstrap ran in an unprivileged container, not on the host
        assert "Bootstrapping Debian bookworm" in proc.stdout and "in a container of skiff/stack" in proc.stdout
    assert f"labels bookworm {stack_build.STACK_VERSION} 3.11." in proc.stdout
    return tag


def _push_version_app(tmp_path, sshd, docker_cleanup, prefix: str, files: dict[str, str]):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name(prefix))
    files = {"requirements.txt": "", "app.py": APP_PY, "Procfile": "web: python3 app.py\n", **files}
    repo = init_repo(tmp_path / app, files)
    return app, git_push(repo, app, sshd, timeout=1800)


def test_runtime_txt_python_3_11_patch_runs_on_bookworm(
    bookworm_stack, docker_cleanup, private_nginx, sshd, tmp_path, docker_client
):
    app, pushed = _push_version_app(tmp_path, sshd, docker_cleanup, "py311", {"runtime.txt": "python-3.11.9\n"})
    assert pushed.exit_code == 0, pushed.output
    python = docker_client.images.get(bookworm_stack).labels["skiff.stack.python"]
    assert f"Using Python {python} on stack skiff/stack:bookworm (runtime.txt 3.11.9)" in pushed.output
    if python != "3.11.9":  # Debian's 3.11 is 3.11.2: the same minor, with a warning
        assert f"no stack has Python 3.11.9; using {python} (same minor version)" in pushed.output
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert answer.status == 200 and answer.body == f"python {python}", answer.body


def test_python_version_3_14_builds_the_forky_stack_on_push_once_and_runs_3_14(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path, docker_client
):
    tag = "skiff/stack:forky"
    was_current = _current(docker_client, tag)
    app, pushed = _push_version_app(tmp_path, sshd, docker_cleanup, "py314", {".python-version": "3.14\n"})
    print(pushed.output)  # the build's progress lines, for the log (pytest -s)
    assert pushed.exit_code == 0, pushed.output
    if not was_current:  # the first run on this machine: the push built it, with progress lines
        assert "No stack image skiff/stack:forky yet (Debian forky, Python 3.14): building it now" in pushed.output
        assert "Bootstrapping Debian forky" in pushed.output and "Stack image skiff/stack:forky ready" in pushed.output
    else:
        assert "Bootstrapping" not in pushed.output
    labels = docker_client.images.get(tag).labels
    assert labels["skiff.stack.version"] == stack_build.STACK_VERSION
    assert labels["skiff.stack.python"].startswith("3.14.")
    assert f"Using Python {labels['skiff.stack.python']} on stack {tag} (.python-version 3.14)" in pushed.output
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert answer.status == 200 and answer.body == f"python {labels['skiff.stack.python']}", answer.body


def test_stack_update_applies_debians_security_updates_as_a_new_labelled_image(bookworm_stack, docker_client):
    """``update_stack`` on a small stand-in of the bookworm stack (its minbase rootfs, labelled as a stack)."""
    import io

    from skiff.output import Output

    tag = f"skiff/stack-test:update-{os.getpid()}"
    dockerfile = (
        "FROM skiff/stack-base:bookworm\n"
        f"LABEL skiff.stack=bookworm skiff.stack.version={stack_build.STACK_VERSION} skiff.stack.user=1000:1000\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    before = docker_client.images.get(tag).id
    try:
        out = Output()
        labels = stack_build.update_stack(docker_client, "bookworm", tag, out)
        image = docker_client.images.get(tag)
        assert image.id != before and labels["skiff.stack.updated"].endswith("Z")
        assert labels["skiff.stack.python"].startswith("3.11.") and labels["skiff.stack.version"] == "1"
        sources = docker_client.containers.run(
            tag, ["cat", "/etc/apt/sources.list.d/skiff-security.list"], remove=True
        ).decode()
        assert "bookworm-security main" in sources and "bookworm-updates main" in sources
    finally:
        docker_client.images.remove(tag, force=True)
