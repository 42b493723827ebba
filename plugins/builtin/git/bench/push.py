"""Benchmark: how long a git push deploy takes over a real sshd, against a bare ssh round trip.

Runs a private sshd (skiff.testing.sshd) and the stub pipeline (no docker), so
it measures Skiff's own overhead of a push: ssh, receive-pack, the hook, the
checkout and the lifecycle. Prints medians and the ratios against two
baselines measured in the same run: ``ssh HOST version`` (ssh + one skiff
start) and a plain ``git push`` of the same commit to a local bare repository.

    .venv/bin/python plugins/builtin/git/bench/push.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skiff.testing.sshd import STUB_ENV, add_key, commit_files, init_repo, make_key, start_sshd


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        root.mkdir()
        ak = tmp / "authorized_keys"
        env = {"SKIFF_ROOT": str(root), "SKIFF_AUTHORIZED_KEYS": str(ak), **STUB_ENV}
        host_key, client_key = make_key(tmp / "host"), make_key(tmp / "client")
        assert add_key("bench", client_key.with_suffix(".pub"), env).exit_code == 0
        server = start_sshd(tmp / "sshd", host_key, client_key, ak, env)
        try:
            files = {f"src/file{i}.py": f"X = {i}\n" * 50 for i in range(200)}
            repo = init_repo(tmp / "app", files)
            local = tmp / "plain.git"
            subprocess.run(["git", "init", "-q", "--bare", str(local)], check=True)

            def push(remote: str) -> None:
                proc = subprocess.run(
                    ["git", "push", "-q", remote, "HEAD:main"], cwd=repo, env=server.env, capture_output=True, text=True
                )
                assert proc.returncode == 0, proc.stderr

            push(server.remote("bench"))  # first push creates the app
            ssh, plain, deploy = [], [], []
            for n in range(rounds):
                commit_files(repo, {"src/file0.py": f"X = {n}\n"})
                plain.append(timed(lambda: push(str(local))))
                deploy.append(timed(lambda: push(server.remote("bench"))))
                ssh.append(timed(lambda: server.ssh("version")))
            m_ssh, m_plain, m_deploy = map(statistics.median, (ssh, plain, deploy))
            print(f"rounds: {rounds}, source: {len(files)} files")
            print(f"ssh HOST version (baseline):   median {m_ssh * 1000:7.0f} ms")
            print(f"git push to a local bare repo: median {m_plain * 1000:7.0f} ms")
            print(
                f"git push deploy over ssh:      median {m_deploy * 1000:7.0f} ms  "
                f"({m_deploy / m_ssh:.1f}x ssh+skiff, {m_deploy / m_plain:.1f}x plain push)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root (the benchmark starts sshd)")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
