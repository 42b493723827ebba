import os
import stat

import pytest

from skiff.errors import NotFound, SkiffError, ValidationError
from skiff.state import GLOBAL, MIGRATIONS, State

TRICKY = ["line1\nline2", 'it\'s "quoted"', "a=b=c", "ünïcødé ☕", "$(id) `id` ${HOME}", "", " spaced "]


@pytest.fixture
def state(tmp_path):
    s = State(tmp_path)
    yield s
    s.close()


def test_database_is_private_and_versioned(state, tmp_path):
    state.create_app("web")
    mode = stat.S_IMODE(os.stat(tmp_path / "skiff.db").st_mode)
    assert mode == 0o600
    assert state.schema_version == len(MIGRATIONS)
    assert state.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("value", TRICKY)
def test_config_values_round_trip_verbatim(state, value):
    state.create_app("web")
    state.set_config("web", {"KEY": value})
    state.close()
    assert state.get_config("web") == {"KEY": value}


def test_global_config_is_inherited_and_overridden(state):
    state.create_app("web")
    state.set_config(GLOBAL, {"A": "global", "B": "global"})
    state.set_config("web", {"B": "app"})
    assert state.effective_config("web") == {"A": "global", "B": "app"}


def test_invalid_keys_change_nothing(state):
    state.create_app("web")
    with pytest.raises(ValidationError):
        state.set_config("web", {"GOOD": "1", "BAD-KEY": "2"})
    assert state.get_config("web") == {}


def test_rename_moves_everything(state):
    state.create_app("old")
    state.set_config("old", {"A": "1"})
    state.set_property("docker", "formation", {"web": 2}, app="old")
    release = state.create_release("old", description="d", image="i", revision="r", config={}, processes={}, meta={})
    state.finish_release(release, "succeeded", {})
    state.rename_app("old", "new")
    assert state.list_apps() == ["new"]
    assert state.get_config("new") == {"A": "1"}
    assert state.get_property("docker", "formation", app="new") == {"web": 2}
    assert state.current_release("new").version == 1
    with pytest.raises(SkiffError):
        state.rename_app("new", "new")


def test_destroy_removes_all_rows(state):
    state.create_app("web")
    state.set_config("web", {"A": "1"})
    state.set_property("p", "k", 1, app="web")
    state.destroy_app("web")
    state.create_app("web")
    assert state.get_config("web") == {} and state.properties("p", app="web") == {}
    assert state.releases("web") == []


def test_release_versions_and_current(state):
    state.create_app("web")
    first = state.create_release(
        "web", description="one", image="a", revision=None, config={"A": "1"}, processes={"web": "x"}, meta={"k": [1]}
    )
    state.finish_release(first, "succeeded", {"build": 1.0})
    second = state.create_release("web", description="two", image="b", revision=None, config={}, processes={}, meta={})
    state.finish_release(second, "failed", {})
    assert [r.version for r in state.releases("web")] == [1, 2]
    current = state.current_release("web")
    assert current.version == 1 and current.meta == {"k": [1]} and current.timings == {"build": 1.0}
    with pytest.raises(NotFound):
        state.get_release("web", 9)


def test_pending_releases_of_killed_deploys_fail(state):
    state.create_app("web")
    state.create_release("web", description="x", image=None, revision=None, config={}, processes={}, meta={})
    assert state.fail_pending_releases("web") == 1
    assert state.releases("web")[0].status == "failed"
