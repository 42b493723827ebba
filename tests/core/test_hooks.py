"""Every hook has a test: HOOK_TESTS names, for each hookspec (core and buildpacks), the tests that
call it and check its effect (docs/hooks.md is checked in test_hook_docs.py)."""

import ast
import re
from pathlib import Path

import click
import pytest

import skiff_apps.plugin as apps_plugin
import skiff_buildpacks.hookspecs as buildpack_hookspecs
import skiff_stack.hookspecs as stack_hookspecs
from skiff import hookimpl, hookspecs
from skiff.testing import LIFECYCLE_HOOKS

ROOT = Path(__file__).resolve().parents[2]


def _hook_names(path: Path = Path(hookspecs.__file__)) -> list[str]:
    tree = ast.parse(path.read_text())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("skiff_")]


# What makes the core call a hook besides ``pm.hook.skiff_X(...)``: calls whose name is one of these.
LIFECYCLE_DRIVERS = {"deploy", "redeploy"}  # skiff.lifecycle.deploy / redeploy
DRIVERS = {
    **{name: LIFECYCLE_DRIVERS for name in (*LIFECYCLE_HOOKS, "skiff_deploy_failed")},
    "skiff_commands": {"invoke", "run_skiff", "build_cli"},
    "skiff_settings": {"invoke", "run_skiff", "build_cli", "ssh", "namespaces"},
    "skiff_app_created": {"invoke", "run_skiff"},
    "skiff_app_destroyed": {"invoke", "run_skiff"},
    "skiff_app_renamed": {"invoke", "run_skiff"},
    "skiff_report": {"invoke", "run_skiff"},
    "skiff_addhooks": {"make_plugin_manager", "build_plugin_manager"},
    "skiff_upgrade": {"invoke", "run_skiff"},  # state:migrate
    "skiff_backup_parts": {"invoke", "run_skiff"},  # state:backup, state:restore
    "skiff_container_options": {"container_options"},  # skiff_docker.scheduler
    "skiff_periodic_tasks": {"collect", "invoke"},  # skiff_cron.runner (the runner, cron:report)
    "skiff_run_oneoff": {"invoke", "run_job"},  # skiff_cron.commands (cron:run)
    "skiff_app_logs": {"invoke"},  # the docker plugin's logs command
    "skiff_site_certificate_renewed": {"invoke"},  # letsencrypt:auto-renew
    # the docker plugin's ps:stop, ps:start, ps:report (through lifecycle_ops)
    "skiff_app_stop": {"invoke", "stop"},
    "skiff_app_start": {"invoke", "start"},
    "skiff_app_status": {"invoke", "report"},
    "skiff_app_enter": {"invoke"},  # the docker plugin's enter command
    # asked by the service plugins (postgres, redis) when they attach a linked service
    "skiff_link_network": {"invoke", "link_network"},
    "skiff_boot": {"invoke", "run_skiff", "_skiff", "boot"},  # ps:restore (a test runs the CLI: _skiff)
    # asked by a multi-node scheduler (swarm) before it creates services; the tests call it directly
    "skiff_image_for_nodes": set(),
    "skiff_builders": {*LIFECYCLE_DRIVERS, "invoke", "run_skiff", "installed_builders", "installed", "choose"},
    # asked by the SSH dispatch (skiff ssh-command) before a command runs
    **{
        name: {"invoke", "run_skiff", "ssh", "_ssh", "over_ssh"}
        for name in ("skiff_key_role", "skiff_app_access", "skiff_service_apps")
    },
}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _direct_hook_calls(node: ast.AST) -> set[str]:
    """Hooks called as ``<...>.hook.skiff_X(...)`` or ``<...>.hook.skiff_X.call_historic(...)``."""
    called = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        func = call.func
        if func.attr == "call_historic" and isinstance(func.value, ast.Attribute):
            func = func.value
        if func.attr.startswith("skiff_") and isinstance(func.value, (ast.Attribute, ast.Name)):
            owner = func.value.attr if isinstance(func.value, ast.Attribute) else func.value.id
            if owner == "hook":
                called.add(func.attr)
    return called


def _mentioned(node: ast.AST, classes: dict[str, set[str]]) -> set[str]:
    """Hook names a test names: identifiers, strings, LIFECYCLE_HOOKS, hookimpls of classes it uses."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
            found.update(classes.get(sub.id, ()))
            if sub.id == "LIFECYCLE_HOOKS":
                found.update(LIFECYCLE_HOOKS)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.update(re.findall(r"skiff_[a-z_]+", sub.value))
    return found


def _asserts(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Assert) for sub in ast.walk(node)) or "raises" in _called_names(node)


def _tested_hooks(path: Path) -> set[str]:
    """Hooks that some test function of ``path`` both triggers and checks."""
    tree = ast.parse(path.read_text())
    classes = {
        node.name: {
            item.name for item in node.body if isinstance(item, ast.FunctionDef) and item.name.startswith("skiff_")
        }
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    tested = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and _asserts(node)):
            continue
        mentioned, called = _mentioned(node, classes), _called_names(node)
        tested |= _direct_hook_calls(node)
        tested |= {hook for hook, drivers in DRIVERS.items() if hook in mentioned and called & drivers}
    return tested


LIFECYCLE = "tests/core/test_lifecycle.py"
APP_EVENTS = "tests/core/test_hooks.py::test_app_event_hooks_and_report_and_commands"
BUILDPACK_HOOKS = (
    "plugins/builtin/buildpacks/tests/test_packs.py::test_every_buildpack_hook_answers_through_the_plugin_manager"
)

#: Every hook (core/skiff/hookspecs.py and skiff_buildpacks/hookspecs.py) -> the tests that call
#: it and assert its effect. A new hook needs an entry (and a test) here.
HOOK_TESTS: dict[str, list[str]] = {
    **{
        hook: [
            "plugins/builtin/nginx/tests/test_proxy.py::test_certificate_hooks_install_read_and_remove_like_certs_add"
        ]
        for hook in ("skiff_app_domains", "skiff_app_certificate", "skiff_certificate_install")
    },
    "skiff_receive": [f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object"],
    "skiff_pre_build": [f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object"],
    "skiff_build": [
        f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object",
        "tests/core/test_builders.py::test_a_chosen_builder_that_returns_nothing_is_named",
    ],
    "skiff_builders": [
        "tests/core/test_builders.py::test_duplicate_names_first_implementation_wins",
        "plugins/builtin/dockerfile/tests/test_dockerfile.py::test_builder_set_accepts_any_installed_builder",
    ],
    "skiff_release": [
        f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object",
        f"{LIFECYCLE}::test_redeploy_runs_from_release_with_current_image",
    ],
    "skiff_deploy": [
        f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object",
        f"{LIFECYCLE}::test_deploy_failure_after_release_marks_it_failed",
    ],
    "skiff_post_deploy": [
        f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object",
        "tests/core/test_hello_hook.py::test_install_list_use_and_deploy_hook",
    ],
    "skiff_deploy_failed": [
        f"{LIFECYCLE}::test_build_failure_calls_deploy_failed_and_keeps_current",
        f"{LIFECYCLE}::test_deploy_failure_after_release_marks_it_failed",
    ],
    "skiff_addhooks": ["tests/core/test_plugins.py::test_addhooks_lets_plugins_declare_hooks_in_any_order"],
    "skiff_commands": [APP_EVENTS],
    "skiff_app_created": [APP_EVENTS],
    "skiff_app_destroyed": [APP_EVENTS],
    "skiff_app_renamed": [APP_EVENTS],
    "skiff_upgrade": [
        "tests/core/test_upgrade.py::test_skiff_upgrade_makes_old_repositories_private_and_removes_stored_credentials"
    ],
    "skiff_report": [APP_EVENTS],
    "skiff_backup_parts": [
        "tests/core/test_backup.py::test_backup_and_restore_bring_the_store_files_and_dumps_back_in_order",
        "tests/core/test_backup_parts.py::test_the_installed_plugins_declare_what_the_server_holds",
    ],
    "skiff_container_options": [
        "plugins/builtin/docker/tests/test_units.py::test_skiff_container_options_reach_process_and_oneoff_containers"
    ],
    "skiff_settings": ["tests/core/test_settings.py::test_set_and_report_for_free"],
    "skiff_periodic_tasks": [
        "plugins/contrib/cron/tests/test_cron_unit.py::test_periodic_tasks_skip_suspended_apps_and_the_runner_starts_what_is_due",
        "plugins/contrib/cron/tests/test_cron_unit.py::test_a_bad_periodic_task_is_reported_and_skipped",
        "plugins/builtin/docker/tests/test_units.py::test_cleanup_is_a_periodic_task_on_its_schedule",
    ],
    "skiff_run_oneoff": [
        "plugins/builtin/docker/tests/test_units.py::test_skiff_run_oneoff_runs_the_current_release_with_bounded_logs",
        "plugins/contrib/cron/tests/test_cron_unit.py::test_cron_run_goes_through_skiff_run_oneoff_and_records_the_run",
    ],
    "skiff_key_role": ["tests/core/test_access.py::test_the_builtin_plugins_answer_the_access_hooks"],
    "skiff_key_exists": [
        "plugins/contrib/dashboard/tests/test_dashboard_unit.py::test_the_ssh_keys_plugin_answers_skiff_key_exists"
    ],
    "skiff_global_domains": ["plugins/builtin/nginx/tests/test_sites.py::test_global_domains_are_the_proxys"],
    "skiff_proxy_site": [
        "plugins/builtin/nginx/tests/test_sites.py::test_a_site_is_served_with_its_stream_path_unbuffered_then_removed"
    ],
    "skiff_site_certificate": [
        "plugins/contrib/letsencrypt/tests/test_letsencrypt_unit.py::"
        "test_a_site_certificate_is_ordered_once_kept_private_and_ordered_again_for_a_new_name",
        "plugins/contrib/letsencrypt/tests/test_letsencrypt_unit.py::"
        "test_a_bad_site_or_domain_is_refused_before_any_order",
    ],
    "skiff_site_certificate_renewed": [
        "plugins/contrib/dashboard/tests/test_dashboard_unit.py::"
        "test_skiff_site_certificate_renewed_installs_the_dashboards_renewal_only_while_it_is_ours",
        "plugins/contrib/letsencrypt/tests/test_letsencrypt_unit.py::"
        "test_auto_renew_renews_a_due_site_and_hands_the_files_to_its_plugin",
    ],
    "skiff_app_access": [
        "tests/core/test_access.py::test_the_builtin_plugins_answer_the_access_hooks",
        "plugins/builtin/acl/tests/test_acl.py::test_lists_answer_skiff_app_access",
    ],
    "skiff_service_apps": [
        "plugins/contrib/postgres/tests/test_postgres_access.py::test_service_apps_hook_answers_for_postgres_only"
    ],
    "skiff_image_for_nodes": [
        "plugins/contrib/registry/tests/test_registry_unit.py::test_skiff_image_for_nodes_tags_and_pushes_with_the_stored_credentials"
    ],
    "skiff_app_stop": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::"
        "test_ps_stop_scales_to_zero_ps_start_brings_the_release_back_and_nginx_follows"
    ],
    "skiff_app_start": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::"
        "test_ps_stop_scales_to_zero_ps_start_brings_the_release_back_and_nginx_follows"
    ],
    "skiff_app_status": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::"
        "test_ps_stop_scales_to_zero_ps_start_brings_the_release_back_and_nginx_follows"
    ],
    "skiff_app_enter": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::"
        "test_enter_execs_in_a_task_on_the_manager_and_names_the_node_of_one_it_cannot_reach"
    ],
    "skiff_link_network": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::"
        "test_a_swarm_app_names_its_overlay_for_linked_services_and_destroy_takes_them_off_it"
    ],
    "skiff_boot": [
        "plugins/contrib/registry/tests/test_registry_restore_e2e.py::"
        "test_ps_restore_starts_the_served_registry_again_with_its_account_until_it_is_stopped"
    ],
    "skiff_app_logs": [
        "plugins/contrib/swarm/tests/test_swarm_units.py::test_logs_prefix_each_line_with_its_process_and_slot"
    ],
    "skiff_buildpack_describe": [BUILDPACK_HOOKS],
    "skiff_buildpack_detect": [BUILDPACK_HOOKS],
    "skiff_buildpack_dependencies": [BUILDPACK_HOOKS],
    "skiff_buildpack_compile": [BUILDPACK_HOOKS],
    "skiff_buildpack_processes": [BUILDPACK_HOOKS],
    "skiff_stack_suites": ["plugins/builtin/stack/tests/test_stack.py::test_skiff_stack_suites_lists_the_known_suites"],
    "skiff_stack_ensure": [
        "plugins/builtin/stack/tests/test_stack.py::test_skiff_stack_ensure_builds_a_missing_stack_once_for_two_pushes"
    ],
    "skiff_stack_run_image": [
        "plugins/builtin/stack/tests/test_stack.py::"
        "test_skiff_stack_run_image_derives_once_then_reuses_and_follows_the_build_image"
    ],
}


def _all_hook_names() -> list[str]:
    return _hook_names() + _hook_names(Path(buildpack_hookspecs.__file__)) + _hook_names(Path(stack_hookspecs.__file__))


def _test_function(node_id: str) -> tuple[ast.FunctionDef, str, dict[str, set[str]]]:
    """The test's function node (parsed, not imported), its source and the hookimpls of the file's classes."""
    path, _, name = node_id.partition("::")
    text = (ROOT / path).read_text()
    tree = ast.parse(text)
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
    assert found, f"{node_id}: no test function {name} in {path}"
    return found[0], ast.get_source_segment(text, found[0]) or "", _hookimpl_classes(tree)


def _hookimpl_classes(tree: ast.AST) -> dict[str, set[str]]:
    return {
        node.name: {
            item.name for item in node.body if isinstance(item, ast.FunctionDef) and item.name.startswith("skiff_")
        }
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


def _names_the_hook(hook: str, node: ast.FunctionDef, source: str, classes: dict[str, set[str]]) -> bool:
    """The test names the hook, its phase (a lifecycle hook), or uses a class of its file implementing it."""
    if hook in source:
        return True
    if hook in LIFECYCLE_HOOKS and ("LIFECYCLE_HOOKS" in source or f'"{hook.removeprefix("skiff_")}"' in source):
        return True
    return any(hook in classes.get(sub.id, ()) for sub in ast.walk(node) if isinstance(sub, ast.Name))


def _triggers_the_hook(hook: str, node: ast.FunctionDef) -> bool:
    """``pm.hook.<hook>(...)`` in the test, or a call of what calls it (a buildpack hook: only the former)."""
    return hook in _direct_hook_calls(node) or bool(_called_names(node) & DRIVERS.get(hook, set()))


def test_every_hook_has_a_test() -> None:
    """Every hook is in HOOK_TESTS; every test named there exists, calls the hook, names it and asserts."""
    assert sorted(HOOK_TESTS) == sorted(_all_hook_names()), "HOOK_TESTS needs exactly one entry per hookspec"
    for hook, node_ids in HOOK_TESTS.items():
        assert node_ids, f"{hook} has no test"
        for node_id in node_ids:
            node, source, classes = _test_function(node_id)
            assert node.name.startswith("test_"), node_id
            assert _asserts(node), f"{node_id} asserts nothing"
            assert _names_the_hook(hook, node, source, classes), f"{node_id} does not name {hook}"
            assert _triggers_the_hook(hook, node), f"{node_id} does not call {hook} (nor what calls it)"


def test_the_hook_registry_check_refuses_a_test_that_does_not_call_the_hook() -> None:
    named_only = f"{LIFECYCLE}::test_hooks_run_in_order_on_one_deploy_object"
    node, source, classes = _test_function(named_only)
    assert _names_the_hook("skiff_receive", node, source, classes)
    assert not _triggers_the_hook("skiff_buildpack_detect", node)
    assert not _names_the_hook("skiff_report", node, source, classes)
    with pytest.raises(AssertionError, match="no test function"):
        _test_function(f"{LIFECYCLE}::test_that_does_not_exist")


def test_the_hook_test_finder_needs_a_call_and_an_assert(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "def test_named_only():\n    assert 'skiff_report'\n"
        "def test_called_without_assert(h):\n    h.context.hook.skiff_app_created(context=None, app='a')\n"
        "def test_direct(h):\n    assert h.context.hook.skiff_receive(deploy=None) is None\n"
        "def test_driven(h):\n    release = lifecycle.deploy(h.context, 'web', None)\n"
        "    assert recorder.names == list(LIFECYCLE_HOOKS)\n"
    )
    assert _tested_hooks(probe) == {"skiff_receive", *LIFECYCLE_HOOKS}


class AppEvents:
    def __init__(self):
        self.events = []

    @hookimpl
    def skiff_app_created(self, context, app):
        self.events.append(("skiff_app_created", app))

    @hookimpl
    def skiff_app_destroyed(self, context, app):
        # called before the state is removed: the plugin can still read it
        self.events.append(("skiff_app_destroyed", app, context.state.get_config(app)))

    @hookimpl
    def skiff_app_renamed(self, context, old, new):
        self.events.append(("skiff_app_renamed", old, new))

    @hookimpl
    def skiff_report(self, context, app):
        return {"events": {"count": len(self.events)}}

    @hookimpl
    def skiff_commands(self, cli: click.Group):
        @cli.command("events:count")
        def count():
            """Print how many app events were seen."""
            click.echo(str(len(self.events)))


def test_app_event_hooks_and_report_and_commands(skiff):
    events = AppEvents()
    h = skiff(("apps", apps_plugin), ("events", events))
    assert h.invoke("apps:create", "one").exit_code == 0
    h.state.set_config("one", {"A": "1"})
    assert h.invoke("apps:rename", "one", "two").exit_code == 0
    report = h.invoke("apps:report", "two", "--format", "json")
    assert '"count": 2' in report.stdout and '"name": "two"' in report.stdout
    assert h.invoke("apps:destroy", "two", "--force").exit_code == 0
    assert events.events == [
        ("skiff_app_created", "one"),
        ("skiff_app_renamed", "one", "two"),
        ("skiff_app_destroyed", "two", {"A": "1"}),
    ]
    assert h.invoke("events:count").stdout.strip() == "3"
    assert "events:count" in h.invoke("--help").stdout
