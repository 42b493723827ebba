"""The plugin against a private nginx, with fake HTTP backends as the app's containers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_nginx.plugin as nginx_plugin
from skiff import contracts, hookimpl, lifecycle
from skiff.deploy import Deploy
from skiff.errors import DeployError, SkiffError
from skiff.testing import DirReceiver, StubBuilder, dir_source
from skiff.testing.nginx import get
from skiff_nginx import certs
from skiff_nginx.settings import load

GLOBAL = "skiff.test"


class FakeScheduler:
    """Runs nothing: each deploy's upstream is ``self.upstream`` (a fake backend)."""

    def __init__(self) -> None:
        self.upstream: str | None = None
        self.seen_at_retire: list[str] = []
        self.probe = None
        self.fail_after_switch = False

    @hookimpl(trylast=True)
    def skiff_deploy(self, deploy: Deploy) -> bool:
        deploy.meta["upstreams"] = [self.upstream] if self.upstream else []
        deploy.meta["container_port"] = 5000
        return True

    @hookimpl(trylast=True)
    def skiff_post_deploy(self, deploy: Deploy) -> None:
        if self.probe:
            self.seen_at_retire.append(self.probe())
        if self.fail_after_switch:
            raise RuntimeError("post-deploy script failed")


@pytest.fixture
def skiff_root(served_skiff_root):
    """nginx's workers read the ACME challenge files under it."""
    return served_skiff_root


@pytest.fixture
def env(skiff, private_nginx, http_backend, tmp_path):
    scheduler = FakeScheduler()
    h = skiff(("apps", apps_plugin), ("nginx", nginx_plugin), DirReceiver(), StubBuilder(), scheduler)
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_text("web: true\n")

    def deploy(app: str, text: str) -> None:
        scheduler.upstream = http_backend(text)
        if not h.state.app_exists(app):
            h.create_app(app)
        lifecycle.deploy(h.context, app, dir_source(src))

    h.scheduler, h.deploy, h.nginx = scheduler, deploy, private_nginx
    return h


def body(h, host: str, **kw) -> str:
    r = h.nginx.request(host=host, **kw)
    return f"{r.status} {r.body}"


def test_deploy_proxies_by_host_and_prints_urls(env, capsys):
    h = env
    assert h.invoke("domains:set-global", GLOBAL).exit_code == 0
    h.deploy("catmeow", "Cat dreams meow..")
    out = capsys.readouterr().out
    assert "=====> Application deployed:" in out
    assert f"http://catmeow.{GLOBAL}:{h.nginx.http_port}" in out
    assert body(h, f"catmeow.{GLOBAL}") == "200 Cat dreams meow.."
    assert h.nginx.request(host="other.example").status == 404
    headers = h.nginx.request("/headers", host=f"catmeow.{GLOBAL}").body
    for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Request-Start"):
        assert name in headers
    r = h.invoke("domains:add", "catmeow", "cats.example.com")
    assert r.exit_code == 0, r.output
    assert body(h, "cats.example.com") == "200 Cat dreams meow.."
    assert body(h, f"catmeow.{GLOBAL}") == "200 Cat dreams meow.."
    h.create_app("dogwoof")
    r = h.invoke("domains:add", "dogwoof", "cats.example.com")
    assert r.exit_code == 1 and "already belongs to app catmeow" in r.stderr
    assert h.invoke("domains:remove", "catmeow", "cats.example.com").exit_code == 0
    assert h.nginx.request(host="cats.example.com").status == 404


def test_switch_happens_before_the_scheduler_retires(env):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "v1")
    h.scheduler.probe = lambda: h.nginx.request(host=f"catmeow.{GLOBAL}").body
    h.deploy("catmeow", "v2")
    assert h.scheduler.seen_at_retire == ["v2"]


def test_failure_after_the_switch_points_nginx_back(env):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "v1")
    h.scheduler.fail_after_switch = True
    with pytest.raises(DeployError):
        h.deploy("catmeow", "v2")
    assert body(h, f"catmeow.{GLOBAL}") == "200 v1"


@pytest.mark.parametrize("bad", ["x;} server { listen 81; }", "a b"])
def test_bad_domains_are_refused_and_nothing_is_written(env, bad):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "v1")
    conf = Path(h.root, "nginx/conf.d/app-catmeow.conf")
    before = conf.read_text()
    for command in (("domains:add", "catmeow", bad), ("domains:set-global", bad), ("certs:generate", "catmeow", bad)):
        r = h.invoke(*command)
        assert r.exit_code == 1 and r.stderr.startswith("!     invalid domain"), r.output
    assert conf.read_text() == before
    assert h.invoke("domains:report", "catmeow", "--format", "json").stdout.count("listen") == 0


def test_broken_custom_config_leaves_every_app_serving(env):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "cats")
    h.deploy("dogwoof", "dogs")
    conf = Path(h.root, "nginx/conf.d/app-dogwoof.conf")
    before = conf.read_text()
    r = h.invoke("nginx:custom-config", "dogwoof", input="this_is_not_a_directive on;\n")
    assert r.exit_code == 1 and "nginx rejected" in r.stderr and "unknown directive" in r.stderr
    assert conf.read_text() == before
    assert body(h, f"catmeow.{GLOBAL}") == "200 cats"
    assert body(h, f"dogwoof.{GLOBAL}") == "200 dogs"
    # a later deploy of the other app still works, and the good custom config is kept
    r = h.invoke("nginx:custom-config", "dogwoof", input='add_header X-Dog "woof";\n')
    assert r.exit_code == 0, r.output
    h.deploy("catmeow", "cats2")
    assert body(h, f"catmeow.{GLOBAL}") == "200 cats2"
    assert h.nginx.request(host=f"dogwoof.{GLOBAL}").headers.get("x-dog") == "woof"


def test_certs_generate_serves_https_and_redirects_http(env, tmp_path):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "secure cats")
    r = h.invoke("certs:generate", "catmeow", "secure.example.com")
    assert r.exit_code == 0, r.output
    crt = str(Path(h.root, "nginx/certs/catmeow/server.crt"))
    tls = h.nginx.request(host="secure.example.com", https=True, cafile=crt)
    assert (tls.status, tls.body) == (200, "secure cats")
    plain = h.nginx.request("/x?y=1", host="secure.example.com")
    assert plain.status == 301
    assert plain.headers["location"] == f"https://secure.example.com:{h.nginx.https_port}/x?y=1"
    report = h.invoke("certs:report", "catmeow", "--format", "json").stdout
    assert "secure.example.com" in report and "expires" in report
    assert "https://secure.example.com" in h.invoke("proxy:report", "catmeow").stdout
    # HTTP/2 is offered through ALPN
    proc = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{h.nginx.https_port}",
            "-alpn",
            "h2",
            "-servername",
            "secure.example.com",
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    assert b"ALPN protocol: h2" in proc.stdout
    assert h.invoke("certs:remove", "catmeow").exit_code == 0
    assert h.nginx.request(host="secure.example.com").body == "secure cats"


def test_certs_add_checks_the_key(env, tmp_path):
    h = env
    h.deploy("catmeow", "cats")
    keys = []
    for name in ("a", "b"):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={name}.example.com",
                "-keyout",
                str(tmp_path / f"{name}.key"),
                "-out",
                str(tmp_path / f"{name}.crt"),
            ],
            check=True,
            capture_output=True,
        )
        keys.append(name)
    r = h.invoke("certs:add", "catmeow", str(tmp_path / "a.crt"), str(tmp_path / "b.key"))
    assert r.exit_code == 1 and "does not match" in r.stderr
    assert not Path(h.root, "nginx/certs/catmeow/server.crt").exists()
    r = h.invoke("certs:add", "catmeow", str(tmp_path / "a.key"), str(tmp_path / "a.key"))
    assert r.exit_code == 1 and "not a PEM X.509 certificate" in r.stderr
    r = h.invoke("certs:add", "catmeow", str(tmp_path / "a.crt"), str(tmp_path / "a.key"))
    assert r.exit_code == 0, r.output
    key = Path(h.root, "nginx/certs/catmeow/server.key")
    assert key.stat().st_mode & 0o077 == 0


def test_app_without_domain_gets_its_own_port(env):
    h = env
    h.deploy("catmeow", "lonely cat")
    r = h.invoke("ports:report", "catmeow", "--format", "json")
    port = int(__import__("json").loads(r.stdout)["map"][0].split(":")[1])
    assert get(port).body == "lonely cat"
    r = h.invoke("ports:set", "catmeow", f"http:{h.nginx.http_port}:5000")
    assert r.exit_code == 0, r.output
    assert h.invoke("domains:add", "catmeow", "cat.example.com").exit_code == 0
    assert h.nginx.request(host="cat.example.com").body == "lonely cat"
    assert h.invoke("ports:set", "catmeow", "http:80:5000;").exit_code == 1


def test_settings_reach_the_config_validated(env):
    h = env
    h.deploy("catmeow", "cats")
    assert h.invoke("nginx:set", "catmeow", "client-max-body-size", "25m").exit_code == 0
    assert "client_max_body_size 25m;" in h.invoke("nginx:show-config", "catmeow").stdout
    r = h.invoke("nginx:set", "catmeow", "client-max-body-size", "1m; }")
    assert r.exit_code == 1 and "invalid size" in r.stderr
    assert h.invoke("nginx:set", "catmeow", "no-such-key", "1").exit_code == 1
    assert h.invoke("nginx:set", "catmeow", "client-max-body-size").exit_code == 0  # reset
    assert "client_max_body_size 1m;" in h.invoke("nginx:show-config", "catmeow").stdout
    r = h.invoke("nginx:set", "--global", "https-port", "443;")
    assert r.exit_code == 1 and "invalid port" in r.stderr
    assert h.invoke("nginx:set", "--global", "public-host", "cats.example.com").exit_code == 0
    assert h.invoke("nginx:set", "--global", "public-host").exit_code == 0
    assert h.invoke("nginx:validate-config", "catmeow").exit_code == 0
    h.context.via_ssh = True
    r = h.invoke("nginx:report", "catmeow", "--format", "json")
    assert '"running": true' in r.stdout


def test_global_settings_are_refused_over_ssh(env, monkeypatch):
    h = env
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "nginx:set --global bin /bin/sh")
    r = h.invoke("ssh-command")
    assert r.exit_code == 1 and "only be changed on the server" in r.stderr
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "nginx:custom-config catmeow")
    r = h.invoke("ssh-command")
    assert r.exit_code == 1 and "not available over SSH" in r.stderr


def test_destroy_and_rename(env):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "cats")
    h.invoke("certs:generate", "catmeow", "cat.example.com")
    assert h.invoke("apps:rename", "catmeow", "kitten").exit_code == 0
    assert not Path(h.root, "nginx/conf.d/app-catmeow.conf").exists()
    assert h.nginx.request(host=f"kitten.{GLOBAL}").status == 301
    assert h.nginx.request(host=f"kitten.{GLOBAL}", https=True).body == "cats"
    assert h.invoke("apps:destroy", "kitten", "--force").exit_code == 0
    assert not Path(h.root, "nginx/conf.d/app-kitten.conf").exists()
    assert not Path(h.root, "nginx/certs/kitten").exists()
    assert h.nginx.request(host=f"kitten.{GLOBAL}").status == 404


def test_not_deployed_app_only_stores(env):
    h = env
    h.create_app("later")
    assert h.invoke("domains:add", "later", "later.example.com").exit_code == 0
    assert not Path(h.root, "nginx/conf.d/app-later.conf").exists()
    assert "later.example.com" in h.invoke("domains:report", "later").stdout


def test_privileged_ports_are_refused_over_ssh(env, monkeypatch):
    h = env
    h.create_app("catmeow")
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "ports:add catmeow http:25:5000")
    r = h.invoke("ssh-command")
    assert r.exit_code == 1 and "privileged" in r.stderr
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", f"ports:add catmeow http:{h.nginx.http_port}:5000")
    assert h.invoke("ssh-command").exit_code == 0


def test_certs_add_takes_a_tarball_on_stdin(env, tmp_path):
    import io
    import os
    import sys
    import tarfile

    h = env
    h.create_app("catmeow")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tar.example.com",
            "-keyout",
            str(tmp_path / "server.key"),
            "-out",
            str(tmp_path / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("server.crt", "server.key"):
            tar.add(tmp_path / name, arcname=name)
    skiff = os.path.join(os.path.dirname(sys.executable), "skiff")
    proc = subprocess.run(
        [skiff, "certs:add", "catmeow"],
        input=buf.getvalue(),
        capture_output=True,
        env={**os.environ, "SKIFF_ROOT": str(h.root)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "tar.example.com" in h.invoke("certs:report", "catmeow").stdout
    proc = subprocess.run(
        [skiff, "certs:add", "catmeow"],
        input=b"not a tar",
        capture_output=True,
        env={**os.environ, "SKIFF_ROOT": str(h.root)},
    )
    assert proc.returncode == 1 and proc.stderr.decode().startswith("!     ")


def test_a_config_nginx_cannot_load_is_rolled_back(env, monkeypatch):
    import socket

    import skiff_nginx.control as control

    h = env
    monkeypatch.setattr(control, "RELOAD_WAIT", 2.0)
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "cats")
    conf = Path(h.root, "nginx/conf.d/app-catmeow.conf")
    before = conf.read_text()
    with socket.socket() as holder:  # nginx -t passes, the reload cannot bind
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        h.state.set_property("nginx", "ports", [f"http:{h.nginx.http_port}:5000", f"http:{port}:5000"], app="catmeow")
        r = h.invoke("proxy:build-config", "catmeow")
    assert r.exit_code == 1 and "did not load the new config" in r.stderr
    assert conf.read_text() == before
    assert body(h, f"catmeow.{GLOBAL}") == "200 cats"


def test_logs_proxy_disable_and_domains_disable(env):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "cats")
    assert h.nginx.request("/logged", host=f"catmeow.{GLOBAL}").status == 200
    # nginx writes the log line after it sent the answer: give it a moment
    deadline = time.monotonic() + 5
    while "GET /logged" not in h.invoke("nginx:access-logs", "catmeow", "-n", "5").stdout:
        assert time.monotonic() < deadline, "the request never reached the app's access log"
        time.sleep(0.05)
    assert h.invoke("proxy:disable", "catmeow").exit_code == 0
    assert h.nginx.request(host=f"catmeow.{GLOBAL}").status == 404
    assert h.invoke("nginx:show-config", "catmeow").exit_code == 1
    assert h.invoke("proxy:enable", "catmeow").exit_code == 0
    assert body(h, f"catmeow.{GLOBAL}") == "200 cats"
    assert h.invoke("domains:disable", "catmeow").exit_code == 0
    assert h.nginx.request(host=f"catmeow.{GLOBAL}").status == 404
    ports = __import__("json").loads(h.invoke("ports:report", "catmeow", "--format", "json").stdout)
    assert get(int(ports["map"][0].split(":")[1])).body == "cats"
    assert h.invoke("domains:enable", "catmeow").exit_code == 0
    assert body(h, f"catmeow.{GLOBAL}") == "200 cats"


def test_acme_challenges_are_answered_by_nginx_over_http_even_when_it_redirects(env, tmp_path):
    h = env
    h.invoke("domains:set-global", GLOBAL)
    h.deploy("catmeow", "the app")
    challenges = contracts.acme_challenge_dir(h.root)
    challenges.mkdir(parents=True)
    (challenges / "tok-en_1").write_text("tok-en_1.thumbprint")
    host = f"catmeow.{GLOBAL}"
    answer = h.nginx.request("/.well-known/acme-challenge/tok-en_1", host=host)
    assert (answer.status, answer.body) == (200, "tok-en_1.thumbprint")
    assert answer.headers["content-type"] == "text/plain"
    missing = h.nginx.request("/.well-known/acme-challenge/nothing", host=host)
    assert missing.status == 404 and missing.body != "the app"  # never passed to the app
    assert h.invoke("certs:generate", "catmeow", host).exit_code == 0
    assert h.nginx.request("/", host=host).status == 301
    still = h.nginx.request("/.well-known/acme-challenge/tok-en_1", host=host)
    assert (still.status, still.body) == (200, "tok-en_1.thumbprint")


def test_certificate_hooks_install_read_and_remove_like_certs_add(env, tmp_path):
    h = env
    h.deploy("catmeow", "hooked")
    h.invoke("domains:add", "catmeow", "hook.example.com")
    assert h.context.hook.skiff_app_domains(context=h.context, app="catmeow") == ["hook.example.com"]
    assert h.context.hook.skiff_app_certificate(context=h.context, app="catmeow") is None
    crt, key = certs.generate(load(h.context), "hook.example.com")
    assert h.context.hook.skiff_certificate_install(context=h.context, app="catmeow", certificate=crt, key=key)
    assert h.context.hook.skiff_app_certificate(context=h.context, app="catmeow") == crt
    pem = tmp_path / "crt.pem"
    pem.write_bytes(crt)
    tls = h.nginx.request(host="hook.example.com", https=True, cafile=str(pem))
    assert (tls.status, tls.body) == (200, "hooked")
    # a replaced certificate is served at once (same file names, so nginx must reload to read it)
    crt2, key2 = certs.generate(load(h.context), "hook.example.com")
    assert h.context.hook.skiff_certificate_install(context=h.context, app="catmeow", certificate=crt2, key=key2)
    pem.write_bytes(crt2)
    assert h.nginx.request(host="hook.example.com", https=True, cafile=str(pem)).body == "hooked"
    with pytest.raises(SkiffError, match="does not match"):
        h.context.hook.skiff_certificate_install(context=h.context, app="catmeow", certificate=crt, key=key2)
    assert h.context.hook.skiff_app_certificate(context=h.context, app="catmeow") == crt2
    assert h.context.hook.skiff_certificate_install(context=h.context, app="catmeow", certificate=None, key=None)
    assert h.context.hook.skiff_app_certificate(context=h.context, app="catmeow") is None
    assert h.nginx.request(host="hook.example.com").body == "hooked"
