"""End to end: app isolation and shared networks on the real engine.

Three apps (the null pack running a small stdlib server) are ``git push``ed over a real sshd and
answer through a private nginx. ``api`` and ``front`` are put on a shared network (``api`` by
``network:set`` and a redeploy, ``front`` live by ``network:rebuild``) and talk to each other as
``api.web`` / ``front.web``; ``loner`` is on no shared network and reaches neither, by name or
by address. A postgres service linked to ``api`` is reachable from ``api`` only: not from
``front`` (on a network with ``api``, but not linked) nor from ``loner``; unlinked, not even
from ``api``. nginx answers for all three throughout.
"""

from __future__ import annotations

import json
import secrets

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import git_push, init_repo

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"
SERVER = r"""
import json, os, socket, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP = os.environ.get("APP_NAME", "?")


def probe(host, port):
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return "unresolved"
    try:
        with socket.create_connection((address, int(port)), timeout=3):
            return "open"
    except OSError as exc:
        return "closed: " + type(exc).__name__


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/probe":
            body = probe(query["host"], query["port"])
        elif url.path == "/fetch":
            try:
                body = urllib.request.urlopen(query["url"], timeout=5).read().decode()
            except Exception as exc:
                body = "failed: " + type(exc).__name__
        else:
            body = "hello from " + APP
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def sshd_skiff_env(private_nginx):
    return dict(private_nginx.env)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def cleanup_networks(docker_client, skiff_root):
    """What the test leaves on the engine if it fails halfway: networks and the service container."""
    names: list[str] = []
    yield names
    for c in docker_client.containers.list(all=True, filters={"label": f"skiff.root={skiff_root}"}):
        c.remove(force=True)
    for name in names:
        for net in docker_client.networks.list(names=[name]):
            if net.name != name:
                continue
            net.reload()
            for container in net.containers:
                try:
                    net.disconnect(container, force=True)
                except Exception:
                    pass
            try:
                net.remove()
            except Exception:
                pass


def test_apps_are_isolated_unless_they_share_a_network_and_services_only_reach_linked_apps(
    stack_image, docker_client, docker_cleanup, private_nginx, sshd, tmp_path, cleanup_networks
):
    ok(sshd.ssh(["domains:set-global", GLOBAL]))
    api, front, loner = (docker_cleanup.app(new_app_name(p)) for p in ("api", "front", "loner"))
    shared, db = "shared-" + secrets.token_hex(3), "db" + secrets.token_hex(4)
    cleanup_networks += [shared, *(f"skiff-app-{a}" for a in (api, front, loner)), f"skiff-service-postgres-{db}"]
    for app in (api, front, loner):
        files = {".null": "", "Procfile": "web: python3 server.py\n", "server.py": SERVER}
        ok(sshd.ssh(["apps:create", app]))
        ok(sshd.ssh(["config:set", "--no-restart", app, f"APP_NAME={app}"]))
        ok(git_push(init_repo(tmp_path / app, files), app, sshd))

    def get(app: str, path: str = "/") -> str:
        answer = private_nginx.request(path, host=f"{app}.{GLOBAL}")
        assert answer.status == 200, answer
        return answer.body

    def address(app: str) -> list[str]:
        container = docker_client.containers.get(f"{app}.web.1")
        return [n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values()]

    def unreachable(source: str, target: str) -> None:
        assert get(source, f"/probe?host={target}.web&port=5000") == "unresolved"
        for ip in address(target):
            assert get(source, f"/probe?host={ip}&port=5000").startswith("closed"), (source, target, ip)

    # isolated by default: every app on its own network only, reaching no other by name or address
    for app in (api, front, loner):
        assert get(app) == f"hello from {app}"
        networks = docker_client.containers.get(f"{app}.web.1").attrs["NetworkSettings"]["Networks"]
        assert set(networks) == {f"skiff-app-{app}"} and f"{app}.web" in networks[f"skiff-app-{app}"]["Aliases"]
    unreachable(front, api)
    unreachable(api, front)

    # a shared network: api joins it at its next deploy, front right away (network:rebuild)
    ok(sshd.ssh(["network:create", shared]))
    ok(sshd.ssh(["network:set", api, "attach-post-create", shared]))
    ok(sshd.ssh(["ps:restart", api]))
    ok(sshd.ssh(["network:set", front, "attach-post-create", shared]))
    rebuilt = ok(sshd.ssh(["network:rebuild", front]))
    assert f"{front}.web.1: +{shared}" in rebuilt.output
    assert get(front, f"/fetch?url=http://{api}.web:5000/") == f"hello from {api}"
    assert get(api, f"/fetch?url=http://{front}.web:5000/") == f"hello from {front}"
    info = json.loads(ok(sshd.ssh(["network:info", shared, "--format", "json"])).stdout)
    assert info["apps"] == {api: ["attach-post-create"], front: ["attach-post-create"]}
    assert sorted(info["containers"]) == [f"{api}.web.1", f"{front}.web.1"]
    unreachable(loner, api)
    unreachable(loner, front)
    assert get(loner, f"/fetch?url=http://{api}.web:5000/") == "failed: URLError"

    # a service: reachable from the app it is linked to, from nothing else
    ok(sshd.ssh(["postgres:create", db]))
    ok(sshd.ssh(["postgres:link", db, api]))
    host = f"skiff-postgres-{db}"
    assert get(api, f"/probe?host={host}&port=5432") == "open"
    service = docker_client.containers.get(f"skiff.postgres.{db}")
    service_ips = [n["IPAddress"] for n in service.attrs["NetworkSettings"]["Networks"].values()]
    assert set(service.attrs["NetworkSettings"]["Networks"]) == {f"skiff-service-postgres-{db}", f"skiff-app-{api}"}
    for app in (front, loner):
        assert get(app, f"/probe?host={host}&port=5432") == "unresolved"
        for ip in service_ips:
            assert get(app, f"/probe?host={ip}&port=5432").startswith("closed"), (app, ip)
    ok(sshd.ssh(["postgres:unlink", db, api]))
    assert get(api, f"/probe?host={host}&port=5432") == "unresolved"

    # the proxy answers for all of them (it reaches web containers on published loopback ports)
    for app in (api, front, loner):
        assert get(app) == f"hello from {app}"

    # destroying an app removes its own network; a destroyed shared network detaches its apps
    ok(sshd.ssh(["apps:destroy", loner, "--force"]))
    assert not [n for n in docker_client.networks.list(names=[f"skiff-app-{loner}"]) if n.name.endswith(loner)]
    refused = sshd.ssh(["network:destroy", shared])
    assert refused.exit_code == 1 and "attached to" in refused.stderr
    ok(sshd.ssh(["network:destroy", shared, "--force"]))
    assert not [n for n in docker_client.networks.list(names=[shared]) if n.name == shared]
    assert get(api) == f"hello from {api}"
    ok(sshd.ssh(["postgres:destroy", db, "--force"]))
    for app in (api, front):
        ok(sshd.ssh(["apps:destroy", app, "--force"]))
