"""Deployer keys and postgres services: a service is theirs when all its linked apps are (no docker)."""

import skiff_acl.plugin as acl_plugin
import skiff_apps.plugin as apps_plugin
import skiff_postgres.plugin as pg_plugin
from skiff.testing import KeyRole
from skiff_postgres.kind import STORE, PgService


def _ssh(h, command, key="bob"):
    return h.ssh(command, key=key)


def _harness(skiff):
    h = skiff(apps_plugin, acl_plugin, pg_plugin, KeyRole())
    for app in ("web", "api", "other"):
        h.create_app(app)
    h.invoke("acl:add", "web", "bob")
    h.invoke("acl:add", "api", "bob")
    STORE.save(
        h.context,
        PgService(name="mine", image="img", password="x" * 12, links={"web": "DATABASE_URL", "api": "DATABASE_URL"}),
    )
    STORE.save(
        h.context,
        PgService(
            name="shared", image="img", password="x" * 12, links={"web": "DATABASE_URL", "other": "DATABASE_URL"}
        ),
    )
    STORE.save(h.context, PgService(name="loose", image="img", password="x" * 12))
    return h


def test_service_apps_hook_answers_for_postgres_only(skiff):
    h = _harness(skiff)
    assert h.context.hook.skiff_service_apps(context=h.context, kind="postgres", service="mine") == ["api", "web"]
    hook = h.context.hook.skiff_service_apps
    assert hook(context=h.context, kind="postgres", service="loose") == []
    assert hook(context=h.context, kind="postgres", service="nope") is None
    assert hook(context=h.context, kind="postgres", service="Bad/Name") is None
    assert hook(context=h.context, kind="redis", service="mine") is None


def test_a_deployer_may_use_a_service_only_when_every_linked_app_is_its_own(skiff):
    h = _harness(skiff)
    result = _ssh(h, "postgres:links mine")
    assert result.exit_code == 0, result.output
    assert "web" in result.stdout and "api" in result.stdout
    for name in ("shared", "loose", "nope"):
        result = _ssh(h, f"postgres:links {name}")
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"!     key 'bob' (deployer) may not run postgres:links on postgres service '{name}'"
        ]
    result = _ssh(h, "postgres:unlink mine other")
    assert result.stderr.splitlines() == ["!     key 'bob' (deployer) may not run postgres:unlink on app 'other'"]
    result = _ssh(h, "postgres:promote shared other")
    assert result.stderr.splitlines() == [
        "!     key 'bob' (deployer) may not run postgres:promote on postgres service 'shared'"
    ]
    for command in ("postgres:set mine tls false", "postgres:enter mine", "postgres:clone mine m2"):
        result = _ssh(h, command)
        assert result.exit_code == 1 and "(deployer) may not run" in result.stderr, command
    for command in ("postgres:create db2", "postgres:list", "postgres:destroy mine -f", "postgres:expose mine"):
        result = _ssh(h, command)
        assert result.exit_code == 1 and "(deployer) may not run" in result.stderr, command
    assert sorted(STORE.load(h.context, "mine").links) == ["api", "web"]
    assert sorted(STORE.load(h.context, "shared").links) == ["other", "web"]
