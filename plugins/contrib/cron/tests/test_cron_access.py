"""Who may run the cron commands over SSH: a deployer its own apps' jobs, nothing global; the
runner never over SSH (no docker needed)."""

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_cron.plugin as cron_plugin
import skiff_docker.plugin as docker_plugin
from skiff.testing import KeyRole
from skiff_cron import jobs


def _harness(skiff, release):
    h = skiff(apps_plugin, acl_plugin, cron_plugin, docker_plugin, KeyRole())
    for app in ("web", "other"):
        h.create_app(app)
        release(h, app, [{"command": "echo hi", "schedule": "@daily"}])
    h.invoke("acl:add", "web", "bob")
    return h


def test_a_deployer_runs_the_cron_commands_of_its_own_apps_only(skiff, release):
    h = _harness(skiff, release)
    assert h.ssh("cron:list web", key="bob").exit_code == 0
    assert h.ssh("cron:suspend web", key="bob").exit_code == 0 and jobs.is_suspended(h.state, "web")
    assert h.ssh("cron:resume web", key="bob").exit_code == 0
    assert h.ssh("cron:report web", key="bob").exit_code == 0
    for command, why in [
        ("cron:list other", "on app 'other'"),
        ("cron:suspend other", "on app 'other'"),
        ("cron:run other 0123456789", "on app 'other'"),
        ("cron:report", "without an app"),
        ("cleanup", ""),
        ("cleanup web", ""),
        ("logs:set --global max-size 1g", ""),
        ("cleanup:set --global schedule off", ""),
    ]:
        result = h.ssh(command, key="bob")
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"!     key 'bob' (deployer) may not run {command.split()[0]}"), result.stderr
        assert why in result.stderr
    assert not jobs.is_suspended(h.state, "other")
    assert h.ssh("logs:set web max-size 1m", key="bob").exit_code == 0  # its own app's setting


def test_the_runner_is_never_reachable_over_ssh(skiff, release):
    h = _harness(skiff, release)
    for key in ("bob", "admin"):
        result = h.ssh("cron:runner", key=key)
        assert result.exit_code == 1
        assert "cron:runner is not available over SSH: run it in a shell on the server" in result.stderr
