"""End to end over the real sshd: a key cannot mount the host into ``run``."""

from __future__ import annotations

import secrets

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
import skiff_docker.plugin as docker_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.testing import DirReceiver, dir_source
from skiff.testing.scheduler import ImageBuilder, TestProxy

from .test_e2e import source

pytestmark = pytest.mark.e2e


@pytest.fixture
def sshd_skiff_env():
    return {"SKIFF_DISABLED_PLUGINS": "buildpacks,dockerfile,nginx,postgres"}


def test_a_key_cannot_read_the_hosts_files_through_run(sshd, skiff, stack_base_image, scheduler_app, tmp_path):
    proxy = TestProxy()
    try:
        h = skiff(
            ("apps", apps_plugin),
            ("config", config_plugin),
            ("procfile", procfile_plugin),
            ("docker", docker_plugin),
            ("dir", DirReceiver()),
            ("builder", ImageBuilder()),
            ("proxy", proxy),
        )
        app = scheduler_app
        h.create_app(app)
        lifecycle.deploy(h.context, app, dir_source(source(tmp_path, "1"), "1abcdef0"))
    finally:
        proxy.close()
    secret = secrets.token_hex(16)
    sentinel = tmp_path / "sentinel"
    sentinel.write_text(secret + "\n")
    sentinel.chmod(0o600)
    read = f"cat /host{sentinel}"

    refused = sshd.ssh(f"docker-options:add {app} run --volume=/:/host:ro")
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.strip().splitlines()[-1].startswith("!     --volume=/:/host:ro reaches the host")
    assert h.state.get_property("docker", "docker-options", app=app) is None
    run = sshd.ssh(f"run {app} {read}")
    assert secret not in run.output and run.exit_code != 0

    # written the way the code before root's confirmation did: not applied
    h.state.set_property("docker", "docker-options", {"run": ["--volume=/:/host:ro"]}, app=app)
    run = sshd.ssh(f"run {app} {read}")
    assert secret not in run.output and run.exit_code != 0
    assert "--volume=/:/host:ro is not applied: host-reaching options need root's confirmation" in run.stderr

    # root confirms it on the server: now it applies (so the checks above can fail)
    assert h.invoke("docker-options:confirm", app, "run").exit_code == 0
    run = sshd.ssh(f"run {app} {read}")
    assert run.exit_code == 0 and secret in run.stdout, run.output
