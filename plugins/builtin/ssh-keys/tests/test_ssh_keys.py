"""ssh-keys:* with the harness (in-process CLI), real ssh-keygen, a temp authorized_keys."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

import skiff_ssh_keys.plugin as keys_plugin
from skiff_ssh_keys import keys


@pytest.fixture
def key_pair(tmp_path):
    def make(name: str, key_type: str = "ed25519") -> Path:
        path = tmp_path / f"{name}_key"
        bits = ["-b", "1024"] if key_type == "rsa" else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", key_type, *bits, "-N", "", "-C", f"{name}@laptop", "-f", str(path)], check=True
        )
        return path

    return make


@pytest.fixture
def ak(tmp_path, monkeypatch):
    path = tmp_path / "home" / ".ssh" / "authorized_keys"
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(path))
    return path


@pytest.fixture
def h(skiff):
    return skiff(("ssh-keys", keys_plugin))


def fingerprint(pub: Path) -> str:
    return subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def test_add_writes_a_forced_command_line(h, ak, key_pair, skiff_root):
    pub = key_pair("alice").with_suffix(".pub")
    result = h.invoke("ssh-keys:add", "alice", str(pub))
    assert result.exit_code == 0, result.output
    (line,) = ak.read_text().splitlines()
    fp = fingerprint(pub)
    assert line.startswith(f'command="SKIFF_KEY_NAME=alice SKIFF_KEY_FINGERPRINT={fp} SKIFF_ROOT={skiff_root} ')
    assert ' ssh-command",restrict,pty ssh-ed25519 ' in line
    assert pub.read_text().split()[1] in line
    assert "alice@laptop" not in line  # the user's comment is not copied
    assert stat.S_IMODE(ak.stat().st_mode) == 0o600
    assert stat.S_IMODE(ak.parent.stat().st_mode) == 0o700
    listed = h.invoke("ssh-keys:list")
    assert "alice" in listed.stdout and fp in listed.stdout


def test_add_from_stdin_rsa_and_no_pty(h, ak, key_pair):
    pub = key_pair("bob", "rsa").with_suffix(".pub")
    assert h.invoke("ssh-keys:add", "bob", "-", "--no-pty", input=pub.read_text()).exit_code == 0
    assert ",restrict ssh-rsa " in ak.read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no public key given"),
        ("hello world\n", "not an OpenSSH public key"),
        ("ssh-ed25519 AAAAnotbase64really\n", "not a valid public key"),
        ('command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6 x\n', "not an OpenSSH public key"),
    ],
)
def test_add_rejects_garbage(h, ak, text, message):
    result = h.invoke("ssh-keys:add", "eve", "-", input=text)
    assert result.exit_code == 1 and message in result.stderr
    assert not ak.exists()


def test_add_rejects_private_keys_two_keys_and_bad_names(h, ak, key_pair):
    private = key_pair("alice")
    result = h.invoke("ssh-keys:add", "alice", str(private))
    assert result.exit_code == 1 and "private key" in result.stderr
    two = private.with_suffix(".pub").read_text() + key_pair("bob").with_suffix(".pub").read_text()
    result = h.invoke("ssh-keys:add", "alice", "-", input=two)
    assert result.exit_code == 1 and "exactly one" in result.stderr
    for name in ("a b", ".x", 'q"uote', "$(id)", "x" * 65):
        result = h.invoke("ssh-keys:add", name, str(private.with_suffix(".pub")))
        assert result.exit_code != 0 and "invalid key name" in result.stderr, name
    assert not ak.exists()


def test_duplicates_are_refused(h, ak, key_pair):
    alice = key_pair("alice").with_suffix(".pub")
    bob = key_pair("bob").with_suffix(".pub")
    assert h.invoke("ssh-keys:add", "alice", str(alice)).exit_code == 0
    result = h.invoke("ssh-keys:add", "alice", str(bob))
    assert result.exit_code == 1 and "already exists" in result.stderr
    result = h.invoke("ssh-keys:add", "alice2", str(alice))
    assert result.exit_code == 1 and "already added as alice" in result.stderr
    assert len(ak.read_text().splitlines()) == 1


def test_foreign_lines_are_kept_and_their_keys_not_duplicated(h, ak, key_pair):
    admin = key_pair("admin").with_suffix(".pub").read_text().strip()
    ak.parent.mkdir(parents=True)
    foreign = ["# the admin's own key", admin, ""]
    ak.write_text("\n".join(foreign) + "\n")
    result = h.invoke("ssh-keys:add", "admin", "-", input=admin)
    assert result.exit_code == 1 and "Skiff did not write" in result.stderr
    alice = key_pair("alice").with_suffix(".pub")
    assert h.invoke("ssh-keys:add", "alice", str(alice)).exit_code == 0
    assert ak.read_text().splitlines()[:3] == foreign
    assert h.invoke("ssh-keys:list", "--format", "json").stdout.count('"name"') == 1
    assert h.invoke("ssh-keys:remove", "alice").exit_code == 0
    assert ak.read_text().splitlines() == foreign
    assert list(ak.parent.iterdir()) == [ak]  # no temp files left behind


def test_remove(h, ak, key_pair):
    for name in ("alice", "bob"):
        assert h.invoke("ssh-keys:add", name, str(key_pair(name).with_suffix(".pub"))).exit_code == 0
    result = h.invoke("ssh-keys:remove", "carol")
    assert result.exit_code == 1 and "no key named carol" in result.stderr
    assert h.invoke("ssh-keys:remove", "alice").exit_code == 0
    assert [k.name for k in keys.skiff_keys(keys.read_lines(ak))] == ["bob"]


def test_path_setting(h, tmp_path, monkeypatch, key_pair):
    monkeypatch.delenv("SKIFF_AUTHORIZED_KEYS", raising=False)
    target = tmp_path / "elsewhere" / "keys"
    assert h.invoke("ssh-keys:set", "authorized-keys-file", str(target)).exit_code == 0
    assert h.invoke("ssh-keys:add", "alice", str(key_pair("alice").with_suffix(".pub"))).exit_code == 0
    assert "SKIFF_KEY_NAME=alice" in target.read_text()
    assert h.invoke("ssh-keys:set", "authorized-keys-file", "relative").exit_code == 1


def test_admin_commands_are_local_only(h):
    from skiff.cli import is_local_only

    for name in ("ssh-keys:add", "ssh-keys:remove", "ssh-keys:set"):
        assert is_local_only(h.cli.commands[name]), name
    assert not is_local_only(h.cli.commands["ssh-keys:list"])


def test_line_round_trip_and_unsafe_paths(monkeypatch):
    key = keys.PublicKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIH6", "SHA256:abc+/=")
    monkeypatch.setenv("SKIFF_EXECUTABLE", "/opt/my skiff/bin/skiff")
    line = keys.key_line("alice", key, Path("/srv/skiff"))
    assert "'/opt/my skiff/bin/skiff' ssh-command" in line
    parsed = keys.parse_line(line)
    assert parsed == keys.SkiffKey("alice", "SHA256:abc+/=", "ssh-ed25519", key.blob, "restrict,pty")
    monkeypatch.setenv("SKIFF_EXECUTABLE", '/opt/"evil"/skiff')
    with pytest.raises(Exception, match="cannot be written"):
        keys.key_line("alice", key, None)
    assert keys.parse_line("ssh-ed25519 AAAA x") is None
