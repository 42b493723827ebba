"""storage without docker: directories, owners, who may mount what, the binds containers get."""

from __future__ import annotations

import json
import os

import pytest

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_storage.plugin as storage_plugin
from skiff import contracts, hookimpl
from skiff_storage import directories, mounts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chowning to other uids needs root")


class Roles:
    """alice is an admin key, every other key a deployer."""

    @hookimpl
    def skiff_key_role(self, context, key):
        return "admin" if key == "alice" else "deployer"


def _harness(skiff):
    h = skiff(apps_plugin, acl_plugin, storage_plugin, Roles())
    for app in ("web", "other"):
        h.create_app(app)
    assert h.invoke("acl:add", "web", "bob").exit_code == 0
    return h


def _refused(result, line):
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"!     {line}"], result.output


def _binds(h, app="web", role="process"):
    answers = h.context.hook.skiff_container_options(context=h.context, app=app, process="web", role=role)
    return contracts.merge_container_options(answers).get("binds", [])


def test_ensure_directory_creates_it_for_its_app_owned_by_the_stack_user(skiff, skiff_root):
    h = _harness(skiff)
    result = h.ssh("storage:ensure-directory web", key="bob")
    assert result.exit_code == 0, result.output
    path = skiff_root / "storage" / "web"
    assert path.is_dir() and path.stat().st_uid == contracts.APP_UID == 1000
    assert f"Created storage directory {path} for web (owner uid 1000)" in result.stdout
    assert directories.load(h.context, "web").app == "web"

    # a second name for the same app, and Dokku's --chown choices
    assert h.ssh("storage:ensure-directory web_uploads --chown herokuish", key="bob").exit_code == 0
    assert (skiff_root / "storage" / "web_uploads").stat().st_uid == 32767
    assert h.ssh("storage:ensure-directory web_uploads --chown root", key="bob").exit_code == 0
    assert (skiff_root / "storage" / "web_uploads").stat().st_uid == 0


def test_chown_never_follows_a_symlink(skiff, skiff_root, tmp_path):
    h = _harness(skiff)
    assert h.invoke("storage:ensure-directory", "web").exit_code == 0
    outside = tmp_path / "outside"
    outside.write_text("host file")
    os.chown(outside, 0, 0)
    path = skiff_root / "storage" / "web"
    (path / "sub").mkdir()
    (path / "sub" / "file").write_text("x")
    (path / "link").symlink_to(outside)
    (path / "dirlink").symlink_to(tmp_path)
    assert h.invoke("storage:ensure-directory", "web", "--chown", "paketo").exit_code == 0
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0
    assert (path / "link").lstat().st_uid == 2000 and (path / "dirlink").lstat().st_uid == 2000
    assert (path / "sub" / "file").stat().st_uid == 2000


def test_names_say_whose_directory_it_is(skiff, skiff_root):
    h = _harness(skiff)
    _refused(
        h.ssh("storage:ensure-directory other", key="bob"),
        "key 'bob' (deployer) may not run storage:ensure-directory on app 'other'",
    )
    _refused(
        h.ssh("storage:ensure-directory other_x", key="bob"),
        "key 'bob' (deployer) may not run storage:ensure-directory on app 'other'",
    )
    _refused(
        h.invoke("storage:ensure-directory", "../etc"),
        "invalid storage directory name '../etc': use APP or APP_SUFFIX (the app it belongs to first)",
    )
    _refused(
        h.invoke("storage:ensure-directory", "web_a/b"),
        "invalid storage directory name 'web_a/b': the part after '_' takes letters, digits, '.' and '-'",
    )
    _refused(h.invoke("storage:ensure-directory", "nope"), "app nope does not exist")
    assert not (skiff_root / "storage" / "other").exists()
    # a path Skiff did not create is not taken over
    (skiff_root / "storage").mkdir(exist_ok=True)
    (skiff_root / "storage" / "web").symlink_to("/etc")
    result = h.invoke("storage:ensure-directory", "web")
    assert result.exit_code == 1 and "is not a storage directory Skiff created" in result.stderr
    assert os.stat("/etc").st_uid == 0


def test_a_deployer_mounts_only_storage_directories_of_its_apps(skiff, skiff_root):
    h = _harness(skiff)
    for name in ("web", "other"):
        assert h.invoke("storage:ensure-directory", name).exit_code == 0
    web, other = skiff_root / "storage" / "web", skiff_root / "storage" / "other"
    result = h.ssh(f"storage:mount web {web}:/app/data", key="bob")
    assert result.exit_code == 0, result.output
    assert f"Mounted {web}:/app/data in web" in result.stdout
    _refused(
        h.ssh(f"storage:mount web {other}:/other", key="bob"),
        "key 'bob' (deployer) may not mount other: it belongs to app other",
    )
    _refused(
        h.ssh(f"storage:mount other {other}:/x", key="bob"),
        "key 'bob' (deployer) may not run storage:mount on app 'other'",
    )
    for key in ("bob", "alice"):  # host paths: never over SSH, whatever the key
        _refused(
            h.ssh("storage:mount web /etc:/host-etc", key=key),
            f"/etc is not under {skiff_root / 'storage'}: only root on the server may mount other host paths "
            "(storage:mount from a root shell)",
        )
    _refused(
        h.ssh(f"storage:mount web {web}/../other:/x", key="bob"),
        f"invalid host path '{web}/../other': '..' is not allowed",
    )
    _refused(
        h.ssh(f"storage:mount web {web}:/a:/b", key="bob"), f"invalid mount '{web}:/a:/b': use HOST_PATH:CONTAINER_PATH"
    )
    _refused(
        h.ssh("storage:mount web relative:/x", key="bob"),
        "invalid host path 'relative': an absolute path of letters, digits and ._@+=/-",
    )
    _refused(h.ssh(f"storage:mount web {web}:/app/data", key="bob"), f"web already mounts {web} at /app/data")
    # what is inside a storage directory is the app's: a symlink there does not lead out of it
    (web / "escape").symlink_to("/etc")
    (web / "sub").mkdir()
    for inside in ("escape", "sub"):
        _refused(
            h.ssh(f"storage:mount web {web}/{inside}:/e", key="bob"),
            f"{web}/{inside} is inside the storage directory web: mount the directory itself ({web}); "
            "what is inside belongs to the app",
        )
    # an admin key may mount any storage directory, a deployer's of any of its apps
    assert h.ssh(f"storage:mount web {other}:/other", key="alice").exit_code == 0
    listed = json.loads(h.ssh("storage:list web --format json", key="bob").stdout)
    assert listed == [
        {"host_path": str(web), "container_path": "/app/data", "volume_options": ""},
        {"host_path": str(other), "container_path": "/other", "volume_options": ""},
    ]
    assert _binds(h) == [f"{web}:/app/data", f"{other}:/other"]
    assert _binds(h, role="run") == _binds(h, role="release") == _binds(h)
    assert _binds(h, app="other") == []


def test_host_paths_only_from_a_root_shell_and_only_for_the_app_root_named(skiff, skiff_root, tmp_path, capsys):
    h = _harness(skiff)
    host = tmp_path / "host-data"
    host.mkdir()
    assert h.context.from_root_shell
    result = h.invoke("storage:mount", "web", f"{host}:/host:ro")
    assert result.exit_code == 0, result.output
    assert mounts.stored(h.context, "web")[0].root == "web"
    assert _binds(h) == [f"{host}:/host:ro"]
    _refused(
        h.invoke("storage:mount", "web", "/nonexistent-dir:/x"),
        "/nonexistent-dir does not exist or is not a directory (Skiff never creates host paths)",
    )
    # the same record copied to another app (or written by anything else): not applied
    h.state.set_property("storage", "mounts", h.state.get_property("storage", "mounts", app="web"), app="other")
    capsys.readouterr()
    assert _binds(h, app="other") == []
    assert "host paths need root's confirmation" in capsys.readouterr().err


def test_rename_moves_mounts_and_owners_destroy_keeps_the_data(skiff, skiff_root, tmp_path):
    h = _harness(skiff)
    assert h.invoke("storage:ensure-directory", "web_files").exit_code == 0
    data = skiff_root / "storage" / "web_files"
    (data / "kept.txt").write_text("precious")
    host = tmp_path / "host"
    host.mkdir()
    assert h.invoke("storage:mount", "web", f"{data}:/data").exit_code == 0
    assert h.invoke("storage:mount", "web", f"{host}:/host").exit_code == 0
    assert h.invoke("apps:rename", "web", "site").exit_code == 0
    assert _binds(h, app="site") == [f"{data}:/data", f"{host}:/host"]
    assert directories.load(h.context, "web_files").app == "site"
    # a new app under the old name gets neither
    h.create_app("web")
    assert _binds(h, app="web") == []
    _refused(h.invoke("storage:ensure-directory", "web_files"), "storage directory web_files belongs to app site")

    destroyed = h.invoke("apps:destroy", "site", "--force")
    assert destroyed.exit_code == 0, destroyed.output
    assert f"storage: kept {data} (the data of site)" in destroyed.stdout
    assert f"storage: kept {host} (mounted at /host; never removed)" in destroyed.stdout
    assert (data / "kept.txt").read_text() == "precious"
    record = directories.load(h.context, "web_files")
    assert (record.app, record.destroyed_app) == (None, "site")
    report = json.loads(h.invoke("storage:report", "--format", "json").stdout)
    assert report["orphans"] == {str(data): "site"}
    # left by a destroyed app: a deployer of the new "web" may not take it, an admin may
    assert h.invoke("acl:add", "web", "bob").exit_code == 0
    _refused(
        h.ssh("storage:ensure-directory web_files", key="bob"),
        "storage directory web_files was left by the destroyed app site: an admin key or root may take it over",
    )
    _refused(
        h.ssh(f"storage:mount web {data}:/data", key="bob"),
        "key 'bob' (deployer) may not mount web_files: it belongs to the destroyed app site",
    )
    assert h.ssh("storage:ensure-directory web_files", key="alice").exit_code == 0
    assert directories.load(h.context, "web_files").app == "web"
    assert (data / "kept.txt").read_text() == "precious"


def test_a_storage_directory_swapped_for_a_symlink_is_not_mounted(skiff, skiff_root, tmp_path, capsys):
    h = _harness(skiff)
    assert h.invoke("storage:ensure-directory", "web").exit_code == 0
    web = skiff_root / "storage" / "web"
    assert h.ssh(f"storage:mount web {web}:/data", key="bob").exit_code == 0
    assert _binds(h) == [f"{web}:/data"]
    web.rename(tmp_path / "moved")
    web.symlink_to("/etc")
    capsys.readouterr()
    assert _binds(h) == []
    warned = capsys.readouterr().err
    assert f"storage: {web}:/data is not mounted: {web} leads out of its storage directory through a symlink" in warned
    _refused(
        h.ssh(f"storage:mount web {web}:/other", key="bob"),
        f"{web} leads out of its storage directory through a symlink",
    )


def test_unmount_report_and_the_apps_report(skiff, skiff_root):
    h = _harness(skiff)
    assert h.invoke("storage:ensure-directory", "web").exit_code == 0
    web = skiff_root / "storage" / "web"
    assert h.ssh(f"storage:mount web {web}:/data", key="bob").exit_code == 0
    report = json.loads(h.ssh("storage:report web --format json", key="bob").stdout)
    assert report == {"mounts": [f"{web}:/data"], "directories": [str(web)]}
    _refused(h.ssh("storage:report", key="bob"), "key 'bob' (deployer) may not run storage:report without an app")
    assert json.loads(h.invoke("apps:report", "web", "--format", "json").stdout)["storage"] == report
    _refused(h.ssh(f"storage:unmount web {web}:/other", key="bob"), f"{web}:/other is not mounted in web")
    result = h.ssh(f"storage:unmount web {web}:/data", key="bob")
    assert result.exit_code == 0 and f"the data stays in {web}" in result.stdout
    assert h.state.get_property("storage", "mounts", app="web") is None and web.is_dir()
    assert _binds(h) == []
