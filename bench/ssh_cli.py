"""Commands over SSH: `ssh skiff@127.0.0.1 apps:list` next to an `ssh ... true` floor.

Both go through the same private sshd on 127.0.0.1 (its own config and host key)
with the same client and options; the floor's key has the forced command
`/bin/true` instead of `skiff ssh-command`, so the difference is what Skiff costs
on top of an SSH session. `skiff apps:list` run locally is shown for reference.
Interleaved, BENCH_RUNS rounds (default 20).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs, time_command  # noqa: E402
from _stack import Server  # noqa: E402


def floor_server(server: Server):
    """The same sshd, reached with a second key whose forced command is /bin/true."""
    from skiff.testing.sshd import make_key

    key = make_key(server.work / "keys" / "floor")
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    with open(server.authorized, "a") as f:
        f.write(f'command="/bin/true",restrict {kind} {blob} floor\n')
    return server.sshd.for_key(key)


def main() -> None:
    server = Server("bench-ssh-")
    try:
        floor = floor_server(server)
        for app in ("one", "two", "three"):
            server.local("apps:create", app)
        ssh = server.sshd.ssh_args() + [server.sshd.alias]
        floor_ssh = floor.ssh_args() + [floor.alias]
        env = server.sshd.env
        # Sanity: the floor really runs /bin/true, apps:list really lists the apps.
        listed = subprocess.run(ssh + ["apps:list"], env=env, capture_output=True, text=True, check=True).stdout
        assert "three" in listed, listed
        assert (
            subprocess.run(floor_ssh + ["apps:list"], env=env, capture_output=True, text=True, check=True).stdout == ""
        )
        cases = {
            "ssh ... true (floor)": lambda: time_command(floor_ssh + ["true"], env),
            "ssh skiff@127.0.0.1 apps:list": lambda: time_command(ssh + ["apps:list"], env),
            "ssh skiff@127.0.0.1 version": lambda: time_command(ssh + ["version"], env),
            "skiff apps:list (local)": lambda: time_command([server.skiff, "apps:list"], server.local_env),
        }
        interleave(cases, 2)  # warm up
        report("ssh_cli", interleave(cases, runs(20)), baseline="ssh ... true (floor)")
    finally:
        server.close()


if __name__ == "__main__":
    main()
