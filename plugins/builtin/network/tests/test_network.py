"""The network plugin without an engine: names, settings, access, the hook answers, rebuild and the
upgrade off ``skiff``, against an in-memory engine (the real one is in test_network_e2e.py)."""

from __future__ import annotations

import json

import docker.errors
import pytest

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_docker.plugin as docker_plugin
import skiff_network.plugin as network_plugin
from skiff import contracts, hookimpl
from skiff.testing import KeyRole
from skiff_network import migrate, networks


class FakeApi:
    """The few engine calls the plugin makes: networks and the containers on them."""

    def __init__(self) -> None:
        self.nets: dict[str, dict] = {}  # name -> {"Id", "Name", "Labels", "Driver"}
        self.containers_: dict[str, dict] = {}  # id -> {"Name", "Labels", "Networks": {name: aliases}, "Mode"}
        self.calls: list[tuple] = []

    # networks
    def networks(self, names=None):
        return [n for n in self.nets.values() if not names or any(x in n["Name"] for x in names)]

    def create_network(self, name, driver="bridge", check_duplicate=True, labels=None, ipam=None):
        self.calls.append(("create_network", name))
        self.nets[name] = {"Id": f"id-{name}", "Name": name, "Labels": dict(labels or {}), "Driver": driver}
        return {"Id": f"id-{name}"}

    def _net(self, ident):
        for net in self.nets.values():
            if ident in (net["Name"], net["Id"]):
                return net
        raise docker.errors.NotFound(f"network {ident} not found")

    def inspect_network(self, ident):
        net = dict(self._net(ident))
        net["Containers"] = {
            cid: {"Name": c["Name"]} for cid, c in self.containers_.items() if net["Name"] in c["Networks"]
        }
        return net

    def remove_network(self, ident):
        net = self._net(ident)
        self.calls.append(("remove_network", net["Name"]))
        del self.nets[net["Name"]]

    def connect_container_to_network(self, container, net, aliases=None):
        name = self._net(net)["Name"]
        self.calls.append(("connect", self.containers_[container]["Name"], name, aliases))
        self.containers_[container]["Networks"][name] = aliases

    def disconnect_container_from_network(self, container, net, force=False):
        name = self._net(net)["Name"]
        self.calls.append(("disconnect", self.containers_[container]["Name"], name))
        self.containers_[container]["Networks"].pop(name, None)

    # containers
    def add(self, ident, name, labels, networks, mode=None, image=None):
        app = labels.get("skiff.app", "")
        self.containers_[ident] = {
            "Name": name,
            "Labels": labels,
            "Networks": dict(networks),
            "Mode": mode,
            "Image": image or f"skiff/{app}:1",
        }

    def containers(self, all=True, filters=None):
        result = []
        for cid, c in self.containers_.items():
            wanted = (filters or {}).get("label", [])
            if any(c["Labels"].get(f.split("=")[0]) != f.split("=", 1)[1] for f in wanted if "=" in f):
                continue
            if (filters or {}).get("network") and filters["network"] not in c["Networks"]:
                continue
            result.append({"Id": cid, "Names": ["/" + c["Name"]], "Labels": c["Labels"]})
        return result

    def inspect_container(self, ident):
        c = self.containers_[ident]
        return {
            "Id": ident,
            "Name": "/" + c["Name"],
            "Config": {"Labels": c["Labels"], "Image": c["Image"]},
            "HostConfig": {"NetworkMode": c["Mode"] or next(iter(c["Networks"]), "")},
            "NetworkSettings": {"Networks": {n: {"Aliases": a} for n, a in c["Networks"].items()}},
        }


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


@pytest.fixture
def engine(monkeypatch):
    fake = FakeClient()
    monkeypatch.setattr(networks, "client", lambda: fake)
    return fake.api


def process(app, proc="web", index=1, release=1):
    return {"skiff.app": app, "skiff.process": proc, "skiff.role": "process", "skiff.release": str(release)}


@pytest.fixture
def h(skiff, engine):
    h = skiff(apps_plugin, network_plugin, acl_plugin)
    for app in ("api", "web", "other"):
        h.create_app(app)
    return h


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def refused(result, text):
    assert result.exit_code != 0, result.output
    assert len(result.stderr.splitlines()) == 1 and text in result.stderr, result.stderr
    return result


def test_names_are_full_matches_and_reserved_ones_refused(h, engine):
    for bad in ("", "Shared", "a b", "_x", "x;rm", "x\n", "a" * 64, "bridge", "host", "none", "skiff", "skiff-app-x"):
        refused(h.invoke("network:create", bad), "network name")
    assert engine.nets == {} and networks.recorded(h.context) == []
    assert networks.parse_names("a, b,a c") == ["a", "b", "c"]


def test_create_list_exists_info_destroy(h, engine):
    ok(h.invoke("network:create", "shared"))
    assert engine.nets["shared"]["Labels"] == {"skiff.network.name": "shared", "skiff.root": str(h.context.root)}
    refused(h.invoke("network:create", "shared"), "already exists")
    assert json.loads(h.invoke("network:list", "--format", "json").stdout) == ["shared"]
    assert ok(h.invoke("network:exists", "shared")).stdout == "network shared exists\n"
    refused(h.invoke("network:exists", "nope"), "does not exist")
    ok(h.invoke("network:set", "api", "attach-post-create", "shared"))
    data = json.loads(ok(h.invoke("network:info", "shared", "--format", "json")).stdout)
    assert data["apps"] == {"api": ["attach-post-create"]} and data["id"] == "id-shared"
    refused(h.invoke("network:destroy", "shared"), "attached to api")
    assert "shared" in engine.nets
    ok(h.invoke("network:destroy", "shared", "--force"))
    assert "shared" not in engine.nets and networks.recorded(h.context) == []
    assert networks.attachments(h.context, "api") == {}  # --force detached it


def test_a_docker_network_skiff_did_not_make_is_not_taken_over(h, engine):
    engine.create_network("theirs", labels={})
    refused(h.invoke("network:create", "theirs"), "skiff did not create")
    refused(h.invoke("network:set", "api", "initial-network", "theirs"), "does not exist")
    assert networks.attachments(h.context, "api") == {}


def test_set_validates_and_the_hook_answers_initial_and_post_create(h, engine):
    ok(h.invoke("network:create", "one"))
    ok(h.invoke("network:create", "two"))
    refused(h.invoke("network:set", "api", "attach-post-create", "one,nope"), "nope does not exist")
    refused(h.invoke("network:set", "api", "initial-network", "one", "two"), "one network")
    refused(h.invoke("network:set", "api", "colour", "one"), "colour")
    refused(h.invoke("network:set", "ghost", "initial-network", "one"), "ghost")
    assert networks.attachments(h.context, "api") == {}
    hook = h.context.hook.skiff_container_options
    assert [a for a in hook(context=h.context, app="api", process="web", role="process") if a] == []
    ok(h.invoke("network:set", "api", "initial-network", "one"))
    ok(h.invoke("network:set", "api", "attach-post-create", "two", "one"))
    ok(h.invoke("network:set", "api", "attach-post-deploy", "two"))
    answer = contracts.merge_container_options(hook(context=h.context, app="api", process="web", role="run"))
    assert answer == {"network": "one", "networks": ["two", "one"]}
    report = json.loads(ok(h.invoke("network:report", "api", "--format", "json")).stdout)
    assert report == {
        "own_network": "skiff-app-api",
        "initial_network": "one",
        "attach_post_create": "two,one",
        "attach_post_deploy": "two",
    }
    del engine.nets["two"]  # removed behind skiff's back: the next container brings it back
    hook(context=h.context, app="api", process="web", role="process")
    assert "two" in engine.nets
    ok(h.invoke("network:set", "api", "attach-post-create"))
    assert networks.attachments(h.context, "api") == {"initial-network": ["one"], "attach-post-deploy": ["two"]}


def test_a_deployer_attaches_only_to_networks_of_its_own_apps(skiff, engine):
    h = skiff(apps_plugin, network_plugin, acl_plugin, KeyRole("deployer"))
    for app in ("api", "web", "other"):
        h.create_app(app)
    # h.invoke is a shell on the server; h.ssh is the deployer key bob
    ok(h.invoke("network:create", "shared"))
    ok(h.invoke("network:set", "other", "attach-post-create", "shared"))
    ok(h.invoke("acl:add", "api", "bob"))
    ok(h.invoke("acl:add", "web", "bob"))
    refused(h.ssh("network:set api attach-post-create shared", key="bob"), "outside its access list")
    refused(h.ssh("network:set api initial-network shared", key="bob"), "outside its access list")
    refused(h.ssh("network:set other attach-post-create", key="bob"), "on app 'other'")
    refused(h.ssh("network:create mine", key="bob"), "may not run network:create")
    refused(h.ssh("network:destroy shared --force", key="bob"), "may not run network:destroy")
    refused(h.ssh("network:list", key="bob"), "may not run network:list")
    refused(h.ssh("network:report", key="bob"), "without an app")
    assert networks.attachments(h.context, "api") == {}
    ok(h.invoke("network:create", "ours"))
    ok(h.ssh("network:set api attach-post-create ours", key="bob"))  # empty network: a group of its own
    ok(h.ssh("network:set web attach-post-deploy ours", key="bob"))  # holds only bob's apps
    ok(h.ssh("network:report api", key="bob"))
    ok(h.ssh("network:set web attach-post-deploy", key="bob"))  # detaching needs nothing more
    assert networks.apps_on(h.context, "ours") == {"api": ["attach-post-create"]}


def test_rebuild_moves_running_containers_live_and_leaves_roots_networks(h, engine):
    ok(h.invoke("network:create", "shared"))
    engine.create_network("skiff-app-api", labels={contracts.APP_NETWORK_LABEL: "api"})
    engine.create_network("roots-own", labels={})
    engine.add("c1", "api.web.1", process("api"), {"skiff-app-api": ["api.web"], "roots-own": None})
    engine.add("c2", "api.web.1.old-c0", process("api"), {"skiff-app-api": ["api.web"]})
    engine.add("c3", "api.worker.1", process("api", "worker"), {}, mode="host")  # root's --network=host
    ok(h.invoke("network:set", "api", "attach-post-create", "shared"))
    out = ok(h.invoke("network:rebuild", "api")).output
    assert "api.web.1: +shared" in out
    assert engine.containers_["c1"]["Networks"] == {
        "skiff-app-api": ["api.web"],
        "roots-own": None,
        "shared": ["api.web"],
    }
    assert engine.containers_["c2"]["Networks"] == {"skiff-app-api": ["api.web"]}  # retiring: left alone
    assert engine.containers_["c3"]["Networks"] == {}
    ok(h.invoke("network:set", "api", "attach-post-create"))
    ok(h.invoke("network:rebuild", "api"))
    assert set(engine.containers_["c1"]["Networks"]) == {"skiff-app-api", "roots-own"}
    assert "nothing to change" in ok(h.invoke("network:rebuild", "api")).output


def test_attach_post_deploy_joins_only_the_new_release(skiff, engine):
    from skiff import lifecycle
    from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source

    h = skiff(apps_plugin, network_plugin, ("src", DirReceiver()), ("b", StubBuilder()), ("s", StubScheduler()))
    h.create_app("api")
    ok(h.invoke("network:create", "late"))
    ok(h.invoke("network:set", "api", "attach-post-deploy", "late"))
    engine.create_network("skiff-app-api", labels={contracts.APP_NETWORK_LABEL: "api"})
    engine.add("old", "api.web.1", process("api", release=0), {"skiff-app-api": ["api.web"]})
    engine.add("new", "api.web.1.v1", process("api", release=1), {"skiff-app-api": ["api.web"]})
    import tempfile

    with tempfile.TemporaryDirectory() as src:
        lifecycle.deploy(h.context, "api", dir_source(src))
    assert engine.containers_["new"]["Networks"]["late"] == ["api.web"]
    assert "late" not in engine.containers_["old"]["Networks"]


class Services:
    """Answers skiff_service_apps like postgres: db is linked to api; ghost is not this store's."""

    @hookimpl
    def skiff_service_apps(self, context, kind, service):
        return {"db": ["api"], "lonely": []}.get(service) if kind == "postgres" else None


def test_upgrade_moves_apps_and_services_off_skiff_live_and_is_idempotent(skiff, engine):
    h = skiff(apps_plugin, network_plugin, docker_plugin, ("services", Services()))
    for app in ("api", "web"):
        h.create_app(app)
        release = dict(description="v1", image=f"skiff/{app}:1", revision=None, config={}, processes={}, meta={})
        h.state.create_release(app, **release)
    ok(h.invoke("network:create", "shared"))
    ok(h.invoke("network:set", "web", "attach-post-create", "shared"))
    engine.create_network("skiff", labels={"skiff.network": "1"})
    old = {"skiff": ["api.web"]}
    engine.add("a1", "api.web.1", process("api"), old)
    engine.add("w1", "web.web.1", process("web"), {"skiff": ["web.web"]})
    engine.add("db", "skiff.postgres.db", {"skiff.service": "postgres"}, {"skiff": ["skiff-postgres-db", "db"]})
    engine.add("lo", "skiff.postgres.lonely", {"skiff.service": "postgres"}, {"skiff": ["skiff-postgres-lonely"]})
    engine.add("x1", "stranger.web.1", process("stranger"), {"skiff": ["stranger.web"]})  # another store's
    engine.add("x2", "api.web.1", process("api"), {"skiff": ["api.web"]}, image="skiff/api:elsewhere")  # same name
    other_root = {"skiff.service": "postgres", "skiff.root": "/elsewhere"}
    engine.add("x3", "skiff.postgres.db", other_root, {"skiff": ["skiff-postgres-db"]})
    ok(h.invoke("state:migrate"))
    nets = {cid: c["Networks"] for cid, c in engine.containers_.items()}
    assert nets["a1"] == {"skiff-app-api": ["api.web"]}
    assert nets["w1"] == {"skiff-app-web": ["web.web"], "shared": ["web.web"]}
    assert nets["db"] == {"skiff-app-api": ["skiff-postgres-db"]}  # only its linked app's network
    assert nets["lo"] == {}
    assert nets["x1"] == {"skiff": ["stranger.web"]}  # not this store's: left on skiff
    assert nets["x2"] == {"skiff": ["api.web"]} and nets["x3"] == {"skiff": ["skiff-postgres-db"]}
    assert "skiff" in engine.nets  # still in use by the stranger
    assert not [c for c in engine.calls if c[0] in ("create_container", "restart")]
    engine.calls.clear()
    assert migrate.migrate(h.context) == []  # a second run changes nothing
    assert engine.calls == []
    for stranger in ("x1", "x2", "x3"):
        del engine.containers_[stranger]
    assert migrate.migrate(h.context) == [] and "skiff" in engine.nets  # moved nothing: an empty skiff stays
    engine.add("a2", "api.worker.1", process("api", "worker"), {"skiff": ["api.worker"]})
    assert migrate.migrate(h.context) == [
        "moved 1 app container(s) off the shared network skiff onto their own networks",
        f"removed the shared network skiff: {migrate_tail()}",
    ]
    assert "skiff" not in engine.nets and migrate.migrate(h.context) == []


def migrate_tail() -> str:
    return "apps reach each other only through network:* networks"


def test_upgrade_without_an_engine_says_so_and_changes_nothing(skiff, monkeypatch):
    from skiff.errors import SkiffError

    def away():
        raise SkiffError("cannot reach the Docker engine")

    monkeypatch.setattr(networks, "client", away)
    h = skiff(apps_plugin, network_plugin)
    result = h.invoke("state:migrate")
    assert result.exit_code == 0, result.output
    assert "apps move off the shared network skiff at their next deploy" in result.stderr
