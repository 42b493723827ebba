"""End to end with every real part: ``git push`` of examples/catmeow over a private sshd, built
by the python buildpack, run by the docker scheduler, behind the private nginx; then
``letsencrypt:enable`` over SSH against Pebble, whose HTTP-01 validations nginx answers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catmeow"


@pytest.fixture
def skiff_root(served_skiff_root):
    """nginx's workers read the challenge files under it, as on an installed server."""
    return served_skiff_root


@pytest.fixture
def sshd_skiff_env(private_nginx, pebble):
    """The server-side skiff loads every plugin, drives the private nginx and trusts Pebble's listener."""
    return {**private_nginx.env, "REQUESTS_CA_BUNDLE": str(pebble.listener_ca)}


def test_pushed_app_gets_a_certificate_from_pebble_over_ssh(
    stack_image, docker_cleanup, private_nginx, pebble, test_dns, sshd, tmp_path
):
    app = docker_cleanup.app(new_app_name("le"))
    host = f"{app}.skiff.test"
    test_dns.resolvable.add(host)
    repo = init_repo(tmp_path / "catmeow", {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()})
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert sshd.ssh(["domains:add", app, host]).exit_code == 0
    assert private_nginx.request(host=host).body == "Cat dreams meow.."

    for setting in (["email", "ops@example.com"], ["server", pebble.directory]):
        assert sshd.ssh(["letsencrypt:set", "--global", *setting]).exit_code == 0
    enabled = sshd.ssh(["letsencrypt:enable", app], timeout=180)
    assert enabled.exit_code == 0, enabled.output
    tls = private_nginx.request(host=host, https=True, cafile=str(pebble.root))  # Pebble's root only
    assert (tls.status, tls.body) == (200, "Cat dreams meow..")
    assert private_nginx.request(host=host).status == 301
    log_file = Path(sshd.skiff_env["SKIFF_ROOT"], "nginx", "logs", f"{app}-access.log")
    deadline = time.monotonic() + 5  # nginx buffers the log: a line reaches the file within a second
    while "GET /.well-known/acme-challenge/" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = log_file.read_text()
    assert "GET /.well-known/acme-challenge/" in log and "LetsEncrypt-Pebble-VA" in log
    assert sshd.ssh(["letsencrypt:active", app]).stdout == "true\n"

    # a redeploy keeps the certificate and the challenge location
    assert sshd.ssh(["config:set", app, "GREETING=secure meow"], timeout=180).exit_code == 0
    again = private_nginx.request(host=host, https=True, cafile=str(pebble.root))
    assert (again.status, again.body) == (200, "secure meow")
    renewed = sshd.ssh(["letsencrypt:auto-renew", app, "--force"], timeout=180)
    assert renewed.exit_code == 0, renewed.output
    assert private_nginx.request(host=host, https=True, cafile=str(pebble.root)).body == "secure meow"
