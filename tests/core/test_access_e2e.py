"""Access control end to end through a real sshd: a deployer key against its own app and another's.

The stub pipeline (STUB_ENV) builds and runs nothing, so no docker is needed. A second
sshd on the same SKIFF_ROOT and authorized_keys loads the docker plugin too, for
``ps:scale`` (which is refused, or only stores the scale: nothing reaches the engine).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from skiff.testing.sshd import STUB_ENV, add_key, commit_files, head, init_repo, make_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def sshd_skiff_env():
    return dict(STUB_ENV)


def _refused(result, line: str) -> None:
    assert result.exit_code != 0, result.output
    assert f"!     {line}" in result.stderr.splitlines(), result.output
    assert sum(shown.startswith("!") for shown in result.stderr.splitlines()) == 1, result.output


def _events(root: Path) -> list[dict]:
    conn = sqlite3.connect(root / "skiff.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    finally:
        conn.close()


def test_a_deployer_key_works_on_its_apps_only(sshd, sshd_factory, skiff_root, tmp_path):
    bob_key = make_key(tmp_path / "bob", "bob")
    added = add_key("bob", bob_key.with_suffix(".pub"), sshd.skiff_env, role="deployer")
    assert added.exit_code == 0 and "as deployer" in added.output
    bob = sshd.for_key(bob_key)
    with_docker = {
        **sshd.skiff_env,
        "SKIFF_DISABLED_PLUGINS": ",".join(p for p in STUB_ENV["SKIFF_DISABLED_PLUGINS"].split(",") if p != "docker"),
    }
    admin_docker = sshd_factory(sshd.authorized_keys, with_docker, tmp_path / "sshd-docker")
    bob_docker = admin_docker.for_key(bob_key)

    # the admin key sets up two apps; bob may work on "mine"
    repo = init_repo(tmp_path / "src", {"app.py": "print('hi')\n"})
    assert sshd.git_push(repo, "other").exit_code == 0
    assert sshd.ssh("apps:create mine").exit_code == 0
    assert sshd.ssh("acl:add mine bob").exit_code == 0
    assert sshd.ssh("config:set --no-restart other SECRET=theirs").exit_code == 0
    other_head = sshd.ssh("git:report other --format json")

    # another app: refused in one line, nothing changes
    _refused(bob.ssh("config:show other"), "key 'bob' (deployer) may not run config:show on app 'other'")
    _refused(bob.ssh("config:set other SECRET=mine"), "key 'bob' (deployer) may not run config:set on app 'other'")
    _refused(bob_docker.ssh("ps:scale other web=2"), "key 'bob' (deployer) may not run ps:scale on app 'other'")
    _refused(bob.ssh("apps:destroy other --force"), "key 'bob' (deployer) may not run apps:destroy on app 'other'")
    commit_files(repo, {"evil.py": "1"})
    _refused(
        bob.git_push(repo, "other", force=True), "key 'bob' (deployer) may not run git-receive-pack on app 'other'"
    )
    clone = bob.git("clone", bob.remote("other"), str(tmp_path / "stolen"))
    _refused(clone, "key 'bob' (deployer) may not run git-upload-pack on app 'other'")
    assert not (tmp_path / "stolen" / "app.py").exists()
    # global settings and new apps: refused
    _refused(bob.ssh("config:set --global TZ=UTC"), "key 'bob' (deployer) may not run config:set --global")
    _refused(bob.ssh("acl:set --global deployer-create-apps true"), "key 'bob' (deployer) may not run acl:set")
    _refused(bob.git_push(repo, "fresh"), "key 'bob' (deployer) may not run git-receive-pack on app 'fresh'")
    _refused(bob.ssh("events"), "key 'bob' (deployer) may not run events")
    assert sshd.ssh("config:get other SECRET").stdout == "theirs\n"
    assert sshd.ssh("config:show --global").stdout.strip().splitlines()[1:] == []
    assert sshd.ssh("apps:list").stdout.split()[-2:] == ["mine", "other"]
    scale = admin_docker.ssh("ps:scale other")
    assert scale.exit_code == 0 and "Scaling for other" in scale.stdout and " 2" not in scale.stdout, scale.output
    assert sshd.ssh("git:report other --format json").stdout == other_head.stdout

    # its own app: the same work succeeds
    assert bob.ssh("config:set --no-restart mine TOKEN=s3cret").exit_code == 0
    assert "TOKEN" in bob.ssh("config:show mine").stdout
    scaled = bob_docker.ssh("ps:scale --skip-deploy mine web=2")
    assert scaled.exit_code == 0, scaled.output
    pushed = bob.git_push(repo, "mine")
    assert pushed.exit_code == 0, pushed.output
    cloned = bob.git("clone", bob.remote("mine"), str(tmp_path / "mine"))
    assert cloned.exit_code == 0, cloned.output
    assert head(tmp_path / "mine") == head(repo)
    assert " 2" in admin_docker.ssh("ps:scale mine").stdout
    assert bob.ssh("apps:destroy mine --force").exit_code == 0

    # the event log says who did what; no secret in it
    events = _events(skiff_root)
    assert "s3cret" not in json.dumps(events) and "theirs" not in json.dumps(events)
    bobs = [(e["kind"], e["command"], e["status"]) for e in events if e["key"] == "bob"]
    assert ("ssh", "config:show other", 1) in bobs
    assert ("ssh", "config:set --no-restart mine TOKEN=***", 0) in bobs
    assert ("ssh", "ps:scale --skip-deploy mine web=2", 0) in bobs
    assert ("ssh", "apps:destroy other --force", 1) in bobs
    assert any(kind == "deploy" and status == 0 and command.endswith("by bob") for kind, command, status in bobs)
    shown = sshd.ssh("events -n 500").stdout
    assert "bob  ssh  exit 1  git-receive-pack other" in shown
    assert "test  ssh  ok  acl:add mine bob" in shown
