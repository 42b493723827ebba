"""End to end: a static site with dotfiles, ``git push``ed over a real sshd, built by the
static pack, run by the docker scheduler and asked through a private nginx (127.0.0.1)
for its dotfiles under every spelling: none of them answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

STATIC = Path(__file__).resolve().parents[4] / "tests" / "apps" / "static"
GLOBAL = "skiff.test"
SECRETS = {"public/.env": "SECRET=env\n", "public/sub/.secret": "SECRET=sub\n", "public/.htpasswd": "SECRET=pw\n"}
REFUSED = [
    "/.env",
    "/%2Eenv",
    "/%2e%65nv",
    "/%2F.env",
    "/%2f.env",
    "//.env",
    "/sub/../.env",
    "/%252eenv",
    "/%25252eenv",
    "/sub/.secret",
    "/sub/%2e%73ecret",
    "/sub%2F.secret",
    "/sub%5C.secret",
    "/.htpasswd",
    "/%2Ehtpasswd",
    "/.env%00",
    "/.static",
    "/%2e%2e/.static",
    "/sub/%2E%2E/%2E%2E/.static",
]


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def site_files() -> dict[str, str]:
    files = {str(p.relative_to(STATIC)): p.read_text() for p in STATIC.rglob("*") if p.is_file()}
    return {**files, **SECRETS, "public/sub/page.html": "a page\n"}


def test_static_site_hides_dotfiles_through_nginx(stack_image, docker_cleanup, private_nginx, sshd, tmp_path):
    app = docker_cleanup.app(new_app_name("static"))
    host = f"{app}.{GLOBAL}"
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    pushed = git_push(init_repo(tmp_path / app, site_files()), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    assert "Static site detected" in pushed.output

    home = private_nginx.request(host=host)
    assert home.status == 200 and "hello from a static site" in home.body
    for path in ["/sub/page.html", "/sub/%70age.html", "//sub/page.html"]:
        answer = private_nginx.request(path, host=host)
        assert (answer.status, answer.body) == (200, "a page\n"), path
    for path in REFUSED:
        answer = private_nginx.request(path, host=host)
        # 404 from the app's server; nginx itself answers 400 to a path that climbs above /
        assert answer.status in (400, 404) and "SECRET" not in answer.body, (path, answer.status)
    assert any(private_nginx.request(path, host=host).status == 404 for path in REFUSED)
