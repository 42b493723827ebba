import skiff_apps.plugin as apps_plugin


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
