"""Unit tests of the postgres plugin: names, DSNs, link records (no docker).

The link tests store a service record directly and use the stub builder and
scheduler from skiff.testing, so they check the config, the records and the
redeploys without starting containers.
"""

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_postgres.plugin as pg_plugin
from skiff import lifecycle
from skiff.errors import ValidationError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source
from skiff_postgres.kind import KIND, STORE, PgService
from skiff_services import commandset, engine
from skiff_services.commandset import parse_bind
from skiff_services.record import check_password, new_password, service_name


def test_names_and_dsn():
    s = PgService(name="my-db", image="img", password="p@ss/word:1")
    assert KIND.container_name(s.name) == "skiff.postgres.my-db"
    assert KIND.hostname(s.name) == "skiff-postgres-my-db"
    assert s.database == "my_db"
    assert STORE.url(s) == "postgres://postgres:p%40ss%2Fword%3A1@skiff-postgres-my-db:5432/my_db"
    assert "p%40ss" not in STORE.url(s, masked=True) and "********" in STORE.url(s, masked=True)
    for bad in ("Db", "1db", "db-", "a/b", "../x", "", "x" * 49):
        with pytest.raises(ValidationError):
            service_name(bad)


def test_passwords():
    a, b = new_password(), new_password()
    assert a != b and len(a) == 32
    for bad in ("short", "has space in it", "x" * 129, "new\nline12"):
        with pytest.raises(ValidationError):
            check_password(KIND, bad)


def test_pick_key():
    s = PgService(name="reports-db", image="img", password="x" * 10)
    assert STORE.pick_key(s, {}, None) == "DATABASE_URL"
    assert STORE.pick_key(s, {"DATABASE_URL": "x"}, None) == "REPORTS_DB_DATABASE_URL"
    assert STORE.pick_key(s, {}, "blue") == "BLUE_URL"
    assert STORE.pick_key(s, {}, "GREEN_URL") == "GREEN_URL"
    with pytest.raises(ValidationError):
        STORE.pick_key(s, {}, "bad-alias")
    with pytest.raises(Exception, match="BLUE_URL is already set"):
        STORE.pick_key(s, {"BLUE_URL": "x"}, "blue")


def test_parse_bind():
    assert parse_bind(None) == ("127.0.0.1", None)
    assert parse_bind("5999") == ("127.0.0.1", 5999)
    assert parse_bind("0.0.0.0:6000") == ("0.0.0.0", 6000)
    assert parse_bind("[::1]:6001") == ("::1", 6001)
    for bad in ("host:5432", "70000", "0", "x", "1.2.3.4:"):
        with pytest.raises(ValidationError):
            parse_bind(bad)


@pytest.fixture
def networks(monkeypatch):
    """The engine side of links, recorded: ``[("attach"|"detach", service, app), ...]``."""
    calls: list[tuple[str, str, str]] = []
    for module in (commandset, engine):
        monkeypatch.setattr(module, "client", lambda: "engine")
    monkeypatch.setattr(
        engine.Engine,
        "attach",
        lambda self, c, service, app, network=None: calls.append(("attach", service.name, app)) or True,
    )
    monkeypatch.setattr(
        engine.Engine, "detach", lambda self, c, service, app, network=None: calls.append(("detach", service.name, app))
    )
    return calls


@pytest.fixture
def linked(skiff, tmp_path, networks):
    """A harness with a deployed app ``web`` (stub build/scheduler) and a service record ``db``."""
    scheduler = StubScheduler()
    h = skiff(
        ("apps", apps_plugin),
        ("config", config_plugin),
        ("postgres", pg_plugin),
        DirReceiver(),
        StubBuilder(),
        scheduler,
    )
    h.scheduler = scheduler
    h.networks = networks
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_text("web: run\n")
    h.create_app("web")
    lifecycle.deploy(h.context, "web", dir_source(src))
    STORE.save(h.context, PgService(name="db", image="img", password="secretpassword1"))
    return h


def test_link_sets_url_and_redeploys(linked):
    h = linked
    r = h.invoke("postgres:link", "db", "web")
    assert r.exit_code == 0, r.output
    assert "Linked postgres db to web as DATABASE_URL" in r.stdout
    assert h.networks == [("attach", "db", "web")]  # the service joins the app's network: only it reaches it
    assert h.state.get_config("web")["DATABASE_URL"] == STORE.url(STORE.load(h.context, "db"))
    assert h.state.current_release("web").description == "Link postgres db"
    assert h.state.current_release("web").config["DATABASE_URL"].startswith("postgres://postgres:")
    assert "secretpassword1" not in r.output
    assert h.invoke("postgres:links", "db").stdout == "web DATABASE_URL\n"

    again = h.invoke("postgres:link", "db", "web")
    assert again.exit_code == 1 and "already linked" in again.stderr

    # a second service gets <NAME>_DATABASE_URL, or the alias asked for
    STORE.save(h.context, PgService(name="cache-db", image="img", password="secretpassword2"))
    STORE.save(h.context, PgService(name="other", image="img", password="secretpassword3"))
    assert h.invoke("postgres:link", "cache-db", "web").exit_code == 0
    assert h.invoke("postgres:link", "other", "web", "--alias", "reports", "--no-restart").exit_code == 0
    config = h.state.get_config("web")
    assert {"DATABASE_URL", "CACHE_DB_DATABASE_URL", "REPORTS_URL"} <= set(config)
    assert h.state.current_release("web").description == "Link postgres cache-db"

    report = h.invoke("apps:report", "web", "--format", "json")
    assert '"db": "DATABASE_URL"' in report.stdout and "secretpassword" not in report.stdout

    r = h.invoke("postgres:unlink", "db", "web")
    assert r.exit_code == 0, r.output
    assert "DATABASE_URL" not in h.state.get_config("web")
    assert "DATABASE_URL" not in h.state.current_release("web").config
    assert h.state.current_release("web").description == "Unlink postgres db"
    assert h.networks[-1] == ("detach", "db", "web")
    assert h.invoke("postgres:unlink", "db", "web").exit_code == 1


def test_link_errors(linked):
    h = linked
    r = h.invoke("postgres:link", "nope", "web")
    assert r.exit_code == 1 and "postgres service nope does not exist" in r.stderr
    r = h.invoke("postgres:link", "db", "ghost")
    assert r.exit_code == 1 and "app ghost does not exist" in r.stderr
    r = h.invoke("postgres:link", "db", "web", "--alias", "no-dashes")
    assert r.exit_code == 1 and "invalid alias" in r.stderr
    assert STORE.load(h.context, "db").links == {}
    assert "DATABASE_URL" not in h.state.get_config("web")


def test_a_locked_app_is_neither_linked_nor_unlinked_unless_no_restart(linked):
    h = linked
    lifecycle.lock_deploys(h.context, "web", True)
    line = "!     app web is locked: deploys are refused until apps:unlock web"
    r = h.invoke("postgres:link", "db", "web")
    assert (r.exit_code, r.stderr.splitlines()) == (1, [line])
    assert STORE.load(h.context, "db").links == {} and "DATABASE_URL" not in h.state.get_config("web")
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    r = h.invoke("postgres:unlink", "db", "web")
    assert (r.exit_code, r.stderr.splitlines()) == (1, [line])
    assert STORE.load(h.context, "db").links == {"web": "DATABASE_URL"}
    assert [r.version for r in h.state.releases("web")] == [1]


def test_destroy_refused_while_linked(linked):
    h = linked
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    r = h.invoke("postgres:destroy", "db", "--force")
    assert r.exit_code == 1 and "linked to web; unlink it first" in r.stderr
    assert STORE.exists(h.context, "db")


def test_app_rename_keeps_links_and_destroy_unlinks(linked):
    h = linked
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    assert h.invoke("apps:rename", "web", "site").exit_code == 0
    assert STORE.load(h.context, "db").links == {"site": "DATABASE_URL"}
    assert h.networks[-1] == ("attach", "db", "site")  # on the new name's network before it starts
    assert "DATABASE_URL" in h.state.get_config("site")
    assert h.invoke("apps:destroy", "site", "--force").exit_code == 0
    assert STORE.load(h.context, "db").links == {}


def test_app_without_release_is_not_redeployed(skiff, networks):
    h = skiff(("apps", apps_plugin), ("postgres", pg_plugin))
    h.create_app("fresh")
    STORE.save(h.context, PgService(name="db", image="img", password="secretpassword1"))
    r = h.invoke("postgres:link", "db", "fresh")
    assert r.exit_code == 0, r.output
    assert h.state.current_release("fresh") is None
    assert "DATABASE_URL" in h.state.get_config("fresh")


def test_stale_links_do_not_block(linked):
    """A link to an app destroyed while the plugin was disabled can be removed."""
    h = linked
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    h.state.destroy_app("web")  # as if apps:destroy ran without this plugin
    r = h.invoke("postgres:unlink", "db", "web")
    assert r.exit_code == 0 and "stale link" in r.stdout
    assert STORE.load(h.context, "db").links == {}


def test_non_loopback_expose_is_refused_over_ssh_before_anything_changes(linked, monkeypatch):
    for module in (commandset, engine):
        monkeypatch.setattr(module, "client", lambda: pytest.fail("the engine must not be touched"))
    for target in ("0.0.0.0:6000", "[::]:6000", "10.0.0.5:6000"):
        monkeypatch.setenv("SSH_ORIGINAL_COMMAND", f"postgres:expose db {target}")
        r = linked.invoke("ssh-command")
        assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1
        assert "not a loopback address" in r.stderr and "only root on the server" in r.stderr
        assert STORE.load(linked.context, "db").expose is None


def test_expose_address_is_checked_when_the_container_is_created(linked):
    from skiff.output import Output

    ct = engine.Engine(KIND)
    warned: list[str] = []
    out = Output(quiet=True)
    out.warn = warned.append
    linked.context.output = out
    service = PgService(name="db", image="img", password="secretpassword1", expose={"host": "127.0.0.1", "port": 1})
    assert ct.expose_address(linked.context, service) == "127.0.0.1" and not warned
    service.expose = {"host": "0.0.0.0", "port": 6000}  # stored before this check existed, or by any other path
    assert ct.expose_address(linked.context, service) == "127.0.0.1"
    assert len(warned) == 1 and "needs root's confirmation" in warned[0]
    service.expose["root"] = True  # what postgres:expose from a root shell stores
    assert ct.expose_address(linked.context, service) == "0.0.0.0"


def test_promote_makes_the_service_the_database_url_and_keeps_the_other_under_an_alias(linked):
    h = linked
    STORE.save(h.context, PgService(name="next-db", image="img", password="secretpassword2"))
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    assert h.invoke("postgres:link", "next-db", "web", "--no-restart").exit_code == 0
    old_url = h.state.get_config("web")["DATABASE_URL"]
    new_url = h.state.get_config("web")["NEXT_DB_DATABASE_URL"]

    r = h.invoke("postgres:promote", "next-db", "web")
    assert r.exit_code == 0, r.output
    assert "Promoted postgres next-db to DATABASE_URL on web" in r.stdout and "secretpassword" not in r.output
    config = h.state.get_config("web")
    assert config["DATABASE_URL"] == new_url and config["DB_DATABASE_URL"] == old_url
    assert "NEXT_DB_DATABASE_URL" not in config
    assert STORE.load(h.context, "next-db").links == {"web": "DATABASE_URL"}
    assert STORE.load(h.context, "db").links == {"web": "DB_DATABASE_URL"}
    release = h.state.current_release("web")
    assert release.description == "Promote postgres next-db" and release.config["DATABASE_URL"] == new_url

    again = h.invoke("postgres:promote", "next-db", "web")
    assert again.exit_code == 1 and again.stderr.splitlines() == [
        "!     postgres next-db is already DATABASE_URL of web"
    ]
    assert h.invoke("postgres:promote", "db", "web", "--no-restart").exit_code == 0  # and back
    assert h.state.get_config("web")["DATABASE_URL"] == old_url
    assert STORE.load(h.context, "next-db").links == {"web": "NEXT_DB_DATABASE_URL"}


def test_promote_keeps_a_hand_set_url_and_refuses_what_is_not_linked(linked):
    h = linked
    h.state.set_config("web", {"DATABASE_URL": "postgres://elsewhere/db"})
    assert h.invoke("postgres:link", "db", "web", "--no-restart").exit_code == 0
    assert h.invoke("postgres:promote", "db", "web", "--no-restart").exit_code == 0
    config = h.state.get_config("web")
    assert config["PREVIOUS_DATABASE_URL"] == "postgres://elsewhere/db"
    assert config["DATABASE_URL"] == STORE.url(STORE.load(h.context, "db"))
    STORE.save(h.context, PgService(name="loose", image="img", password="secretpassword3"))
    r = h.invoke("postgres:promote", "loose", "web")
    assert r.exit_code == 1 and "postgres loose is not linked to web" in r.stderr


def test_tls_is_on_unless_the_service_says_false():
    on = PgService(name="db", image="img", password="x" * 10)
    assert KIND.command(on)[:3] == ["postgres", "-c", "ssl=on"]
    assert "ssl_key_file=/var/lib/postgresql/tls/server.key" in KIND.command(on)
    assert KIND.command(PgService(name="db", image="img", password="x" * 10, options={"tls": "false"})) is None
    assert set(KIND.settable) == {"tls"}
    for bad in ("yes", "false\n", "on"):
        with pytest.raises(ValidationError):
            KIND.settable["tls"].check("tls", bad)


def test_upgrade_gives_tls_once_and_puts_back_a_server_that_does_not_start_with_it(skiff, monkeypatch):
    """state:migrate's part for postgres, with a recorded engine: the certificate first, then the
    container recreated; a failure leaves the service as it was (no TLS), the record unchanged."""
    from skiff_services import tls

    h = skiff(("apps", apps_plugin), ("postgres", pg_plugin))
    STORE.save(h.context, PgService(name="old", image="img", password="secretpassword1"))
    STORE.save(h.context, PgService(name="off", image="img", password="secretpassword2", options={"tls": "false"}))

    class Container:
        def __init__(self, labels):
            self.labels, self.status = labels, "running"

    containers = {"old": Container({}), "off": Container({})}
    made: list[tuple[str, bool]] = []
    fail = {"recreate": True}

    def recreate(self, context, c, service):
        made.append((service.name, KIND.tls.enabled(service)))
        if fail.pop("recreate", False):
            raise RuntimeError("FATAL: could not load server certificate file")
        containers[service.name] = Container({tls.LABEL: "on"} if KIND.tls.enabled(service) else {})
        return containers[service.name]

    monkeypatch.setattr(engine, "client", lambda: "engine")
    monkeypatch.setattr(engine.Engine, "get", lambda self, c, service: containers.get(service.name))
    monkeypatch.setattr(engine.Engine, "recreate", recreate)
    monkeypatch.setattr(tls, "ensure", lambda context, c, kind, service, labels: made.append((service.name, "cert")))

    first = h.invoke("state:migrate")
    assert first.exit_code == 0, first.output
    assert "postgres old: TLS not turned on, the server did not start with it" in first.output
    assert made == [("old", "cert"), ("old", True), ("old", False)]  # put back without TLS
    assert STORE.load(h.context, "old").options == {}  # so the next state:migrate tries again

    made.clear()
    second = h.invoke("state:migrate")
    assert "postgres old: TLS on" in second.output and made == [("old", "cert"), ("old", True)]
    third = h.invoke("state:migrate")
    assert "TLS" not in third.output and made == [("old", "cert"), ("old", True)]  # nothing left to do
