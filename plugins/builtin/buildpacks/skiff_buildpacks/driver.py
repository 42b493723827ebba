"""Runs a build plan inside a build container (stdlib only; any Python 3.9+).

The builder puts it at /build/skiff/driver.py with plan.json next to it. The
plan holds the app's config, so the driver reads it and deletes the whole
directory before any step runs: neither reaches the committed image. The
config is exported to the steps and written, one file per key, to the
in-memory ENV_DIR (/build/env, a tmpfs). It never runs a shell: each step is
a list of argument lists. Progress goes to stdout as marker lines that start
with \\x1e followed by JSON; everything else is the tools' own output, which
the host indents.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

MARK = "\x1e"
SHARED = -1  # run_step: the resolution has a shared layer
DENIED = {"PATH", "HOME", "USER", "PWD", "SHELL", "HOSTNAME", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHOME"}


def mark(**data):
    sys.stdout.write(MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


def app_config(plan):
    """The app's config vars to export (a few that would break the build are left out)."""
    return {k: v for k, v in (plan.get("config") or {}).items() if k not in DENIED and not k.startswith("SKIFF_BUILD_")}


def write_env_dir(path, config):
    """Heroku's ENV_DIR: one file per config var, in memory (a tmpfs)."""
    if not path or not os.path.isdir(path) or not os.access(path, os.W_OK):
        return ""
    for key, value in config.items():
        fd = os.open(os.path.join(path, key), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(value)
    return path


def base_env(plan):
    env = {
        "PATH": plan.get("path") or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": "/home/app" if os.access("/home/app", os.W_OK) else "/tmp",
    }
    config = app_config(plan)
    env["ENV_DIR"] = write_env_dir(plan.get("env_dir"), plan.get("config") or {})
    env.update(config)
    ca = plan.get("ca")
    if ca:
        for key in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"):
            env[key] = ca
    env.update(plan.get("env") or {})
    return env


def cache_paths(env):
    """Point /build/cache/... at /tmp when the cache is not writable (e.g. a stack without /build/cache)."""
    if os.access("/build/cache", os.W_OK):
        return env
    fallback = "/tmp/skiff-cache"
    return {k: fallback + v[len("/build/cache") :] if v.startswith("/build/cache/") else v for k, v in env.items()}


def installed(venv):
    """(name, version, wheel tags) of every distribution in the venv's site-packages (for the host's cache)."""
    found = []
    for lib in glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "*.dist-info")):
        try:
            with open(os.path.join(lib, "METADATA"), encoding="utf-8", errors="replace") as f:
                head = f.read(8192)
            with open(os.path.join(lib, "WHEEL"), encoding="utf-8", errors="replace") as f:
                wheel = f.read(8192)
        except OSError:
            continue
        meta = dict(
            line.split(": ", 1) for line in head.split("\n\n", 1)[0].splitlines() if ": " in line and line[0] != " "
        )
        tags = [line[5:].strip() for line in wheel.splitlines() if line.startswith("Tag: ")]
        if meta.get("Name") and meta.get("Version") and tags:
            found.append({"name": meta["Name"].strip(), "version": meta["Version"].strip(), "tags": tags})
    return found


WHEEL = re.compile(
    r"([A-Za-z0-9._]+)-([A-Za-z0-9.+!_]+)(?:-[0-9][A-Za-z0-9_.]*)?-([A-Za-z0-9_.]+)-([A-Za-z0-9_.]+)-([A-Za-z0-9_.]+)\.whl"
)
PYC_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def shared_wheels(directory):
    """{(name, version, tags): file name} of the shared wheel cache."""
    found = {}
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        m = WHEEL.fullmatch(name)
        if m:
            tags = frozenset(
                f"{py}-{abi}-{plat}"
                for py in m.group(3).split(".")
                for abi in m.group(4).split(".")
                for plat in m.group(5).split(".")
            )
            found[(_norm(m.group(1)), m.group(2).lower(), tags)] = name
    return found


def place_bytecode(venv, wheels_dir):
    """Copy the shared cache's precompiled bytecode of the installed wheels into site-packages; return the count."""
    tag = sys.implementation.cache_tag
    bundles = os.path.join(wheels_dir, "pyc-" + tag)
    sites = glob.glob(os.path.join(venv, "lib", "python*", "site-packages"))
    if not os.path.isdir(bundles) or len(sites) != 1:
        return 0
    files = shared_wheels(wheels_dir)
    placed = 0
    for dist in installed(venv):
        name = files.get((_norm(dist["name"]), dist["version"].lower(), frozenset(dist["tags"])))
        path = os.path.join(bundles, (name or "") + ".tar")
        if not name or not os.path.isfile(path):
            continue
        with tarfile.open(path, "r:") as bundle:
            for member in bundle:
                parts = member.name.split("/")
                if not (member.isfile() and len(parts) >= 2 and parts[-2] == "__pycache__"):
                    continue
                if not (parts[-1].endswith("." + tag + ".pyc") and all(PYC_PART.fullmatch(p) for p in parts)):
                    continue
                source = os.path.join(sites[0], *parts[:-2], parts[-1][: -len(tag) - 5] + ".py")
                if not os.path.isfile(source):
                    continue
                target = os.path.join(sites[0], *parts)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as out:
                    out.write(bundle.extractfile(member).read())
                placed += 1
    return placed


def compile_missing(venv, cwd, env):
    """Byte-compile the venv's .py files that have no .pyc yet (compileall -j 0); return its exit code."""
    tag = sys.implementation.cache_tag
    todo = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(venv, "lib")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                pyc = os.path.join(dirpath, "__pycache__", name[:-3] + "." + tag + ".pyc")
                if not os.path.exists(pyc):
                    todo.append(os.path.join(dirpath, name))
    if not todo:
        return 0
    listing = "/tmp/skiff-compile-list"
    with open(listing, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(todo) + "\n")
    argv = [os.path.join(venv, "bin", "python"), "-m", "compileall", "-q", "-j", "0", "-i", listing]
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT).returncode


def run_logged(argv, cwd, env, needles):
    """Run ``argv`` with its output passed through; return its exit code and whether a needle appeared."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen = False
    for line in proc.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        seen = seen or any(n.encode() in line for n in needles)
    return proc.wait(), seen


PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._ -]*\])?==([A-Za-z0-9.+!_-]+)")


def pins_hash(text):
    """The hash of a resolution (``name==version`` lines), as the host computes it; None for anything else."""
    pins = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.fullmatch(line)
        if not m:
            return None
        pins.add(_norm(m.group(1)) + "==" + m.group(2).lower())
    if not pins:
        return None
    return hashlib.sha256("\n".join(sorted(pins)).encode()).hexdigest()


def resolve_shared(shared, candidates, cwd, env):
    """Resolve the requirements (``uv pip compile``): the candidate hash the resolution is (or None), and
    whether the index did not answer (the install then goes to the caches at once)."""
    code, offline = run_logged(shared["resolve"], cwd, env, shared.get("when") or [])
    offline = code != 0 and offline
    if offline:
        print("the package index did not answer: resolving from the caches (uv --offline)", flush=True)
        code, _ = run_logged(shared["resolve"] + ["--offline"], cwd, env, [])
    digest = None
    try:
        with open(shared["output"], encoding="utf-8") as f:
            digest = pins_hash(f.read()) if code == 0 else None
        os.unlink(shared["output"])
    except OSError:
        pass
    return (digest if digest in candidates else None), offline


def run_step(step, env, shared=()):
    step_env = dict(env)
    step_env.update(step.get("env") or {})
    step_env = cache_paths(step_env)
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
    offline = False
    if shared and step.get("shared_venv"):
        digest, offline = resolve_shared(step["shared_venv"], shared, cwd, step_env)
        if digest:
            print("the same resolution as a shared layer of verified wheels: using it", flush=True)
            mark(report="shared_venv", data=digest)
            if title:
                mark(done=title, seconds=round(time.monotonic() - started, 2))
            return SHARED
    if step.get("venv"):
        # in this process: no second interpreter start (python3 -m venv) and no uv probe (uv venv)
        import venv

        venv.EnvBuilder(symlinks=True, with_pip=False).create(step["venv"])
    fallback = step.get("fallback") or {}
    for argv in step.get("run") or []:
        try:
            if fallback and argv == fallback.get("instead_of") and offline:
                print(fallback.get("note") or "retrying", flush=True)
                code = subprocess.run(
                    fallback["run"], cwd=cwd, env=step_env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
                ).returncode
            elif fallback and argv == fallback.get("instead_of"):
                code, seen = run_logged(argv, cwd, step_env, fallback.get("when") or [])
                if code != 0 and seen:
                    print(fallback.get("note") or "retrying", flush=True)
                    code = subprocess.run(
                        fallback["run"], cwd=cwd, env=step_env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
                    ).returncode
            else:
                code = subprocess.run(
                    argv, cwd=cwd, env=step_env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
                ).returncode
        except OSError as exc:
            print(f"cannot run {argv[0]}: {exc}", flush=True)
            code = 127
        if code != 0:
            mark(fail=title or argv[0], code=code)
            return code
    compile_step = step.get("compile")
    if compile_step:
        placed = place_bytecode(compile_step["venv"], compile_step["wheels"]) if compile_step.get("wheels") else 0
        if placed:
            print(f"bytecode of {placed} files from the shared cache", flush=True)
        if compile_step.get("defer"):
            # the host compiles it beside the deploy, in the shared virtualenv layer of these wheels
            print("bytecode of the rest: compiled beside the deploy, in the shared layer", flush=True)
            mark(report="bytecode", data="deferred")
        else:
            code = compile_missing(compile_step["venv"], cwd, step_env)
            if code != 0:
                mark(fail=title or "compileall", code=code)
                return code
    if step.get("report_installed"):
        mark(report="installed", data=installed(step["report_installed"]))
    if title:
        mark(done=title, seconds=round(time.monotonic() - started, 2))
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    shutil.rmtree(here)  # the plan holds secrets: gone before any step runs
    env = base_env(plan)
    for step in plan.get("steps") or []:
        code = run_step(step, env, plan.get("shared") or ())
        if code == SHARED:  # the host makes the layer: nothing else runs
            return 0
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
