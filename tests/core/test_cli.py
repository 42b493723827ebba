import os

from skiff import __version__


def test_help_lists_builtin_commands(run_skiff):
    result = run_skiff("--help")
    assert result.returncode == 0
    for command in ("apps:create", "config:set", "plugin:list", "version", "help"):
        assert command in result.stdout
    assert run_skiff("help").stdout == result.stdout
    assert "KEY=VALUE" in run_skiff("help", "config:set").stdout


def test_version(run_skiff):
    assert run_skiff("version").stdout.strip() == f"skiff {__version__}"


def test_unknown_command_suggests_and_fails_in_one_line(run_skiff):
    result = run_skiff("apps:lst")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["!     unknown command 'apps:lst'; did you mean apps:list?"]


def test_errors_are_one_line_without_traceback(run_skiff):
    result = run_skiff("apps:create", "Bad_Name")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("!     invalid app name 'Bad_Name'")
    assert "Traceback" not in result.stderr
    traced = run_skiff("apps:create", "Bad_Name", env={"SKIFF_TRACE": "1"})
    assert "Traceback" in traced.stderr


def test_invalid_app_names_create_nothing(run_skiff, skiff_root):
    for name in ["../x", "a;b", "$(id)", "'q'", "/abs", "-x", "x-", "A", "a" * 49, ""]:
        result = run_skiff("apps:create", name)
        assert result.returncode != 0, name
    assert run_skiff("apps:list").stdout.strip() == "=====> My Apps"
    assert not (skiff_root / "..x").exists()


def test_usage_errors_are_one_line(run_skiff):
    result = run_skiff("config:get")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("!     ")


def test_ssh_command_dispatches_and_refuses(run_skiff):
    ok = run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": "apps:create 'catmeow'"})
    assert ok.returncode == 0
    assert "catmeow" in run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": "apps:list"}).stdout
    for command in ["bash", "sh -c id", "plugin:install evil", "plugin:disable apps", "ssh-command", "'unterminated"]:
        result = run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": command})
        assert result.returncode == 1, command
        assert result.stderr.startswith("!     "), command
    empty = run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": ""})
    assert empty.returncode == 0 and "Commands:" in empty.stdout
    unset = run_skiff("ssh-command", env={k: v for k, v in os.environ.items() if k != "SSH_ORIGINAL_COMMAND"})
    assert unset.returncode == 0 and "Commands:" in unset.stdout


def test_ssh_command_never_runs_a_shell(run_skiff, tmp_path):
    marker = tmp_path / "pwned"
    for command in [
        f"apps:list; touch {marker}",
        f"apps:list && touch {marker}",
        f"$(touch {marker})",
        f"apps:create `touch {marker}`",
    ]:
        run_skiff("ssh-command", env={"SSH_ORIGINAL_COMMAND": command})
    assert not marker.exists()


def test_oversized_input_is_not_echoed_in_full(run_skiff):
    result = run_skiff("apps:create", "a" * 5000)
    assert result.returncode == 1
    assert len(result.stderr) < 300 and "(5000 chars)" in result.stderr
