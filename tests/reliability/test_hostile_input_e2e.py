"""Hostile input through SSH and the local CLI is refused with one clear line; nothing is created.

A real sshd and real ``skiff`` processes (the server side runs the stub builder and
scheduler plus the nginx plugin, pointed at a private nginx, so nothing here needs
docker). Every input goes through both doors: ``ssh skiff@host COMMAND`` (split with
shlex by ``skiff ssh-command``, never a shell) and ``skiff COMMAND`` with an argument
list. After each refusal the state database (apps, config, properties, releases) and the
files under SKIFF_ROOT are exactly as before, and no file appeared outside it.

Bad repository names in ``git push``/``git-receive-pack`` are covered by
plugins/builtin/git/tests/test_push_e2e.py::test_bad_app_names_over_ssh_create_nothing.
"""

from __future__ import annotations

import io
import os
import shlex
import sqlite3
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skiff.testing.sshd import STUB_ENV, skiff_executable

pytestmark = pytest.mark.e2e

APP = "victim"
BIG = "x" * (64 * 1024 + 1)


@pytest.fixture
def sshd_skiff_env(private_nginx):
    disabled = ",".join(p for p in STUB_ENV["SKIFF_DISABLED_PLUGINS"].split(",") if p != "nginx")
    return {**STUB_ENV, "SKIFF_DISABLED_PLUGINS": disabled, **private_nginx.env}


def run_local(sshd, args: list[str], input: bytes = b"") -> tuple[int, str]:
    proc = subprocess.run(
        [skiff_executable(), *args], input=input, capture_output=True, env={**os.environ, **sshd.skiff_env}, timeout=60
    )
    return proc.returncode, proc.stderr.decode(errors="replace")


def run_ssh(sshd, args: list[str], input: bytes = b"") -> tuple[int, str]:
    proc = subprocess.run(
        sshd.ssh_args() + [sshd.alias, "--", shlex.join(args)],
        input=input,
        capture_output=True,
        env=sshd.env,
        timeout=60,
    )
    return proc.returncode, proc.stderr.decode(errors="replace")


DOORS = {"ssh": run_ssh, "cli": run_local}


def snapshot(root: Path) -> dict:
    """Every row of every table, and every file under SKIFF_ROOT but the database's and the locks."""
    conn = sqlite3.connect(root / "skiff.db")
    try:
        # the audit log (events) records every attempt, refused ones too: that is its job
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if r[0] not in ("events", "sqlite_sequence")
        ]
        rows = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}  # noqa: S608
    finally:
        conn.close()
    # files, not directories: an empty scratch directory (tmp/) may appear, a repository may not
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("skiff.db") and "locks" not in p.parts
    }
    return {"rows": rows, "files": files}


def tar_of(members: list[tuple[str, str, str]]) -> bytes:
    """A tar archive of (name, kind, data-or-link-target) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data.encode())
                tar.addfile(info, io.BytesIO(data.encode()))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
    return buf.getvalue()


def bad_inputs(marker: Path) -> list[tuple[list[str], bytes, str]]:
    """(argv, stdin, words the error line must contain)."""
    safe = tar_of([("app.py", "file", "print(1)\n")])
    cases = [
        # app names
        (["apps:create", "../x"], b"", "invalid app name"),
        (["apps:create", "UPPER"], b"", "invalid app name"),
        (["apps:create", "a;touch " + str(marker)], b"", "invalid app name"),
        (["apps:create", f"$(touch {marker})"], b"", "invalid app name"),
        (["apps:create", "a" * 49], b"", "invalid app name"),
        (["apps:create", "web\n"], b"", "invalid app name"),
        (["config:set", "../etc", "K=v"], b"", "invalid app name"),
        # config keys and values
        (["config:set", APP, "BAD-KEY=x"], b"", "invalid config key"),
        (["config:set", APP, "1ABC=x"], b"", "invalid config key"),
        (["config:set", APP, f"K;touch {marker}=x"], b"", "invalid config key"),
        (["config:set", APP, f"BIG={BIG}"], b"", "too large"),
        (["config:set", "--global", f"BIG={BIG}"], b"", "too large"),
        # domains (they end up in nginx config)
        (["domains:add", APP, "x;} server { listen 81; }"], b"", "invalid domain"),
        (["domains:add", APP, "a..example.com"], b"", "invalid domain"),
        (["domains:add", APP, "-bad.example.com"], b"", "no such option"),
        (["domains:add", APP, "bad-.example.com"], b"", "invalid domain"),
        (["domains:add", APP, "ok.example.com\nserver_name evil"], b"", "invalid domain"),
        (["domains:add", APP, ("a" * 63 + ".") * 4 + "com"], b"", "invalid domain"),
        (["domains:add", APP, "*.*.example.com"], b"", "invalid domain"),
        # branch names
        (["git:set", APP, "deploy-branch", "../x"], b"", "invalid branch name"),
        (["git:set", APP, "deploy-branch", "-x"], b"", "no such option"),
        (["git:set", APP, "deploy-branch", "x.lock"], b"", "invalid branch name"),
        (["git:set", APP, "deploy-branch", "a..b"], b"", "invalid branch name"),
        (["git:set", APP, "deploy-branch", "a b"], b"", "invalid branch name"),
        (["git:set", APP, "deploy-branch", "x" * 300], b"", "invalid branch name"),
        # archive members
        (["git:from-archive", APP, "-"], tar_of([("../evil.py", "file", "x")]), "outside its tree"),
        (["git:from-archive", APP, "-"], tar_of([("/tmp/evil.py", "file", "x")]), "unsafe member"),
        (
            ["git:from-archive", APP, "-"],
            tar_of([("ok.py", "file", "x"), ("link", "symlink", "/etc")]),
            "leaves its tree",
        ),
        (
            ["git:from-archive", APP, "-"],
            tar_of([("link", "symlink", "../.."), ("link/x", "file", "x")]),
            "leaves its tree",
        ),
        (["git:from-archive", APP, "-"], tar_of([("hard", "hardlink", "/etc/passwd")]), "leaves its tree"),
        (["git:from-archive", "../x", "-"], safe, "invalid app name"),
    ]
    return cases


@pytest.mark.parametrize("door", list(DOORS))
def test_hostile_input_is_refused_and_creates_nothing(sshd, skiff_root, tmp_path, door):
    assert sshd.ssh(["apps:create", APP]).exit_code == 0
    assert sshd.ssh(["config:set", APP, "KEEP=me"]).exit_code == 0
    marker = tmp_path / "pwned"
    before = snapshot(skiff_root)
    run = DOORS[door]
    cases = bad_inputs(marker)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: run(sshd, case[0], case[1]), cases))
    for (args, _stdin, words), (code, stderr) in zip(cases, results):
        shown = f"{door}: {args[:2]} {args[2:][:1]!r:.80}"
        assert code != 0, shown
        bang = [line for line in stderr.splitlines() if line.startswith("!     ")]
        assert len(bang) == 1, (shown, stderr[-500:])
        assert words.lower() in bang[0].lower(), (shown, bang[0])
        assert "Traceback" not in stderr, (shown, stderr[-1000:])
        assert len(bang[0]) < 600, (shown, bang[0][:200])  # one line, not an echo of a 64 KiB value
    assert snapshot(skiff_root) == before
    assert not marker.exists()
    assert not Path("/tmp/evil.py").exists()
    listed = sshd.ssh(["config:show", APP])
    assert listed.exit_code == 0 and "KEEP" in listed.stdout
