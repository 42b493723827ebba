"""End to end: ``git push`` of examples/catmeow over a real sshd, built by the python
buildpack, run by the docker scheduler, served through a private nginx by Host header.

One app, one push, then everything through nginx: a second domain, a refused
domain, zero failed requests across 5 redeploys under a steady keep-alive
load, and TLS with an HTTP redirect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.nginx import HostLoad
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catmeow"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def example_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}


def test_push_then_domains_zero_drop_redeploys_and_tls(stack_image, docker_cleanup, private_nginx, sshd, tmp_path):
    nginx = private_nginx
    app = docker_cleanup.app(new_app_name("cat"))
    host = f"{app}.{GLOBAL}"
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0

    repo = init_repo(tmp_path / "catmeow", example_files())
    pushed = git_push(repo, app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "remote: =====> Application deployed:" in pushed.output
    assert f"remote:        http://{host}:{nginx.http_port}" in pushed.output
    answer = nginx.request(host=host)
    assert (answer.status, answer.body) == (200, "Cat dreams meow..")
    assert nginx.request(host=f"other.{GLOBAL}").status == 404

    # a second name; both answer
    assert sshd.ssh(["domains:add", app, "cats.example.com"]).exit_code == 0
    assert nginx.request(host="cats.example.com").body == "Cat dreams meow.."
    assert nginx.request(host=host).body == "Cat dreams meow.."

    # a name that would inject config is refused before it reaches a file
    conf = Path(sshd.skiff_env["SKIFF_ROOT"], "nginx", "conf.d", f"app-{app}.conf")
    before = conf.read_text()
    refused = sshd.ssh(["domains:add", app, "x;} server { listen 81; }"])
    assert refused.exit_code != 0 and "!     invalid domain" in refused.stderr
    assert conf.read_text() == before

    # zero failed requests through nginx across 5 redeploys under a steady bounded load
    with HostLoad(nginx.http_port, host, threads=4, limit=240) as load:
        for n in range(1, 6):
            result = sshd.ssh(["config:set", app, f"GREETING=meow {n}"], timeout=180)
            assert result.exit_code == 0, result.output
    assert load.failures == [], f"{len(load.failures)} failed of {load.ok}: {load.failures[:5]}"
    assert load.ok > 100 and load.bodies.get("meow 5"), load.bodies
    assert nginx.request(host=host).body == "meow 5"

    # TLS: a self-signed cert; HTTPS answers with it, HTTP redirects
    generated = sshd.ssh(["certs:generate", app, "secure.example.com"])
    assert generated.exit_code == 0, generated.output
    pem = tmp_path / "server.crt"
    shown = sshd.ssh(["certs:show", app])
    pem.write_text(shown.stdout)
    tls = nginx.request(host="secure.example.com", https=True, cafile=str(pem))
    assert (tls.status, tls.body) == (200, "meow 5")
    redirect = nginx.request("/?a=1", host=host)
    assert redirect.status == 301
    assert redirect.headers["location"] == f"https://{host}:{nginx.https_port}/?a=1"
