"""Runs a build plan inside a build container (stdlib only; any Python 3.9+).

Mounted read-only at /build/driver with plan.json next to it. It never runs
a shell: each step is a list of argument lists. Progress goes to stdout as
marker lines that start with \\x1e followed by JSON; everything else is the
tools' own output, which the host indents.
"""
import json
import os
import subprocess
import sys
import time

MARK = "\x1e"
DENIED = {"PATH", "HOME", "USER", "PWD", "SHELL", "HOSTNAME", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHOME"}


def mark(**data):
    sys.stdout.write(MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


def load_env_dir(path):
    """App config vars, one file per key (Heroku's ENV_DIR)."""
    env = {}
    if path and os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name in DENIED or name.startswith("SKIFF_BUILD_"):
                continue
            with open(os.path.join(path, name), encoding="utf-8", errors="surrogateescape") as f:
                env[name] = f.read()
    return env


def base_env(plan):
    env = {
        "PATH": plan.get("path") or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": "/home/app" if os.access("/home/app", os.W_OK) else "/tmp",
        "ENV_DIR": plan.get("env_dir") or "",
    }
    env.update(load_env_dir(plan.get("env_dir")))
    ca = plan.get("ca")
    if ca:
        for key in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"):
            env[key] = ca
    env.update(plan.get("env") or {})
    return env


def run_step(step, env):
    step_env = dict(env)
    step_env.update(step.get("env") or {})
    cwd = step.get("cwd") or "/app"
    check = step.get("check")
    if check:
        probe = subprocess.run(check, cwd=cwd, env=step_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode != 0:
            return 0
    title = step.get("title")
    started = time.monotonic()
    if title:
        mark(step=title)
    for argv in step.get("run") or []:
        try:
            code = subprocess.run(argv, cwd=cwd, env=step_env, stdin=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT).returncode
        except OSError as exc:
            print(f"cannot run {argv[0]}: {exc}", flush=True)
            code = 127
        if code != 0:
            mark(fail=title or argv[0], code=code)
            return code
    if title:
        mark(done=title, seconds=round(time.monotonic() - started, 2))
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    env = base_env(plan)
    for step in plan.get("steps") or []:
        code = run_step(step, env)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
