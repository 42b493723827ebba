import threading
import time

import pytest

from skiff import hookimpl, lifecycle
from skiff.errors import DeployError, SkiffError
from skiff.testing import LIFECYCLE_HOOKS, DirReceiver, HookRecorder, StubBuilder, StubScheduler, dir_source


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print('hi')\n")
    return src


def _harness(skiff, *plugins):
    recorder = HookRecorder()
    h = skiff(("recorder", recorder), ("receiver", DirReceiver()), *plugins)
    h.create_app("web")
    return h, recorder


def test_hooks_run_in_order_on_one_deploy_object(skiff, source):
    h, recorder = _harness(skiff, ("builder", StubBuilder()), ("scheduler", StubScheduler()))
    release = lifecycle.deploy(h.context, "web", dir_source(source, "abc1234def"))
    assert recorder.names == list(LIFECYCLE_HOOKS)
    deploys = {id(d) for _, d in recorder.calls}
    assert len(deploys) == 1
    d = recorder.calls[0][1]
    assert release.version == 1 and release.status == "succeeded"
    assert release.image == "stub:web-1" and release.revision == "abc1234def"
    assert set(release.timings) >= {"receive", "pre_build", "build", "release", "deploy", "post_deploy", "total"}
    assert h.state.current_release("web").version == 1
    assert d.description == "Deploy abc1234"


def test_build_failure_calls_deploy_failed_and_keeps_current(skiff, source):
    builder = StubBuilder()
    h, recorder = _harness(skiff, ("builder", builder), ("scheduler", StubScheduler()))
    lifecycle.deploy(h.context, "web", dir_source(source))
    builder.fail = True
    recorder.calls.clear()
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(h.context, "web", dir_source(source))
    assert info.value.phase == "build"
    assert "build failed: stub build failed; v1 keeps serving" in str(info.value)
    name, (deploy, phase, error) = recorder.calls[-1]
    assert name == "skiff_deploy_failed" and phase == "build" and isinstance(error, RuntimeError)
    assert "skiff_release" not in recorder.names
    assert h.state.current_release("web").version == 1
    assert [r.version for r in h.state.releases("web")] == [1]


class FailingScheduler:
    @hookimpl
    def skiff_deploy(self, deploy):
        raise SkiffError("health check failed")


class BrokenCleanup:
    @hookimpl
    def skiff_deploy_failed(self, deploy, phase, error):
        raise RuntimeError("cleanup exploded")


def test_deploy_failure_after_release_marks_it_failed(skiff, source, capsys):
    h, recorder = _harness(
        skiff, ("builder", StubBuilder()), ("scheduler", FailingScheduler()), ("broken", BrokenCleanup())
    )
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(h.context, "web", dir_source(source))
    assert info.value.phase == "deploy"
    assert [r.status for r in h.state.releases("web")] == ["failed"]
    assert h.state.current_release("web") is None
    assert "skiff_deploy_failed" in recorder.names  # still called after another cleanup raised
    assert "cleanup by broken failed: cleanup exploded" in capsys.readouterr().err


def test_redeploy_runs_from_release_with_current_image(skiff, source):
    scheduler = StubScheduler()
    h, recorder = _harness(skiff, ("builder", StubBuilder()), ("scheduler", scheduler))
    lifecycle.deploy(h.context, "web", dir_source(source, "r1"))
    h.state.set_config("web", {"GREETING": "meow"})
    recorder.calls.clear()
    release = lifecycle.redeploy(h.context, "web", "Set GREETING")
    assert recorder.names == ["skiff_release", "skiff_deploy", "skiff_post_deploy"]
    assert release.version == 2 and release.image == "stub:web-1" and release.config["GREETING"] == "meow"
    assert release.description == "Set GREETING"
    assert scheduler.deployed == [("web", 1), ("web", 2)]


def test_rollback_uses_old_image_and_config(skiff, source):
    h, _ = _harness(skiff, ("builder", StubBuilder()), ("scheduler", StubScheduler()))
    h.state.set_config("web", {"V": "1"})
    lifecycle.deploy(h.context, "web", dir_source(source))
    h.state.set_config("web", {"V": "2"})
    lifecycle.deploy(h.context, "web", dir_source(source))
    target = lifecycle.rollback_target(h.context, "web", None)
    assert target.version == 1
    release = lifecycle.redeploy(h.context, "web", "Rollback to v1", base=target, use_base_config=True)
    assert release.version == 3 and release.image == "stub:web-1" and release.config["V"] == "1"


def test_redeploy_without_release_is_a_clear_error(skiff):
    h, _ = _harness(skiff, ("scheduler", StubScheduler()))
    with pytest.raises(SkiffError, match="has not been deployed yet"):
        lifecycle.redeploy(h.context, "web", "Set X")


def test_missing_receiver_builder_and_scheduler_are_named(skiff, source):
    h = skiff(("receiver", DirReceiver()))
    h.create_app("web")
    with pytest.raises(DeployError, match="no builder"):
        lifecycle.deploy(h.context, "web", dir_source(source))
    from skiff.deploy import Source

    with pytest.raises(DeployError, match="no plugin can receive ftp sources"):
        lifecycle.deploy(h.context, "web", Source(kind="ftp", location="x"))
    h2 = skiff(("receiver", DirReceiver()), ("builder", StubBuilder()))
    with pytest.raises(DeployError, match="no scheduler"):
        lifecycle.deploy(h2.context, "web", dir_source(source))


class SlowScheduler:
    def __init__(self):
        self.active = 0
        self.max_active = 0

    @hookimpl
    def skiff_deploy(self, deploy):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        time.sleep(0.3)
        self.active -= 1
        return True


def test_second_deploy_waits_for_the_lock_and_says_so(skiff, source, capsys):
    scheduler = SlowScheduler()
    h, _ = _harness(skiff, ("builder", StubBuilder()), ("scheduler", scheduler))
    contexts = [
        h.context,
        skiff(("receiver", DirReceiver()), ("builder", StubBuilder()), ("scheduler", scheduler)).context,
    ]
    errors = []

    def run(ctx):
        try:
            lifecycle.deploy(ctx, "web", dir_source(source))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for c in contexts:
        c.close()  # each thread opens its own connection
    threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert scheduler.max_active == 1
    assert [r.version for r in h.state.releases("web", "succeeded")] == [1, 2]
    assert "Waiting for another deploy of web to finish" in capsys.readouterr().out


def test_lock_timeout_is_configurable(skiff, source, monkeypatch):
    h, _ = _harness(skiff, ("builder", StubBuilder()), ("scheduler", StubScheduler()))
    monkeypatch.setenv("SKIFF_LOCK_TIMEOUT", "0.2")
    with lifecycle.app_lock(h.context, "web"):
        other = skiff(("receiver", DirReceiver()), ("builder", StubBuilder()), ("scheduler", StubScheduler()))
        with pytest.raises(SkiffError, match="timed out after 0.2s"):
            lifecycle.deploy(other.context, "web", dir_source(source))


class RevisionEnv:
    @hookimpl
    def skiff_pre_build(self, deploy):
        deploy.config["GIT_REV"] = deploy.revision


def test_release_env_from_plugins_survives_redeploys_not_rollbacks(skiff, source):
    h, _ = _harness(skiff, ("builder", StubBuilder()), ("scheduler", StubScheduler()), ("rev", RevisionEnv()))
    h.state.set_config("web", {"GIT_REV": "user value loses", "A": "1"})
    first = lifecycle.deploy(h.context, "web", dir_source(source, "rev1"))
    assert first.config == {"GIT_REV": "rev1", "A": "1"}
    lifecycle.deploy(h.context, "web", dir_source(source, "rev2"))
    h.state.set_config("web", {"B": "2"})
    redeployed = lifecycle.redeploy(h.context, "web", "Set B")
    assert redeployed.config["GIT_REV"] == "rev2" and redeployed.config["B"] == "2"
    rolled = lifecycle.redeploy(h.context, "web", "Rollback", base=first, use_base_config=True)
    assert rolled.config == {"GIT_REV": "rev1", "A": "1"}
