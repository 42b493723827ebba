import json

import pytest

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
from skiff import hookimpl, lifecycle
from skiff.errors import SkiffError
from skiff.settings import Namespace, Setting
from skiff.testing import DirReceiver, KeyRole, StubBuilder, StubScheduler, dir_source


def test_create_list_destroy(skiff):
    h = skiff(("apps", apps_plugin))
    assert h.invoke("apps:create", "catmeow").exit_code == 0
    assert "catmeow" in h.invoke("apps:list").stdout
    assert h.invoke("apps:exists", "catmeow").exit_code == 0
    r = h.invoke("apps:destroy", "catmeow", input="wrong\n")
    assert r.exit_code == 1 and "nothing was destroyed" in r.stderr
    assert h.state.app_exists("catmeow")
    assert h.invoke("apps:destroy", "catmeow", input="catmeow\n").exit_code == 0
    assert h.invoke("apps:exists", "catmeow").exit_code == 1


def _src(tmp_path):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "Procfile").write_text("web: serve\n")
    return src


def _pipeline(skiff, *more):
    return skiff(("apps", apps_plugin), ("config", config_plugin), DirReceiver(), StubBuilder(), StubScheduler(), *more)


def test_a_locked_app_refuses_every_deploy_in_one_line_and_records_nothing(skiff, tmp_path):
    h = _pipeline(skiff)
    h.create_app("cat")
    lifecycle.deploy(h.context, "cat", dir_source(_src(tmp_path)))
    assert h.invoke("apps:locked", "cat").stderr.splitlines() == ["!     app cat is not locked"]
    locked = h.invoke("apps:lock", "cat")
    assert locked.exit_code == 0 and "Locked cat" in locked.stdout
    assert h.invoke("apps:locked", "cat").exit_code == 0
    line = "!     app cat is locked: deploys are refused until apps:unlock cat"
    with pytest.raises(SkiffError, match="app cat is locked"):
        lifecycle.deploy(h.context, "cat", dir_source(_src(tmp_path)))
    with pytest.raises(SkiffError, match="app cat is locked"):
        lifecycle.redeploy(h.context, "cat", "Set A")
    refused = h.invoke("config:set", "cat", "A=1")
    assert (refused.exit_code, refused.stderr.splitlines()) == (1, [line])
    assert h.state.get_config("cat") == {}  # refused before anything was stored
    assert h.invoke("config:set", "--no-restart", "cat", "A=1").exit_code == 0
    assert [r.version for r in h.state.releases("cat")] == [1]
    # running the current release again (restart, scale, ps:start at boot) is not a deploy
    assert lifecycle.redeploy(h.context, "cat", "Restart", locked_ok=True).version == 2
    # the lock moves with a rename; unlock lets deploys through again
    assert h.invoke("apps:rename", "cat", "dog").exit_code == 0
    assert h.invoke("apps:locked", "dog").exit_code == 0
    assert h.invoke("apps:unlock", "dog").exit_code == 0
    assert h.invoke("apps:locked", "dog").exit_code == 1
    assert h.invoke("config:set", "dog", "B=2").exit_code == 0
    assert [r.version for r in h.state.releases("dog")] == [1, 2, 3]


class _Settings:
    @hookimpl
    def skiff_settings(self):
        return [
            Namespace(
                "demo", (Setting("colour"), Setting("secret-path", level="root"), Setting("shared", scope="global"))
            )
        ]


def test_clone_copies_config_and_settings_and_deploys_the_image(skiff, tmp_path):
    h = _pipeline(skiff, _Settings(), acl_plugin, KeyRole("deployer"))
    h.create_app("cat")
    lifecycle.deploy(h.context, "cat", dir_source(_src(tmp_path)))
    h.state.set_config("cat", {"GREETING": "meow"})
    for key, value in (("colour", "blue"), ("secret-path", "/srv/x")):
        h.state.set_property("demo", key, value, app="cat")
    h.state.set_property("demo", "shared", "all")
    assert h.invoke("acl:add", "cat", "bob").exit_code == 0

    # a deployer may not create apps (unless deployer-create-apps is on)
    refused = h.ssh("apps:clone cat kitten", key="bob")
    assert refused.stderr.splitlines() == ["!     key 'bob' (deployer) may not run apps:clone on app 'kitten'"]
    assert not h.state.app_exists("kitten")
    assert h.invoke("acl:set", "--global", "deployer-create-apps", "true").exit_code == 0
    cloned = h.ssh("apps:clone --skip-deploy cat kitten", key="bob")
    assert cloned.exit_code == 0, cloned.output
    assert h.state.get_config("kitten") == {"GREETING": "meow"}
    assert h.state.get_property("demo", "colour", app="kitten") == "blue"
    assert h.state.get_property("demo", "secret-path", app="kitten") is None  # root's, and bob is not root
    assert "not copied: demo secret-path can only be changed on the server itself" in cloned.stderr
    assert h.state.releases("kitten") == []
    assert "bob" in h.invoke("acl:list", "kitten").stdout
    # the clone is its own app
    assert h.invoke("config:set", "--no-restart", "kitten", "GREETING=purr").exit_code == 0
    assert h.state.get_config("cat") == {"GREETING": "meow"}

    existing = h.invoke("apps:clone", "cat", "kitten")
    assert existing.stderr.splitlines() == ["!     app kitten already exists"]
    ignored = h.invoke("apps:clone", "--ignore-existing", "cat", "kitten")
    assert ignored.exit_code == 0 and "nothing was cloned (--ignore-existing)" in ignored.stderr
    assert h.state.get_config("kitten") == {"GREETING": "purr"}
    # from a root shell, root's settings come along too
    assert h.invoke("apps:clone", "--skip-deploy", "cat", "tom").exit_code == 0
    assert h.state.get_property("demo", "secret-path", app="tom") == "/srv/x"
    assert json.loads(h.invoke("apps:report", "tom", "--format", "json").stdout)["app"]["deployed"] is False
