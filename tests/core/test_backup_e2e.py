"""End to end: a whole-server backup restored onto an emptied SKIFF_ROOT brings an app back.

The app (plugins/contrib/redis/tests/counter: it counts visits with INCR) is pushed with git
over a real sshd, gets config, a real redis and a real postgres (with rows) linked and a
self-signed certificate (certs:add), and serves through a private nginx. ``skiff state:backup``
(the real CLI, a root shell) writes the archive; then everything the server held goes:
SKIFF_ROOT's contents, the authorized_keys file, the app's containers, images and network, the
service containers and their networks (only this test's own docker objects). ``skiff
state:restore`` brings the keys, the repository, the config, the certificate, the redis data
and the postgres rows (with its TLS certificate) back, rebuilds the app from its repository
(its image is gone) and serves it again through nginx, over HTTPS with the same certificate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from skiff.executable import skiff_executable
from skiff.testing.docker import new_app_name, remove_app_network
from skiff.testing.nginx import self_signed
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "plugins" / "contrib" / "redis" / "tests" / "counter"
GLOBAL = "skiff.test"


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return {**private_nginx.env}


def skiff_cli(*argv: str, env: dict[str, str], code: int = 0) -> str:
    """The real ``skiff ARGV`` in a root shell on the server; its output."""
    proc = subprocess.run([skiff_executable(), *argv], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == code, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def remove_own(docker_client, app: str, services: dict[str, str]) -> list[str]:
    """Take away this test's app and services from the engine: containers, images, networks."""
    gone = []
    for container in docker_client.containers.list(all=True, filters={"label": f"skiff.app={app}"}):
        container.remove(force=True)
        gone.append(container.name)
    for kind, name in services.items():
        service = docker_client.containers.get(f"skiff.{kind}.{name}")
        service.remove(force=True)
        gone.append(service.name)
        for network in docker_client.networks.list(names=[f"skiff-service-{kind}-{name}"]):
            network.remove()
    images = docker_client.images.list(filters={"label": f"skiff.app={app}"})
    for image in sorted(images, key=lambda i: i.attrs.get("Created", ""), reverse=True):
        docker_client.images.remove(image.id, force=True)
    remove_app_network(docker_client, app)
    return gone


def rows(docker_client, name: str, sql: str = "SELECT body FROM notes ORDER BY id") -> list[str]:
    """psql in the postgres service's own container (its local socket)."""
    code, out = docker_client.containers.get(f"skiff.postgres.{name}").exec_run(
        ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", name.replace("-", "_"), "-c", sql], user="postgres"
    )
    assert code == 0, out
    return out.decode().split()


def test_a_whole_server_backup_restored_onto_an_empty_root_brings_the_app_back(
    stack_image, docker_cleanup, private_nginx, sshd, skiff_root, docker_client, tmp_path
):
    env = {**os.environ, **private_nginx.env, "SKIFF_ROOT": str(skiff_root)}
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("bak"))
    service, db = "b" + uuid.uuid4().hex[:8], "p" + uuid.uuid4().hex[:8]
    docker_cleanup.label("skiff.root", str(skiff_root))
    host = f"{app}.{GLOBAL}"
    files = {p.name: p.read_text() for p in COUNTER.iterdir() if p.is_file()}
    pushed = git_push(init_repo(tmp_path / app, files), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    for argv in (
        ["config:set", app, "GREETING=meow"],
        ["redis:create", service],
        ["redis:link", service, app],
        ["postgres:create", db],
        ["postgres:link", db, app, "--no-restart"],
    ):
        result = sshd.ssh(argv, timeout=600)
        assert result.exit_code == 0, (argv, result.output)
    rows(docker_client, db, "CREATE TABLE notes (id serial PRIMARY KEY, body text)")
    rows(docker_client, db, "INSERT INTO notes (body) VALUES ('meow'), ('purr')")
    pg_cert = (skiff_root / "services" / "postgres" / db / "tls" / "server.crt").read_bytes()
    assert [private_nginx.request("/visit", host=host).body for _ in range(3)][-1] == "visits: 3\n"
    crt, key = self_signed(tmp_path, host)
    skiff_cli("certs:add", app, str(crt), str(key), env=env)
    assert private_nginx.request("/", host=host, https=True, cafile=str(crt)).body == "visits so far: 3\n"

    archive = tmp_path / "server.tar.gz"
    said = skiff_cli("state:backup", str(archive), env=env)
    assert f"redis:{service}" in said and f"postgres:{db}" in said and "git:repos" in said and "nginx:certs" in said
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert f"root/repos/{app}.git/HEAD" in names and f"root/nginx/certs/{app}/server.key" in names
    assert f"dumps/redis:{service}" in names and f"dumps/postgres:{db}" in names and names[-1] == "manifest.json"

    # the server loses everything: its root, its keys, the app's and the service's docker objects
    authorized_keys = Path(env["SKIFF_AUTHORIZED_KEYS"])
    authorized_keys.unlink()
    gone = remove_own(docker_client, app, {"redis": service, "postgres": db})
    assert f"{app}.web.1" in gone and f"skiff.redis.{service}" in gone and f"skiff.postgres.{db}" in gone
    for entry in skiff_root.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    assert private_nginx.request("/", host=host).status != 200
    assert sshd.ssh(["apps:list"]).exit_code != 0  # no key: sshd refuses

    restored = skiff_cli("state:restore", str(archive), env=env)
    assert "rebuilding" in restored  # the release image was gone: built again from the repository
    assert private_nginx.request("/visit", host=host).status == 301  # to HTTPS: the certificate is back
    answer = private_nginx.request("/visit", host=host, https=True, cafile=str(crt))  # the same certificate
    assert answer.status == 200 and answer.body == "visits: 4\n"  # the redis data came back
    config = sshd.ssh(["config:get", app, "GREETING"])  # the key came back too
    assert config.exit_code == 0 and config.stdout.strip() == "meow"
    assert sshd.ssh(["redis:links", service]).stdout.split() == [app, "REDIS_URL"]
    assert rows(docker_client, db) == ["meow", "purr"]  # the postgres rows came back
    assert (skiff_root / "services" / "postgres" / db / "tls" / "server.crt").read_bytes() == pg_cert
    assert sshd.ssh(["postgres:links", db]).stdout.split() == [app, "DATABASE_URL"]

    # a second restore onto the root that now holds the app is refused, and changes nothing
    again = skiff_cli("state:restore", str(archive), env=env, code=1)
    assert "is not empty" in again and again.count("!") == 1
    assert private_nginx.request("/visit", host=host, https=True, cafile=str(crt)).body == "visits: 5\n"


# -- onto a fresh machine: an empty SKIFF_ROOT and an empty Docker data root ----------------------

#: The app of the fresh-machine test: its config and its link, the standard library only.
FRESH_APP = {
    ".null": "",  # the null pack: the stack's own python3, nothing to install
    "Procfile": "web: python3 app.py\n",
    "app.py": """import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        database = urlsplit(os.environ.get("DATABASE_URL", "")).hostname or "none"
        data = f"{os.environ.get('GREETING', 'no greeting')} db={database}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
""",
}

#: What the test loads from this machine's engine into the empty one, to save the stack build
#: (``skiff stack:build``, minutes): the stack's build and run images only, never an app's or a
#: service's image. A real new server builds them itself (its first deploy, or stack:build).
STACK_IMAGES = ("skiff/stack:trixie", "skiff/stack-run:trixie")


@pytest.fixture
def fresh_engine():
    """An empty dockerd of its own (skiff.testing.engine): the new server's engine."""
    from skiff.testing.engine import start_private_engine

    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    engine = start_private_engine()
    try:
        yield engine
    finally:
        engine.stop()


def load_stack_images(docker_client, engine) -> None:
    """``docker save | docker -H ENGINE load`` of :data:`STACK_IMAGES` (their ids stay the same)."""
    for image in STACK_IMAGES:
        docker_client.images.get(image)  # present here: the push above used both
    save = subprocess.Popen(["docker", "save", *STACK_IMAGES], stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "-H", engine.host, "load"], stdin=save.stdout, capture_output=True, text=True)
    save.stdout.close()
    assert save.wait(timeout=600) == 0 and load.returncode == 0, load.stderr


def test_a_whole_server_backup_restores_onto_an_empty_root_and_an_empty_docker_engine(
    stack_image, docker_cleanup, private_nginx, sshd, skiff_root, docker_client, fresh_engine, tmp_path
):
    import docker

    env = {**os.environ, **private_nginx.env, "SKIFF_ROOT": str(skiff_root)}
    assert sshd.ssh(["domains:set-global", GLOBAL]).exit_code == 0
    app = docker_cleanup.app(new_app_name("fresh"))
    db = "p" + uuid.uuid4().hex[:8]
    docker_cleanup.label("skiff.root", str(skiff_root))
    host = f"{app}.{GLOBAL}"
    pushed = git_push(init_repo(tmp_path / app, FRESH_APP), app, sshd)
    assert pushed.exit_code == 0, pushed.output
    for argv in (["config:set", app, "GREETING=meow"], ["postgres:create", db], ["postgres:link", db, app]):
        result = sshd.ssh(argv, timeout=600)
        assert result.exit_code == 0, (argv, result.output)
    rows(docker_client, db, "CREATE TABLE notes (id serial PRIMARY KEY, body text)")
    rows(docker_client, db, "INSERT INTO notes (body) VALUES ('meow'), ('purr')")
    service_host = f"skiff-postgres-{db}"  # the link's DATABASE_URL host
    assert private_nginx.request("/", host=host).body == f"meow db={service_host}\n"
    crt, key = self_signed(tmp_path, host)
    skiff_cli("certs:add", app, str(crt), str(key), env=env)
    assert private_nginx.request("/", host=host, https=True, cafile=str(crt)).body == f"meow db={service_host}\n"

    archive = tmp_path / "server.tar.gz"
    said = skiff_cli("state:backup", str(archive), env=env)
    assert f"postgres:{db}" in said and "git:repos" in said and "nginx:certs" in said

    # the old server is gone: its root, its keys, and (on this machine's engine) its app and service
    Path(env["SKIFF_AUTHORIZED_KEYS"]).unlink()
    remove_own(docker_client, app, {"postgres": db})
    for entry in skiff_root.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    assert private_nginx.request("/", host=host).status != 200

    # the new server: the same SKIFF_ROOT path, empty, and an engine holding only the stack images
    load_stack_images(docker_client, fresh_engine)
    new = docker.DockerClient(base_url=fresh_engine.host, timeout=300)
    try:
        held = sorted(t for i in new.images.list() for t in i.tags)
        assert held == sorted(STACK_IMAGES), held  # no app image, no postgres image
        assert new.containers.list(all=True) == []
        restored = skiff_cli("state:restore", str(archive), env={**env, "DOCKER_HOST": fresh_engine.host})
        assert "Building skiff/postgres:trixie" in restored  # the service image, from Debian's packages
        assert "rebuilding" in restored  # the app, from its restored repository
        # the answer comes from the new engine: the old one holds nothing of the app any more
        assert docker_client.containers.list(all=True, filters={"label": f"skiff.app={app}"}) == []
        assert [c.name for c in new.containers.list(filters={"label": f"skiff.app={app}"})] == [f"{app}.web.1"]
        assert private_nginx.request("/", host=host).status == 301  # to HTTPS: the certificate is back
        answer = private_nginx.request("/", host=host, https=True, cafile=str(crt))  # the same certificate
        assert answer.status == 200 and answer.body == f"meow db={service_host}\n"  # config and link
        assert rows(new, db) == ["meow", "purr"]  # the postgres rows, in the new engine's postgres
        config = sshd.ssh(["config:get", app, "GREETING"])  # the key came back too
        assert config.exit_code == 0 and config.stdout.strip() == "meow"
        assert sshd.ssh(["postgres:links", db]).stdout.split() == [app, "DATABASE_URL"]
    finally:
        new.close()
