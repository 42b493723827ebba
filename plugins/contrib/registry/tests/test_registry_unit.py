"""Unit tests of the registry plugin with a recorded engine (no dockerd)."""

from __future__ import annotations

import json
import stat

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_registry.plugin as registry_plugin
from skiff import dockerclient, lifecycle
from skiff.contracts import registry_config_dir
from skiff.errors import DeployError, SkiffError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source
from skiff_registry import credentials
from skiff_registry.push import tag_of


class RecordedApi:
    """What the plugin asked the engine: tags and pushes (with their auth), and what a push answers."""

    def __init__(self, answer: list[dict] | None = None):
        self.calls: list[tuple] = []
        self.answer = answer if answer is not None else [{"status": "Pushed"}, {"status": "3: digest: sha256:ab"}]

    def tag(self, image, repository, tag=None):
        self.calls.append(("tag", image, repository, tag))
        return True

    def push(self, repository, tag=None, stream=False, decode=False, auth_config=None):
        self.calls.append(("push", repository, tag, auth_config))
        return iter(self.answer)


class RecordedClient:
    def __init__(self, api: RecordedApi):
        self.api = api


@pytest.fixture
def engine(monkeypatch):
    api = RecordedApi()
    monkeypatch.setattr(dockerclient, "shared", lambda timeout=0: RecordedClient(api))
    return api


def test_skiff_image_for_nodes_tags_and_pushes_with_the_stored_credentials(skiff, engine):
    h = skiff(("apps", apps_plugin), ("registry", registry_plugin))
    h.create_app("web")
    # no server configured: no answer, nothing pushed (single-host deploys need no registry)
    assert h.context.hook.skiff_image_for_nodes(context=h.context, app="web", image="skiff/web:3") is None
    assert engine.calls == []

    assert h.invoke("registry:set", "--global", "server", "10.213.0.11:5443").exit_code == 0
    credentials.store(h.context.root, "10.213.0.11:5443", "skiff", "s3cret")
    ref = h.context.hook.skiff_image_for_nodes(context=h.context, app="web", image="skiff/web:3")
    assert ref == "10.213.0.11:5443/skiff/web:3"
    assert engine.calls == [
        ("tag", "skiff/web:3", "10.213.0.11:5443/skiff/web", "3"),
        ("push", "10.213.0.11:5443/skiff/web", "3", {"username": "skiff", "password": "s3cret"}),
    ]

    # the app's own repository
    assert h.invoke("registry:set", "web", "image-repo", "team/cat").exit_code == 0
    ref = h.context.hook.skiff_image_for_nodes(context=h.context, app="web", image="skiff/web:4")
    assert ref == "10.213.0.11:5443/team/cat:4"


def test_a_refused_push_is_one_line_naming_the_registry(skiff, engine):
    h = skiff(("apps", apps_plugin), ("registry", registry_plugin))
    h.create_app("web")
    h.invoke("registry:set", "--global", "server", "reg.example:5000")
    engine.answer = [{"status": "Preparing"}, {"errorDetail": {"message": "unauthorized:\n authentication required"}}]
    with pytest.raises(SkiffError) as caught:
        h.context.hook.skiff_image_for_nodes(context=h.context, app="web", image="skiff/web:5")
    assert str(caught.value) == (
        "registry reg.example:5000 refused the push of reg.example:5000/skiff/web:5: "
        "unauthorized: authentication required"
    )


def test_tags_of_local_references():
    assert tag_of("skiff/web:12") == "12"
    assert tag_of("localhost:5000/skiff/web") == "latest"
    assert tag_of("sha256:" + "ab" * 32) == "ab" * 6


def test_credentials_are_0600_in_skiffs_own_config_dir_and_forgotten(skiff_root):
    credentials.store(skiff_root, "reg.example", "me", "pw:with:colons")
    path = registry_config_dir(skiff_root) / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert str(skiff_root) in str(path)
    assert list(json.loads(path.read_text())["auths"]) == ["reg.example"]
    assert credentials.lookup(skiff_root, "reg.example") == {"username": "me", "password": "pw:with:colons"}
    assert credentials.forget(skiff_root, "reg.example") is True
    assert credentials.lookup(skiff_root, "reg.example") is None
    assert credentials.forget(skiff_root, "reg.example") is False


def test_bad_settings_are_one_line(skiff):
    h = skiff(("apps", apps_plugin), ("registry", registry_plugin))
    h.create_app("web")
    bad = h.invoke("registry:set", "--global", "server", "https://x/y")
    assert bad.exit_code != 0 and "invalid registry server" in bad.stderr
    bad = h.invoke("registry:set", "web", "image-repo", "Upper/Case")
    assert bad.exit_code != 0 and "invalid image repository" in bad.stderr
    assert h.state.get_property("registry", "image-repo", app="web") is None


def test_push_on_release_pushes_each_new_build_and_a_refused_push_fails_before_the_deploy(skiff, engine, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "Procfile").write_text("web: serve\n")
    scheduler = StubScheduler()
    h = skiff(
        ("apps", apps_plugin),
        ("config", config_plugin),
        ("registry", registry_plugin),
        DirReceiver(),
        StubBuilder(),
        scheduler,
    )
    h.create_app("web")
    lifecycle.deploy(h.context, "web", dir_source(source))  # push-on-release is off by default
    assert engine.calls == []
    h.invoke("registry:set", "--global", "server", "reg.example:5000")
    h.invoke("registry:set", "web", "push-on-release", "true")
    lifecycle.deploy(h.context, "web", dir_source(source))
    assert engine.calls == [
        ("tag", "stub:web-2", "reg.example:5000/skiff/web", "web-2"),
        ("push", "reg.example:5000/skiff/web", "web-2", None),
    ]
    assert scheduler.deployed == [("web", 1), ("web", 2)]
    # a config change reuses the pushed image: nothing pushed again
    assert h.invoke("config:set", "web", "A=1").exit_code == 0
    assert len(engine.calls) == 2
    engine.answer = [{"error": "denied: requested access to the resource is denied"}]
    with pytest.raises(DeployError, match="registry reg.example:5000 refused the push"):
        lifecycle.deploy(h.context, "web", dir_source(source))
    assert scheduler.deployed[-1] == ("web", 3)  # the config release; the refused build never ran
    assert h.state.current_release("web").version == 3


class LoginClient:
    def __init__(self, accept: str):
        self.accept = accept
        self.logins: list[tuple[str, str]] = []

    def login(self, username, password, registry, reauth):
        import docker.errors

        self.logins.append((registry, username))
        if password != self.accept:
            raise docker.errors.APIError("login failed", explanation="Get https://x/v2/: unauthorized:\n bad")
        return {"Status": "Login Succeeded"}


def test_login_reads_stdin_refuses_a_wrong_password_in_one_line_and_takes_dokkus_app_form(skiff, monkeypatch):
    client = LoginClient(accept="right")
    monkeypatch.setattr(dockerclient, "shared", lambda timeout=0: client)
    h = skiff(("apps", apps_plugin), ("registry", registry_plugin))
    h.create_app("web")
    wrong = h.invoke("registry:login", "reg.example:5000", "me", input="wrong\n")
    assert wrong.exit_code != 0
    assert wrong.stderr.strip().splitlines() == [
        "!     registry reg.example:5000 refused the login of me: Get https://x/v2/: unauthorized: bad"
    ]
    assert credentials.lookup(h.context.root, "reg.example:5000") is None  # nothing half written
    assert h.invoke("registry:login", "web", "reg.example:5000", "me", input="right\n").exit_code == 0
    assert credentials.lookup(h.context.root, "reg.example:5000") == {"username": "me", "password": "right"}
    assert h.invoke("registry:login", "nope", "reg.example:5000", "me", input="right\n").exit_code != 0
    assert client.logins == [("reg.example:5000", "me"), ("reg.example:5000", "me")]


def test_state_migrate_keeps_a_registry_stopped_under_the_previous_version_stopped(skiff, skiff_root):
    """The previous version's ``registry:serve --stop`` left the configs, which now mean "start
    it at boot": the upgrade removes them when no registry runs, so ps:restore starts nothing."""
    from skiff_registry import serve

    folder = serve.directory(skiff_root)
    folder.mkdir(parents=True)
    for name in ("cluster", "loopback", "htpasswd"):  # as the previous version left them
        (folder / f"{name}.yml" if name != "htpasswd" else folder / name).write_text("addr: 10.0.0.1:5443\n")
    h = skiff(("registry", registry_plugin))
    migrated = h.invoke("state:migrate")
    assert migrated.exit_code == 0, migrated.output
    assert "the stopped registry:serve registry stays stopped at boot" in migrated.output
    assert not (folder / "cluster.yml").exists() and not (folder / "loopback.yml").exists()
    assert (folder / "htpasswd").exists()  # the account stays for a later registry:serve
    assert serve.resume(skiff_root) is None  # at boot: nothing to start
    again = h.invoke("state:migrate")
    assert again.exit_code == 0 and "registry" not in again.output  # idempotent
    # this version's configs of a registry a reboot stopped: a later update keeps them for ps:restore
    for name in ("cluster", "loopback"):
        (folder / f"{name}.yml").write_text("  addr: 10.0.0.1:5443\n")
    assert h.invoke("state:migrate").exit_code == 0
    assert (folder / "cluster.yml").exists() and (folder / "loopback.yml").exists()
