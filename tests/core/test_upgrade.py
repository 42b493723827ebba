"""Upgrades keep what users have: a store written by an earlier schema opens, migrates, keeps all.

``fixtures/state-vN.sql`` are dumps of stores that earlier versions wrote with their real
commands; ``fixtures/authorized_keys-vN`` the key lines they wrote. A new migration must keep
every assertion here passing.
"""

import json
import sqlite3
from pathlib import Path

import pytest

from skiff.state import SCHEMA_VERSION, State

FIXTURES = Path(__file__).parent / "fixtures"
STORES = sorted(FIXTURES.glob("state-v*.sql"))


def _load(sql: Path, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    db = root / State.filename
    conn = sqlite3.connect(db)
    conn.executescript(sql.read_text())
    conn.close()
    return db


@pytest.mark.parametrize("fixture", STORES, ids=[p.stem for p in STORES])
def test_an_earlier_store_migrates_and_keeps_everything(fixture, skiff_root, run_skiff):
    _load(fixture, skiff_root)
    old_version = int(fixture.stem.removeprefix("state-v"))
    result = run_skiff("state:migrate")
    assert result.returncode == 0, result.stderr
    if old_version < SCHEMA_VERSION:
        assert f"migrated schema {old_version} -> {SCHEMA_VERSION}" in result.stdout
    else:
        assert f"schema {SCHEMA_VERSION}, up to date" in result.stdout
    state = State(skiff_root)
    try:
        assert state.schema_version == SCHEMA_VERSION
        assert state.list_apps() == ["catmeow", "pgapp"]
        assert state.get_config("catmeow") == {"GREETING": "meow", "SECRET_KEY": "s3cr=t"}
        assert state.get_config() == {"TZ": "UTC"}
        assert state.get_config("pgapp")["DATABASE_URL"].startswith("postgres://postgres:pw-0123456789@")
        assert [(r.version, r.status) for r in state.releases("catmeow")] == [(2, "failed"), (1, "succeeded")] or [
            (r.version, r.status) for r in state.releases("catmeow")
        ] == [(1, "succeeded"), (2, "failed")]
        assert state.current_release("catmeow").image == "skiff/catmeow:1"
        assert state.get_property("git", "deploy-branch", app="catmeow") == "production"
        assert state.get_property("nginx", "domains", app="catmeow") == ["www.catmeow.org"]
        assert state.get_property("docker", "formation", app="catmeow") == {"web": 2}
        assert state.get_property("postgres", "service:db")["password"] == "pw-0123456789"
        assert "postgres" in state.disabled_plugins()
        if old_version >= 2:
            assert [e["command"] for e in state.events()][-1] == "config:set catmeow GREETING=***"
        # schema 3: the builds table, empty (deploys before it kept no output)
        assert state.conn.execute("SELECT COUNT(*) FROM builds").fetchone()[0] == 0
    finally:
        state.close()
    listed = run_skiff("builds:list", "catmeow")
    assert listed.returncode == 0, listed.stderr
    assert "catmeow builds" in listed.stdout and len(listed.stdout.strip().splitlines()) == 2  # banner, header
    # a second run has nothing to do
    again = run_skiff("state:migrate")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_keys_written_earlier_are_read(skiff_root, run_skiff, tmp_path):
    keys = tmp_path / "authorized_keys"
    keys.write_text((FIXTURES / "authorized_keys-v1").read_text())
    result = run_skiff("ssh-keys:list", env={"SKIFF_AUTHORIZED_KEYS": str(keys)})
    assert result.returncode == 0, result.stderr
    assert "alice" in result.stdout and "SHA256:PWvlF443CkGn5CFg3wMkh35JwoTJYEoe11vqLuZ2grg" in result.stdout


def test_keys_written_before_roles_existed_are_admins(skiff_root, run_skiff, tmp_path):
    """The roles migration: a v1 store and a v1 key line; the key keeps every right (admin)."""
    _load(STORES[0], skiff_root)
    keys = tmp_path / "authorized_keys"
    keys.write_text((FIXTURES / "authorized_keys-v1").read_text())
    env = {"SKIFF_AUTHORIZED_KEYS": str(keys)}
    listed = run_skiff("ssh-keys:list", "--format", "json", env=env)
    assert [(k["name"], k["role"]) for k in json.loads(listed.stdout)] == [("alice", "admin")]
    ssh = {**env, "SKIFF_KEY_NAME": "alice"}
    assert run_skiff("ssh-command", env={**ssh, "SSH_ORIGINAL_COMMAND": "apps:list"}).returncode == 0
    result = run_skiff("ssh-command", env={**ssh, "SSH_ORIGINAL_COMMAND": "config:show --global"})
    assert result.returncode == 0 and "TZ" in result.stdout
    assert "alice  ssh  ok  config:show --global" in run_skiff("events").stdout


def test_a_store_newer_than_this_version_is_left_alone(skiff_root, run_skiff):
    db = _load(STORES[-1], skiff_root)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    conn.close()
    result = run_skiff("state:migrate")
    assert result.returncode == 0
    assert f"schema {SCHEMA_VERSION + 5} is newer than this skiff's ({SCHEMA_VERSION})" in result.stderr


def test_skiff_upgrade_makes_old_repositories_private_and_removes_stored_credentials(skiff_root, run_skiff):
    """skiff_upgrade brings forward the layout of an earlier version: world-readable
    repositories, a token in a release description."""
    _load(STORES[0], skiff_root)
    repo = skiff_root / "repos" / "catmeow.git"
    (repo / "objects").mkdir(parents=True)
    (skiff_root / "repos").chmod(0o755)
    repo.chmod(0o755)
    conn = sqlite3.connect(skiff_root / State.filename)
    conn.execute(
        "UPDATE releases SET description='git:sync https://bob:t0ken-s3cret@git.example.com/cat.git main' "
        "WHERE app='catmeow' AND version=1"
    )
    conn.commit()
    conn.close()
    result = run_skiff("state:migrate")
    assert result.returncode == 0, result.stderr
    assert "made repos private (0700)" in result.stdout and "made catmeow.git private (0700)" in result.stdout
    assert "removed URL credentials from 1 release description(s)" in result.stdout
    assert (skiff_root / "repos").stat().st_mode & 0o777 == 0o700 and repo.stat().st_mode & 0o777 == 0o700
    state = State(skiff_root)
    try:
        description = state.get_release("catmeow", 1).description
    finally:
        state.close()
    assert description == "git:sync https://***@git.example.com/cat.git main"
    assert b"t0ken-s3cret" not in (skiff_root / State.filename).read_bytes()
    # skiff_upgrade is idempotent: a second run has nothing to bring forward
    again = run_skiff("state:migrate")
    assert again.returncode == 0 and "Brought forward" not in again.stdout
