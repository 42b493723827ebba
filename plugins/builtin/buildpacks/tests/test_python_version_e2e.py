"""End to end: a Python app pinned to a minor no stack has (``runtime.txt`` ``python-3.12.0``)
is refused in one line and changes nothing; after ``buildpacks:set APP python-accept-newer true``
the same push builds on the nearest newer stack Python, warns, and serves ``sys.version``
through a private nginx (127.0.0.1).
"""

from __future__ import annotations

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

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


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


def test_a_minor_no_stack_has_is_refused_then_accepted_newer(
    stack_image, docker_cleanup, private_nginx, sshd, tmp_path
):
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("py312"))
    files = {
        "runtime.txt": "python-3.12.0\n",
        "requirements.txt": "",
        "app.py": APP_PY,
        "Procfile": "web: python3 app.py\n",
    }
    repo = init_repo(tmp_path / app, files)
    refused = git_push(repo, app, sshd)
    assert refused.exit_code != 0
    assert "runtime.txt requests Python 3.12.0, but no stack has it; available: 3.13" in refused.output
    assert "python-accept-newer" in refused.output
    assert private_nginx.request(host=f"{app}.{GLOBAL}").status != 200  # nothing was deployed

    assert sshd.ssh(["buildpacks:set", app, "python-accept-newer", "true"]).exit_code == 0
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "nearest newer" in pushed.output
    answer = private_nginx.request(host=f"{app}.{GLOBAL}")
    assert answer.status == 200 and answer.body.startswith("python 3.13."), answer.body
