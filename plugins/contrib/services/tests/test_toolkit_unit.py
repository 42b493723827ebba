"""The service toolkit without an engine: records, names, the command set and its access, hooks."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
from skiff import access, hookimpl, hookspec, lifecycle
from skiff.errors import NotFound, SkiffError, ValidationError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source
from skiff_services import commandset, engine
from skiff_services.commandset import command_set, holder, parse_bind
from skiff_services.hooks import ServiceHooks
from skiff_services.kind import Option
from skiff_services.record import Service, Store, alias_key, check_password, service_name

sys.path.insert(0, str(Path(__file__).parent))
from notes_service import COMMANDS, KIND, NotesPlugin  # noqa: E402


@pytest.fixture
def h(skiff):
    return skiff(("apps", apps_plugin), ("config", config_plugin), ("notes", NotesPlugin()))


@pytest.mark.parametrize("bad", ["", "Db", "a/b", "-a", "a-", "a" * 49, "a b", "a\n", "../x", "1a"])
def test_hostile_names_are_refused(bad):
    with pytest.raises(ValidationError, match="invalid service name"):
        service_name(bad)


def test_passwords_and_aliases():
    assert check_password(KIND, "abcdefgh.-_~9") == "abcdefgh.-_~9"
    for bad in ("short", "has space!", "quote'or", "x" * 129, "new\nline"):
        with pytest.raises(ValidationError):
            check_password(KIND, bad)
    assert alias_key("blue_db") == "BLUE_DB_URL" and alias_key("CACHE_URL") == "CACHE_URL"
    with pytest.raises(ValidationError):
        alias_key("1bad")


def test_records_keep_links_and_only_the_store_has_the_password(h):
    store = Store(KIND)
    store.save(h.context, Service(name="db", image="img", password="p" * 12, links={"web": "NOTES_URL"}))
    loaded = store.load(h.context, "db")
    assert loaded.links == {"web": "NOTES_URL"} and loaded.password == "p" * 12
    assert store.url(loaded) == "http://notes:pppppppppppp@skiff-notes-db:8000/"
    assert "p" * 12 not in store.url(loaded, masked=True)
    assert [s.name for s in store.linked_to(h.context, "web")] == ["db"]
    assert store.pick_key(loaded, {}, None) == "NOTES_URL"
    assert store.pick_key(loaded, {"NOTES_URL": "x"}, None) == "DB_NOTES_URL"
    with pytest.raises(SkiffError, match="already set"):
        store.pick_key(loaded, {"RED_URL": "x"}, "red")
    with pytest.raises(NotFound, match="notes:list"):
        store.load(h.context, "nope")


def test_a_kind_may_keep_fields_of_its_own():
    @dataclass
    class Extra(Service):
        user: str = "admin"

    kind = type(KIND)(**{**KIND.__dict__, "record": Extra})
    made = Store(kind).make(name="x", image="i", password="p" * 8, user="root", unknown="dropped")
    assert isinstance(made, Extra) and made.user == "root"


def test_binds_and_options():
    assert parse_bind(None) == ("127.0.0.1", None)
    assert parse_bind("5999") == ("127.0.0.1", 5999)
    assert parse_bind("[::1]:80") == ("::1", 80)
    for bad in ("example.com:5432", "127.0.0.1:0", "127.0.0.1:70000", "1.2.3.4:x"):
        with pytest.raises(ValidationError):
            parse_bind(bad)
    with pytest.raises(ValidationError, match="invalid value"):
        Option(r"[0-9]+", "a number").check("size", "1; rm")
    assert engine.is_loopback("127.0.0.2") and not engine.is_loopback("0.0.0.0")


def test_the_command_set_and_its_access_declarations():
    names = {c.name: c for c in COMMANDS}
    dokku = "create destroy list exists info link unlink promote links app-links linked connect enter export import"
    dokku += " clone upgrade logs start stop pause restart expose unexpose set build-image"
    dokku += " backup backup-restore backup-auth backup-deauth backup-schedule backup-schedule-cat"
    dokku += " backup-unschedule backup-set-encryption backup-unset-encryption"
    assert set(names) == {f"notes:{n}" for n in dokku.split()}
    levels = {name: access.effective(c) for name, c in names.items()}
    for admin in ("create", "destroy", "list", "enter", "clone", "upgrade", "expose", "unexpose", "set"):
        assert levels[f"notes:{admin}"].level == access.ADMIN, admin
    assert levels["notes:build-image"].level == access.ROOT
    for name in ("info", "export", "import", "connect", "logs", "start", "stop", "pause", "restart", "exists"):
        decl = levels[f"notes:{name}"]
        assert (decl.level, decl.kind, decl.service, decl.app) == (access.APP, "notes", "name", None), name
    for name in ("link", "unlink", "linked", "promote"):
        assert (levels[f"notes:{name}"].kind, levels[f"notes:{name}"].app) == ("notes", "app")
    assert levels["notes:app-links"].app == "app" and levels["notes:app-links"].kind is None
    assert all(c.callback.__module__ == "notes_service" for c in COMMANDS)
    assert holder(names["notes:app-links"]) == "notes_app_links"
    assert command_set(KIND, "x")[0] is not COMMANDS[0]  # a fresh set each time


def test_hooks_follow_apps(h, monkeypatch):
    class NoEngine:
        class containers:  # noqa: N801 - the SDK's shape
            @staticmethod
            def get(name):
                import docker

                raise docker.errors.NotFound(name)

    monkeypatch.setattr(engine, "client", lambda: NoEngine())
    store = Store(KIND)
    h.create_app("web")
    store.save(h.context, Service(name="db", image="img", password="p" * 12, links={"web": "NOTES_URL"}))
    hook = h.context.hook.skiff_service_apps
    assert hook(context=h.context, kind="notes", service="db") == ["web"]
    assert hook(context=h.context, kind="notes", service="Bad/Name") is None
    assert hook(context=h.context, kind="other", service="db") is None
    assert h.invoke("apps:report", "web").exit_code == 0
    assert ServiceHooks(KIND).skiff_report(h.context, "web") == {"notes": {"links": {"db": "NOTES_URL"}}}
    assert h.invoke("apps:rename", "web", "site").exit_code == 0
    assert store.load(h.context, "db").links == {"site": "NOTES_URL"}
    assert h.invoke("apps:destroy", "site", "--force").exit_code == 0
    assert store.load(h.context, "db").links == {}


def test_bad_input_is_one_line_and_changes_nothing(h):
    for args, message in (
        (("notes:create", "Bad/Name"), "invalid service name"),
        (("notes:create", "db", "--password", "x y"), "invalid password"),
        (("notes:info", "nope"), "does not exist"),
        (("notes:stop", "../x"), "invalid service name"),  # checked before its lock's path is made
        (("notes:set", "nope", "size", "1"), "unknown key"),
        (("notes:build-image", "--tag", "--rm"), "invalid image"),
        (("notes:build-image", "--base", "x; rm -rf /"), "invalid image"),
        (("notes:upgrade", "nope", "--image", "-x"), "invalid image"),
        (("notes:upgrade", "nope"), "does not exist"),
    ):
        result = h.invoke(*args)
        assert result.exit_code != 0 and len(result.stderr.strip().splitlines()) == 1, (args, result.output)
        assert message in result.stderr
    assert Store(KIND).all(h.context) == []


def deployed_blog(skiff, tmp_path):
    """A harness with the notes plugin and an app ``blog`` deployed once (stub builder and scheduler)."""
    h = skiff(
        ("apps", apps_plugin),
        ("config", config_plugin),
        ("notes", NotesPlugin()),
        DirReceiver(),
        StubBuilder(),
        StubScheduler(),
    )
    source = tmp_path / "blog"
    source.mkdir()
    (source / "Procfile").write_text("web: run\n")
    h.create_app("blog")
    lifecycle.deploy(h.context, "blog", dir_source(source))
    return h


def test_links_release_the_app_and_respect_its_lock(skiff, tmp_path, monkeypatch):
    moves: list[str] = []
    monkeypatch.setattr(commandset, "client", lambda: None)
    monkeypatch.setattr(
        engine.Engine, "attach", lambda self, c, svc, app, network=None: moves.append(f"+{svc.name}@{app}")
    )
    monkeypatch.setattr(
        engine.Engine, "detach", lambda self, c, svc, app, network=None: moves.append(f"-{svc.name}@{app}")
    )
    h = deployed_blog(skiff, tmp_path)
    store = Store(KIND)
    store.save(h.context, Service(name="docs", image="img", password="q" * 16))

    def release() -> tuple[int, str]:
        current = h.state.current_release("blog")
        return current.version, current.description

    lifecycle.lock_deploys(h.context, "blog", True)
    refused = h.invoke("notes:link", "docs", "blog")
    assert refused.stderr.splitlines() == ["!     app blog is locked: deploys are refused until apps:unlock blog"]
    assert store.load(h.context, "docs").links == {} and moves == [] and release()[0] == 1
    lifecycle.lock_deploys(h.context, "blog", False)

    assert h.invoke("notes:link", "docs", "blog").exit_code == 0
    assert release() == (2, "Link notes docs") and moves == ["+docs@blog"]
    assert h.state.current_release("blog").config["NOTES_URL"] == store.url(store.load(h.context, "docs"))
    assert "already linked" in h.invoke("notes:link", "docs", "blog").stderr
    assert h.invoke("notes:unlink", "docs", "blog", "--no-restart").exit_code == 0
    assert release()[0] == 2 and moves[-1] == "-docs@blog" and "NOTES_URL" not in h.state.get_config("blog")
    assert "not linked to blog" in h.invoke("notes:unlink", "docs", "blog").stderr


def test_a_certificate_is_self_signed_for_the_service_hostname():
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from skiff_services import tls

    cert_pem, key_pem = tls.certificate("skiff-notes-db")
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.issuer == cert.subject  # its own CA: a client may pin it
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["skiff-notes-db"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert load_pem_private_key(key_pem, None).public_key() == cert.public_key()
    assert tls.certificate("skiff-notes-db")[1] != key_pem  # a new key each time
    assert KIND.tls is None and "tls" not in KIND.settable  # notes has no TLS


def test_the_certificate_is_made_once_and_given_to_the_server_of_each_image(h):
    import stat

    from skiff_services import tls
    from skiff_services.kind import TLS

    kind = type(KIND)(**{**KIND.__dict__, "tls": TLS(mount="/etc/notes-tls", owner="notes")})
    runs: list[tuple[str, list[str]]] = []
    refuse = {"image": ""}

    class Containers:
        @staticmethod
        def run(image, entrypoint, **kw):
            if image == refuse["image"]:
                raise RuntimeError("chown: invalid user: 'notes:'")
            assert kw["user"] == "0" and kw["network_mode"] == "none" and kw["remove"]
            runs.append((image, entrypoint))

    class Client:
        containers = Containers

    service = Service(name="db", image="img:1", password="p" * 8)
    path = tls.ensure(h.context, Client, kind, service, {})
    assert path == h.context.path("services", "notes", "db", "tls")
    key = (path / "server.key").read_bytes()
    assert stat.S_IMODE((path / "server.key").stat().st_mode) == 0o600
    assert runs == [("img:1", ["chown", "notes:", "/tls/server.crt", "/tls/server.key"])]
    tls.ensure(h.context, Client, kind, service, {})
    assert len(runs) == 1  # made and given once
    service.image = "img:2"  # another image (KIND:upgrade): its server's uid may differ
    tls.ensure(h.context, Client, kind, service, {})
    assert [image for image, _ in runs] == ["img:1", "img:2"] and (path / "server.key").read_bytes() == key

    refuse["image"] = "img:3"
    with pytest.raises(SkiffError, match="cannot give the TLS certificate of notes db"):
        tls.ensure(h.context, Client, kind, Service(name="db", image="img:3", password="p" * 8), {})
    assert (path / "server.key").read_bytes() == key  # an existing certificate is kept
    with pytest.raises(SkiffError):
        tls.ensure(h.context, Client, kind, Service(name="new", image="img:3", password="p" * 8), {})
    assert not (h.context.path("services", "notes", "new", "tls") / "server.key").exists()  # nothing half made


def test_upgrade_switches_then_redeploys_the_linked_apps_and_a_failure_changes_nothing(skiff, tmp_path, monkeypatch):
    steps: list[str] = []

    class Container:
        id = "c1"

    def trial_import(self, context, c, new, dump):
        dump.seek(0)
        steps.append(f"import {dump.read()!r}")

    def switch(self, context, c, old, new):
        steps.append(f"switch {old.image}->{new.image}")
        if new.image == "broken":
            raise SkiffError("did not start on broken; it serves on img again")

    monkeypatch.setattr(commandset, "client", lambda: None)
    monkeypatch.setattr(
        commandset.Commands, "running", lambda self, context, name: (Store(KIND).load(context, name), Container())
    )
    monkeypatch.setattr(commandset.Commands, "export_to", lambda self, container, out: out.write(b"NOTES dump"))
    monkeypatch.setattr(commandset.Commands, "trial_import", trial_import)
    monkeypatch.setattr(commandset.Commands, "switch", switch)
    monkeypatch.setattr(
        commandset.Commands, "give_certificate", lambda self, context, c, s: steps.append(f"tls {s.image}")
    )
    monkeypatch.setattr(engine.Engine, "ensure_image", lambda self, context, c, image: steps.append(f"image {image}"))
    monkeypatch.setattr(engine.Engine, "server_version", lambda self, container: "")
    monkeypatch.setattr(engine.Engine, "get", lambda self, c, service: Container())
    h = deployed_blog(skiff, tmp_path)
    store = Store(KIND)
    store.save(h.context, Service(name="docs", image="img", password="q" * 16, links={"blog": "NOTES_URL"}))

    failed = h.invoke("notes:upgrade", "docs", "--image", "broken")
    assert failed.exit_code == 1 and failed.stderr.strip().splitlines()[-1].endswith("it serves on img again")
    assert steps[-3:] == ["import b'NOTES dump'", "switch img->broken", "tls img"]  # the certificate given back
    assert store.load(h.context, "docs").image == "img" and h.state.current_release("blog").version == 1

    steps.clear()
    upgraded = h.invoke("notes:upgrade", "docs", "--image", "new")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert steps == ["image new", "tls new", "import b'NOTES dump'", "switch img->new"]
    assert store.load(h.context, "docs").image == "new"
    assert h.state.current_release("blog").description == "Upgrade notes docs"  # the linked app reconnects
    assert h.invoke("notes:upgrade", "docs", "--image", "newer", "--no-restart").exit_code == 0
    assert h.state.current_release("blog").version == 2


class StackSpec:
    """The stack plugin's hook, as it declares it (skiff_addhooks), without importing that plugin."""

    @hookspec(firstresult=True)
    def skiff_stack_ensure(self, context, image, output):
        """Build the stack ``image`` if it is missing."""


class FakeStack:
    """Answers skiff_stack_ensure: 'builds' the stack into the fake engine when ``builds``."""

    def __init__(self, present: set[str], builds: bool = True):
        self.present, self.builds, self.asked = present, builds, []

    @hookimpl
    def skiff_addhooks(self, pm):
        pm.add_hookspecs(StackSpec)

    @hookimpl
    def skiff_stack_ensure(self, context, image, output):
        self.asked.append(image)
        if self.builds:
            self.present.add(image)
            return {"skiff.stack": "trixie"}
        return None


def fake_engine(present: set[str], built: list[dict]):
    import docker

    class Images:
        @staticmethod
        def get(ref):
            if ref not in present:
                raise docker.errors.ImageNotFound(ref)
            return ref

    class API:
        @staticmethod
        def build(**kw):
            built.append(kw)
            present.add(kw["tag"])
            yield {"stream": f"Step 1/3 : FROM {kw['buildargs']['BASE']}"}
            yield {"aux": {"ID": "sha256:" + "0" * 64}}

    class Client:
        images, api = Images, API

    return Client


@pytest.mark.parametrize("builds", [True, False])
def test_an_empty_engine_gets_its_stack_from_the_stack_plugin_before_a_service_image(skiff, builds):
    """A new server (a whole-server restore onto an empty engine): no stack image, none to fall back on."""
    present: set[str] = set()
    built: list[dict] = []
    stack = FakeStack(present, builds=builds)
    h = skiff(("apps", apps_plugin), ("notes", NotesPlugin()), ("stack", stack))
    client = fake_engine(present, built)
    if builds:
        assert engine.Engine(KIND).build_image(h.context, client) == KIND.local_image
        assert stack.asked == ["skiff/stack:trixie"]
        assert [b["buildargs"]["BASE"] for b in built] == ["skiff/stack:trixie"]
    else:
        with pytest.raises(SkiffError, match=r"the base image skiff/stack:trixie does not exist; build the stack"):
            engine.Engine(KIND).build_image(h.context, client)
        assert stack.asked == ["skiff/stack:trixie"] and built == []


def test_without_a_stack_plugin_a_missing_base_is_one_line(h):
    present: set[str] = set()
    built: list[dict] = []
    with pytest.raises(SkiffError, match=r"the base image skiff/stack:trixie does not exist"):
        engine.Engine(KIND).build_image(h.context, fake_engine(present, built))
    assert built == []


class _Api:
    """The engine calls of :meth:`Engine.attach` / :meth:`Engine.detach`: networks and connects."""

    def __init__(self, networks: list[str]):
        self.names = networks
        self.calls: list[tuple] = []

    def networks(self, names=None):
        return [{"Name": n, "Id": n} for n in self.names if n in (names or self.names)]

    def connect_container_to_network(self, container, net, aliases=None):
        self.calls.append(("connect", container, net, tuple(aliases or ())))

    def disconnect_container_from_network(self, container, net, force=False):
        self.calls.append(("disconnect", container, net))


def test_a_service_joins_the_network_the_apps_scheduler_names_and_refuses_one_not_on_its_engine(monkeypatch):
    from types import SimpleNamespace

    on: dict[str, dict] = {}
    container = SimpleNamespace(id="c1", attrs={"NetworkSettings": {"Networks": on}})
    eng = engine.Engine(KIND)
    monkeypatch.setattr(eng, "get", lambda c, service: container)
    service = Store(KIND).make(name="db", password="secret-pw", image="img")
    api = _Api(["skiff-swarm-web"])
    c = SimpleNamespace(api=api)
    # the swarm's overlay (skiff_link_network's answer): joined with the alias, no bridge made
    assert eng.attach(c, service, "web", "skiff-swarm-web") is True
    assert api.calls == [("connect", "c1", "skiff-swarm-web", (KIND.hostname("db"),))]
    with pytest.raises(SkiffError, match="skiff-swarm-api of api is not on the engine.*swarm manager"):
        eng.attach(c, service, "api", "skiff-swarm-api")  # the manager is another engine
    on["skiff-swarm-web"] = {}
    eng.detach(c, service, "web", "skiff-swarm-web")
    assert api.calls[-1] == ("disconnect", "c1", "skiff-swarm-web")
