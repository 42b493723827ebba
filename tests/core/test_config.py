import os
import subprocess
import sys

from skiff import lifecycle
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source, stub_env


def test_config_commands_round_trip(run_skiff):
    run_skiff("apps:create", "web")
    value = "multi\nline 'quoted' $(id) = ☕"
    assert run_skiff("config:set", "web", f"TRICKY={value}", "PLAIN=1").returncode == 0
    assert run_skiff("config:get", "web", "TRICKY").stdout == value + "\n"
    exported = run_skiff("config:export", "web").stdout
    env = subprocess.run(["bash", "-c", exported + '\nprintf %s "$TRICKY"'], capture_output=True, text=True).stdout
    assert env == value
    assert run_skiff("config:keys", "web").stdout.split() == ["PLAIN", "TRICKY"]
    assert run_skiff("config:unset", "web", "PLAIN").returncode == 0
    assert run_skiff("config:get", "web", "PLAIN").returncode == 1


def test_bad_keys_change_nothing(run_skiff):
    run_skiff("apps:create", "web")
    result = run_skiff("config:set", "web", "GOOD=1", "BAD-KEY=2")
    assert result.returncode == 1 and "invalid config key 'BAD-KEY'" in result.stderr
    assert run_skiff("config:keys", "web").stdout == ""
    assert run_skiff("config:set", "web", "NOEQUALS").returncode == 1
    assert run_skiff("config:set", "nosuch", "A=1").returncode == 1


def test_global_config(run_skiff):
    run_skiff("apps:create", "web")
    run_skiff("config:set", "--global", "REGION=eu")
    assert run_skiff("config:get", "--global", "REGION").stdout == "eu\n"
    assert "REGION=eu" in run_skiff("config:export", "--format", "shell", "web").stdout


def test_eight_concurrent_config_sets_lose_no_key(skiff, skiff_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    h = skiff(("receiver", DirReceiver()), ("builder", StubBuilder()), ("scheduler", StubScheduler()))
    h.create_app("web")
    lifecycle.deploy(h.context, "web", dir_source(src))
    h.context.close()
    env = {**os.environ, "SKIFF_ROOT": str(skiff_root), **stub_env("apps", "config")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "skiff", "config:set", "web", f"KEY_{i}=value {i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [code for _, _, code in results] == [0] * 8, results
    config = h.state.get_config("web")
    assert config == {f"KEY_{i}": f"value {i}" for i in range(8)}
    releases = h.state.releases("web", "succeeded")
    assert len(releases) == 9
    assert releases[-1].config == config  # the last redeploy saw every key
