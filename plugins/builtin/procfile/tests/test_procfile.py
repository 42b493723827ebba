import json
from pathlib import Path

import pytest

import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.errors import DeployError, ValidationError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source
from skiff_procfile.parse import parse_app_json, parse_procfile

APPS = Path(__file__).resolve().parents[4] / "tests" / "apps"


def test_parse_procfile_processes_and_release():
    text = (
        "# comment\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python worker.py\nrelease: python migrate.py\n"
    )
    processes, release = parse_procfile(text)
    assert processes == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT", "worker": "python worker.py"}
    assert release == "python migrate.py"


def test_command_may_contain_colons():
    processes, _ = parse_procfile("web: sh -c 'echo a:b'\n")
    assert processes["web"] == "sh -c 'echo a:b'"


@pytest.mark.parametrize(
    "text, message",
    [
        ("web: ok\nnot a process line\n", "Procfile line 2: expected 'name: command'"),
        ("web: ok\n\nweb: again\n", "Procfile line 3: duplicate process type web (first defined on line 1)"),
        ("web:\n", "Procfile line 1: process web has an empty command"),
        ("we b: x\n", "Procfile line 1: invalid process name 'we b'"),
        ("web.1: x\n", "Procfile line 1: invalid process name 'web.1'"),
    ],
)
def test_procfile_errors_name_the_line(text, message):
    with pytest.raises(ValidationError) as info:
        parse_procfile(text)
    assert message in str(info.value)


def test_app_json_keeps_what_skiff_uses():
    data = parse_app_json(
        json.dumps(
            {
                "name": "x",
                "scripts": {"dokku": {"predeploy": "python manage.py migrate", "postdeploy": "echo done"}},
                "healthchecks": {"web": [{"type": "startup", "path": "/health"}]},
                "formation": {"web": {"quantity": 2}},
                "env": {"SECRET_KEY": {"generator": "secret"}, "MODE": "prod", "OPTIONAL": {"required": False}},
            }
        )
    )
    assert data["scripts"] == {"dokku": {"predeploy": "python manage.py migrate", "postdeploy": "echo done"}}
    assert data["formation"] == {"web": {"quantity": 2}}
    assert data["healthchecks"]["web"][0]["path"] == "/health"
    assert data["env"]["SECRET_KEY"] == {"required": True, "generator": "secret"}
    assert data["env"]["MODE"]["value"] == "prod"
    assert "name" not in data


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"formation": {"web": {"quantity": -1}}}', "formation.web.quantity must be a whole number"),
        ('{"env": {"1BAD": "x"}}', "invalid config key"),
        ('{"env": {"K": {"generator": "uuid"}}}', 'env.K.generator must be "secret"'),
        ('{\n  "scripts": [\n}', "app.json line 3: invalid JSON"),
        ("[]", "the top level must be an object"),
        ('{"scripts": {"dokku": {"predeploy": 1}}}', "scripts.dokku.predeploy must be a string"),
    ],
)
def test_app_json_errors(text, message):
    with pytest.raises(ValidationError) as info:
        parse_app_json(text)
    assert message in str(info.value)


@pytest.fixture
def harness(skiff):
    h = skiff(DirReceiver(), ("procfile", procfile_plugin), StubBuilder(), StubScheduler())
    h.create_app("demo")
    return h


def _source(tmp_path, files):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    return dir_source(src)


def test_pre_build_fills_the_deploy(harness, tmp_path):
    src = _source(
        tmp_path,
        {
            "Procfile": "web: python app.py\nrelease: python migrate.py\n",
            "app.json": json.dumps(
                {
                    "scripts": {"dokku": {"predeploy": "echo pre"}},
                    "env": {"SECRET_KEY": {"generator": "secret"}, "MODE": {"value": "prod"}},
                }
            ),
        },
    )
    release = lifecycle.deploy(harness.context, "demo", src)
    assert release.processes == {"web": "python app.py"}
    assert release.meta["release_command"] == "python migrate.py"
    assert release.meta["app_json"]["scripts"]["dokku"]["predeploy"] == "echo pre"
    config = harness.state.get_config("demo")
    secret = config["SECRET_KEY"]
    assert len(secret) == 64 and config["MODE"] == "prod"
    assert release.config["SECRET_KEY"] == secret
    # generated once: a second deploy keeps it
    lifecycle.deploy(harness.context, "demo", src)
    assert harness.state.get_config("demo")["SECRET_KEY"] == secret


def test_missing_required_env_stops_the_deploy_and_writes_nothing(harness, tmp_path):
    src = _source(
        tmp_path,
        {"app.json": json.dumps({"env": {"SECRET_KEY": {"generator": "secret"}, "DATABASE_URL": {"required": True}}})},
    )
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(harness.context, "demo", src)
    assert "app.json requires config var DATABASE_URL" in str(info.value)
    assert harness.state.get_config("demo") == {}


def test_bad_procfile_app_fails_with_line_number(harness):
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(harness.context, "demo", dir_source(APPS / "bad-procfile"))
    assert "Procfile line 3" in str(info.value)
    assert harness.state.current_release("demo") is None


def test_error_is_one_line(harness, tmp_path):
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(harness.context, "demo", _source(tmp_path, {"Procfile": "web\n"}))
    assert str(info.value).startswith("pre-build failed: Procfile line 1: expected 'name: command'")
    assert "\n" not in str(info.value)


def test_app_json_cron_keeps_command_and_schedule():
    jobs = [
        {"command": "echo tick | tr a-z A-Z && echo $DYNO", "schedule": "*/5 * * * *"},
        {"command": "python3 manage.py clearsessions", "schedule": "@daily", "concurrency_policy": "forbid"},
    ]
    data = parse_app_json(json.dumps({"cron": jobs}))
    assert data["cron"] == [jobs[0], {"command": "python3 manage.py clearsessions", "schedule": "@daily"}]


@pytest.mark.parametrize(
    "job, message",
    [
        ({"command": "echo a\necho b", "schedule": "* * * * *"}, "cron[0]: invalid cron command 'echo a\\necho b'"),
        ({"command": "echo \x00", "schedule": "* * * * *"}, "holds a NUL byte"),
        ({"command": "echo", "schedule": "* * * *"}, "cron[0]: invalid cron schedule '* * * *': give five fields"),
        ({"command": "echo", "schedule": "60 * * * *"}, "minute: 60 is out of range 0-59"),
        ({"command": "echo", "schedule": "0 0 31 2 *"}, "no month of it has day 31"),
        ({"command": "echo", "schedule": "* * * * *\n* * * * * id"}, "invalid cron schedule"),
        ({"command": "echo"}, "cron[0] has no schedule"),
        ({"schedule": "@daily"}, "cron[0] has no command"),
        ({"command": ["echo"], "schedule": "@daily"}, "cron[0].command must be a string"),
        ("echo", "cron[0] must be an object"),
    ],
)
def test_app_json_cron_errors(job, message):
    with pytest.raises(ValidationError) as info:
        parse_app_json(json.dumps({"cron": [job]}))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_bad_cron_job_stops_the_deploy_before_anything_is_written(harness, tmp_path):
    src = _source(
        tmp_path,
        {
            "app.json": json.dumps(
                {"env": {"MODE": {"value": "prod"}}, "cron": [{"command": "echo\nid", "schedule": "@daily"}]}
            )
        },
    )
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(harness.context, "demo", src)
    assert "cron[0]: invalid cron command" in str(info.value)
    assert harness.state.get_config("demo") == {} and harness.state.current_release("demo") is None
