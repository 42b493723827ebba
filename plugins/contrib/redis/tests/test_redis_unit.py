"""The redis plugin without an engine: its kind, its commands, and deployer keys over SSH."""

from __future__ import annotations

import pytest

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_redis.commands as redis_commands
import skiff_redis.plugin as redis_plugin
from skiff.errors import ValidationError
from skiff.testing import KeyRole
from skiff_redis.kind import KIND, image_files
from skiff_services.record import Service, Store


def test_the_url_and_the_container_command_keep_the_password_out_of_argv():
    service = Service(name="cache", image="img", password="s3cret-pass", options={"maxmemory": "64mb"})
    assert Store(KIND).url(service) == "redis://:s3cret-pass@skiff-redis-cache:6379"
    assert Store(KIND).url(service, masked=True) == "redis://:********@skiff-redis-cache:6379"
    assert KIND.command(service) == ["redis-server", "--maxmemory", "64mb"]
    assert KIND.environment(service) == {"REDIS_PASSWORD": "s3cret-pass"}
    for argv in (KIND.ready, KIND.connect, KIND.export):  # redis-cli finds it in REDISCLI_AUTH
        assert 'REDISCLI_AUTH="$REDIS_PASSWORD"' in " ".join(argv) and "-a" not in argv
    assert "REDIS_PASSWORD" not in " ".join(KIND.import_)  # the import only checks and places the file


def test_the_image_is_built_from_debian_redis_server_on_the_stack_image():
    files = image_files()
    assert set(files) == {"Dockerfile", "entrypoint.sh"}
    dockerfile = files["Dockerfile"].decode()
    assert "FROM ${BASE}" in dockerfile and "apt-get install -y --no-install-recommends redis-server" in dockerfile
    entrypoint = files["entrypoint.sh"].decode()
    assert "appendonly yes" in entrypoint and "requirepass $REDIS_PASSWORD" in entrypoint
    assert "--requirepass" not in entrypoint  # never on a command line


@pytest.mark.parametrize(
    "key,value,good",
    [
        ("maxmemory", "100mb", True),
        ("maxmemory", "0", True),
        ("maxmemory", "1 gb", False),
        ("maxmemory", "10mb\nrequirepass x", False),
        ("maxmemory-policy", "allkeys-lru", True),
        ("maxmemory-policy", "allkeys-lru --save", False),
    ],
)
def test_settings_are_full_matches(key, value, good):
    if good:
        assert KIND.options[key].check(key, value) == value
    else:
        with pytest.raises(ValidationError):
            KIND.options[key].check(key, value)


def test_commands_are_held_by_their_names():
    for command in redis_commands.COMMANDS:
        assert getattr(redis_commands, command.name.replace(":", "_").replace("-", "_")) is command
    assert redis_commands.redis_app_links.name == "redis:app-links"


def test_a_deployer_may_use_a_service_only_when_every_linked_app_is_its_own(skiff):
    h = skiff(apps_plugin, acl_plugin, redis_plugin, KeyRole())
    store = Store(KIND)
    for app, acl in (("web", True), ("api", True), ("other", False)):
        h.create_app(app)
        if acl:
            h.invoke("acl:add", app, "bob")
    links = {"mine": {"web": "REDIS_URL"}, "shared": {"web": "R", "other": "R"}, "loose": {}}
    for name, linked in links.items():
        store.save(h.context, Service(name=name, image="i", password="x" * 12, links=linked))
    assert h.context.hook.skiff_service_apps(context=h.context, kind="redis", service="mine") == ["web"]
    assert h.context.hook.skiff_service_apps(context=h.context, kind="postgres", service="mine") is None

    result = h.ssh("redis:links mine", key="bob")
    assert result.exit_code == 0 and result.stdout == "web REDIS_URL\n"
    assert h.ssh("redis:app-links web", key="bob").stdout == "mine\nshared\n"
    assert h.ssh("redis:linked mine web", key="bob").exit_code == 0
    unlinked = h.ssh("redis:linked mine api", key="bob")
    assert unlinked.exit_code == 1 and "not linked to api" in unlinked.stderr
    for name in ("shared", "loose", "nope"):
        result = h.ssh(f"redis:links {name}", key="bob")
        assert result.stderr.splitlines() == [
            f"!     key 'bob' (deployer) may not run redis:links on redis service '{name}'"
        ]
    assert "may not run redis:app-links on app 'other'" in h.ssh("redis:app-links other", key="bob").stderr
    assert "may not run redis:link on app 'other'" in h.ssh("redis:link mine other", key="bob").stderr
    for command in (
        "redis:create c2",
        "redis:list",
        "redis:destroy mine -f",
        "redis:expose mine",
        "redis:enter mine",
        "redis:clone mine m2",
        "redis:set mine maxmemory 1mb",
        "redis:build-image",
    ):
        result = h.ssh(command, key="bob")
        assert result.exit_code == 1, command
        assert "may not" in result.stderr or "not available over SSH" in result.stderr, command
    assert sorted(store.load(h.context, "mine").links) == ["web"]
