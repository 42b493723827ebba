"""Commands over SSH: `ssh skiff@127.0.0.1 apps:list` next to an `ssh ... python -c pass` floor.

Both go through the same private sshd on 127.0.0.1 (its own config and host key)
with the same client and options; the floor's key has the forced command
`PYTHON -c pass` (skiff's own interpreter) instead of `skiff ssh-command`, so the
difference is what Skiff costs on top of an SSH session that starts Python. As on
a server, both forced commands run as the service account (``skiff``, or
BENCH_USER; the test sshd logs in as root, so each forced command goes through the
same `setpriv` to that account), which is what lets Skiff use its command cache.
`ssh ... true` (the floor of earlier runs) and `skiff apps:list` run locally are
shown for reference. Interleaved, BENCH_RUNS rounds (default 20).
Target (issue 18): apps:list ≤ 1.2x the python floor.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs, service_account, time_command  # noqa: E402
from _stack import Server  # noqa: E402

FLOOR = "ssh ... python -c pass (floor)"


def as_account(user: str | None) -> str:
    """The prefix that runs a forced command as ``user`` (empty: as the login user)."""
    if user is None:
        return ""
    return f"setpriv --reuid={user} --regid={user} --init-groups "


def floor_server(server: Server, forced: str, name: str):
    """The same sshd, reached with another key whose forced command is ``forced``."""
    from skiff.testing.sshd import make_key

    key = make_key(server.work / "keys" / name)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    with open(server.authorized, "a") as f:
        f.write(f'command="{forced}",restrict {kind} {blob} {name}\n')
    return server.sshd.for_key(key)


def hand_over(server: Server, user: str) -> None:
    """Give the server's SKIFF_ROOT and key file to ``user`` and run skiff's forced commands as it."""
    for folder, _, files in os.walk(server.root):
        shutil.chown(folder, user, user)
        for name in files:
            shutil.chown(os.path.join(folder, name), user, user)
    os.chmod(server.work, 0o755)
    text = server.authorized.read_text()
    text = re.sub(r"(\S*/skiff ssh-command)", lambda m: as_account(user) + m[1], text)
    server.authorized.write_text(text)
    shutil.chown(server.authorized, user, user)


def main() -> None:
    server = Server("bench-ssh-")
    try:
        user = service_account()
        for app in ("one", "two", "three"):
            server.local("apps:create", app)
        if user is not None:
            hand_over(server, user)
        prefix = as_account(user)
        floor = floor_server(server, f"{prefix}{shlex.quote(sys.executable)} -c pass", "floor")
        true = floor_server(server, "/bin/true", "true")
        ssh = server.sshd.ssh_args() + [server.sshd.alias]
        floor_ssh = floor.ssh_args() + [floor.alias]
        true_ssh = true.ssh_args() + [true.alias]
        env = server.sshd.env
        # Sanity: the floors really run their command, apps:list really lists the apps.
        listed = subprocess.run(ssh + ["apps:list"], env=env, capture_output=True, text=True, check=True).stdout
        assert "three" in listed, listed
        for other in (floor_ssh, true_ssh):
            assert (
                subprocess.run(other + ["apps:list"], env=env, capture_output=True, text=True, check=True).stdout == ""
            )
        cases = {
            FLOOR: lambda: time_command(floor_ssh + ["pass"], env),
            "ssh skiff@127.0.0.1 apps:list": lambda: time_command(ssh + ["apps:list"], env),
            "ssh skiff@127.0.0.1 version": lambda: time_command(ssh + ["version"], env),
            "ssh ... true": lambda: time_command(true_ssh + ["true"], env),
            "skiff apps:list (local)": lambda: time_command([server.skiff, "apps:list"], server.local_env, user),
        }
        interleave(cases, 2)  # warm up (and write the command cache)
        print(f"  (forced commands as {user or 'the login user'})")
        table = report("ssh_cli", interleave(cases, runs(20)), baseline=FLOOR)
        ratio = table["ssh skiff@127.0.0.1 apps:list"]["ratio"]
        print(f"  ssh apps:list / ssh python -c pass: {ratio:.2f}x (target ≤ 1.2x)")
    finally:
        server.close()


if __name__ == "__main__":
    main()
