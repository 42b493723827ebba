"""Deploy speed and downtime of the Flask sample app (tests/apps/flask), end to end.

Skiff: a real ``git push`` over a private sshd on loopback, the python buildpack, the
docker scheduler and a private nginx (Host header routing). Measured for each of
BENCH_RUNS rounds (default 5), each on a fresh app:

- cold deploy: ``git push`` of a new app until nginx serves it;
- code-only redeploy: push a commit that changes app.py until the new text is served;
- config change: ``ssh ... config:set`` until the new value is served;
- ``ps:scale web=1->3`` until it returns (every new container checked, nginx switched) and
  ``releases:rollback APP 2`` until the old code is served (no hand-rolled baseline for these two);
- the push timeline of the code-only redeploy and of the config change: the server's
  event trail (``SKIFF_TIMELINE``, docs/performance.md) and the client's own marks (ssh
  authenticated, first ``remote:``/step line, command returned, new text served), each
  in ms from the moment the client command starts;
- for each redeploy, the longest gap without a successful answer, seen by a prober that
  sends a GET on a fresh connection every 10 ms, and the number of failed probes from the
  start of the code-only redeploy on.

Baseline, in the same run: the hand-rolled replacement the issue describes (``docker build``
of a Dockerfile doing the same pip install, then ``docker rm -f`` the old container and
``docker run`` the new one on the same loopback port), probed the same way.

``BENCH_PRESTART=false`` turns the prestart off for the whole run (``ps:set --global prestart
false``: every container starts after the build, as before 2026-12-07), for a before/after pair.

Targets (issue 5): cold at most 5 s, code-only at most 2 s, config change at most 1.5 s,
zero downtime.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import json  # noqa: E402

from _common import RESULTS, runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLASK = ROOT / "tests" / "apps" / "flask"
DOMAIN = "skiff.bench"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PHASES: dict[str, list[float]] = {}  # Skiff's own phase timings, from the releases
#: per timed command ("code-only redeploy", "config:set"): step -> ms after its start, one per round
TIMELINES: dict[str, dict[str, list[float]]] = {}


# -- probing -------------------------------------------------------------------------


class Prober:
    """GETs 127.0.0.1:port (Host header) every 10 ms; records (time, body or None)."""

    def __init__(self, port: int, host: str | None = None):
        self.port, self.host = port, host
        self.samples: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            body: str | None = None
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/", headers={"Host": self.host} if self.host else {})
                response = conn.getresponse()
                text = response.read().decode("utf-8", "replace").strip()
                conn.close()
                if response.status == 200:
                    body = text
            except (OSError, http.client.HTTPException):
                pass
            self.samples.append((time.monotonic(), body))
            time.sleep(0.01)

    def wait_for(self, text: str, since: float, timeout: float = 120) -> float:
        """The time of the first answer ``text`` after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, body in list(self.samples):
                if t >= since and body == text:
                    return t
            time.sleep(0.005)
        raise RuntimeError(f"never answered {text!r}")

    def failures(self, since: float) -> int:
        """Probes without a 200 after ``since`` (the start of the code-only redeploy)."""
        return sum(1 for t, body in self.samples if t > since and body is None)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two successful answers in [start, end]."""
        ok = [t for t, body in self.samples if body is not None and start <= t <= end]
        if not ok:
            return end - start
        gaps = [b - a for a, b in zip([start] + ok, ok + [end])]
        return max(gaps)


# -- Skiff (git push over SSH, nginx) -----------------------------------------------------


class SkiffServer:
    def __init__(self, work: Path):
        from skiff.testing.nginx import start_nginx
        from skiff.testing.sshd import add_key, make_key, skiff_executable, start_sshd

        self.work = work
        self.root = work / "skiff-root"
        self.root.mkdir()
        self.nginx = start_nginx(self.root)
        keys = work / "keys"
        keys.mkdir()
        host_key = make_key(keys / "host")
        client_key = make_key(keys / "client")
        authorized = work / "authorized_keys"
        self.timeline = work / "timeline"
        self.env = {
            "SKIFF_ROOT": str(self.root),
            "SKIFF_AUTHORIZED_KEYS": str(authorized),
            "SKIFF_TIMELINE": str(self.timeline),
            **self.nginx.env,
        }
        added = add_key("bench", client_key.with_suffix(".pub"), self.env)
        if added.exit_code != 0:
            raise RuntimeError(added.output)
        self.sshd = start_sshd(work / "sshd", host_key, client_key, authorized, self.env)
        self.skiff = skiff_executable()
        self.local("domains:set-global", DOMAIN)

    def local(self, *args: str) -> None:
        subprocess.run(
            [self.skiff, *args],
            env={**os.environ, **self.env},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ssh(self, *args: str) -> None:
        result = self.sshd.ssh(list(args), timeout=300)
        if result.exit_code != 0:
            raise RuntimeError(result.output[-2000:])

    def push(self, repo: Path, app: str) -> None:
        from skiff.testing.sshd import git_push

        result = git_push(repo, app, self.sshd)
        if result.exit_code != 0:
            raise RuntimeError(result.output[-2000:])

    def timed(self, argv: list[str], cwd: Path | None = None) -> tuple[float, dict[str, float]]:
        """Run a client command (ssh or git push) with the server's trail reset and the client marked.

        Returns its start (monotonic) and the client's marks: ssh authenticated (from
        ``LogLevel=VERBOSE``), the first line of Skiff output, the command returned.
        """
        env = {**self.sshd.env, "GIT_SSH_COMMAND": self.sshd.env["GIT_SSH_COMMAND"] + " -o LogLevel=VERBOSE"}
        self.timeline.write_text("")
        marks: dict[str, float] = {}
        tail: list[str] = []
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            now = time.monotonic()
            line = raw.decode("utf-8", "replace")
            if line.startswith("Authenticated to"):
                marks.setdefault("client: ssh authenticated", now)
            if line.startswith("remote:"):
                marks.setdefault("client: first remote: line", now)
            if line.startswith(("remote: -----> ", "-----> ")):
                marks.setdefault("client: first step line", now)
            tail = (tail + [line])[-40:]
        if proc.wait(300) != 0:
            raise RuntimeError("".join(tail)[-2000:])
        marks["client: command returned"] = time.monotonic()
        return t0, marks

    def push_timed(self, repo: Path, app: str) -> tuple[float, dict[str, float]]:
        return self.timed(["git", "push", self.sshd.remote(app), "HEAD:main"], cwd=repo)

    def ssh_timed(self, *args: str) -> tuple[float, dict[str, float]]:
        import shlex

        argv = self.sshd.ssh_args(["-o", "LogLevel=VERBOSE"]) + [self.sshd.alias, "--", shlex.join(args)]
        return self.timed(argv)

    def close(self) -> None:
        self.sshd.stop()
        self.nginx.stop()


def flask_files(greeting_prefix: str = "") -> dict[str, str]:
    files = {p.name: p.read_text() for p in FLASK.iterdir() if p.is_file()}
    if greeting_prefix:
        files["app.py"] = files["app.py"].replace("return os.environ", f'return "{greeting_prefix} " + os.environ')
    return files


#: the second code-only push of each round: the pre-receive hook starts skiff again
#: (``git:set --global hook-in-process false``, the way every push went before issue 18)
TWO_STARTS = "code-only (two starts)"
#: the third: ``ps:set APP prestart false`` (containers start after the build, as before 2026-12-07)
NO_PRESTART = "code-only (no prestart)"


def skiff_round(server: SkiffServer, work: Path, index: int = 0) -> dict[str, float]:
    app = f"bench{secrets.token_hex(3)}"
    host = f"{app}.{DOMAIN}"
    result: dict[str, float] = {}
    try:
        _skiff_round(server, work, app, host, result, two_starts_first=index % 2 == 1)
    finally:
        try:
            server.ssh("apps:destroy", app, "--force")
        except RuntimeError as exc:
            print(f"!     could not destroy {app}: {exc}", flush=True)
    return result


def _code_push(server: SkiffServer, probe: Prober, repo: Path, app: str, text: str, kind: str) -> float:
    """Push a code change (``text`` is what it serves) in the mode ``kind`` names; return push -> served."""
    from skiff.testing.sshd import commit_files

    two_starts = kind == TWO_STARTS
    if two_starts:
        server.local("git:set", "--global", "hook-in-process", "false")
    if kind == NO_PRESTART:
        server.local("ps:set", app, "prestart", "false")
    try:
        commit_files(repo, {"app.py": flask_files(text)["app.py"]}, f"code change {text}")
        t0, marks = server.push_timed(repo, app)
        t1 = probe.wait_for(f"{text} hello from flask", t0)
    finally:
        if two_starts:
            server.local("git:set", "--global", "hook-in-process", "true")
        if kind == NO_PRESTART:
            server.local("ps:set", app, "prestart", "true")
    record_timeline(kind, server, t0, marks_with(marks, t1))
    if "client: first remote: line" in marks:
        FIRST_REMOTE.setdefault(kind, []).append(marks["client: first remote: line"] - t0)
    return t1 - t0


def marks_with(marks: dict[str, float], served: float) -> dict[str, float]:
    return {**marks, "client: new text served": served}


#: each round also pushes once with ``ps:set APP prestart false`` (not when BENCH_PRESTART=false)
PAIRED_PRESTART = True

#: time from ``git push`` to its first ``remote:`` line, per push mode
FIRST_REMOTE: dict[str, list[float]] = {}


def _skiff_round(
    server: SkiffServer, work: Path, app: str, host: str, result: dict[str, float], two_starts_first: bool = False
) -> None:
    from skiff.testing.sshd import init_repo

    with Prober(server.nginx.http_port, host) as probe:
        repo = init_repo(work / app, flask_files())
        t0 = time.monotonic()
        server.push(repo, app)
        t_first = probe.wait_for("hello from flask", t0)
        result["cold deploy"] = t_first - t0

        # Two code-only pushes: one start per push (the default) and the hook's second start,
        # in alternating order from round to round (v2 first, then v3).
        t_code = time.monotonic()
        kinds_in_order = ["code-only redeploy", TWO_STARTS]
        if two_starts_first:
            kinds_in_order.reverse()
        if PAIRED_PRESTART:  # one more push without the prestart, first or last, alternating
            kinds_in_order.insert(0 if two_starts_first else 2, NO_PRESTART)
        for text, kind in zip(("v2", "v3", "v4"), kinds_in_order):
            t0 = time.monotonic()
            result[kind] = _code_push(server, probe, repo, app, text, kind)
            time.sleep(0.3)
            gap = probe.longest_gap(t0, time.monotonic())
            if kind == "code-only redeploy":
                result["code-only gap"] = gap
        t0, marks = server.ssh_timed("config:set", app, "GREETING=meow")
        t1 = probe.wait_for(f"{('v2', 'v3', 'v4')[len(kinds_in_order) - 1]} meow", t0)
        result["config:set"] = t1 - t0
        record_timeline("config:set", server, t0, {**marks, "client: new text served": t1})
        time.sleep(0.3)
        result["config:set gap"] = probe.longest_gap(t0, time.monotonic())
        # ps:scale returns once every new container passed its checks and nginx switched.
        t0 = time.monotonic()
        server.ssh("ps:scale", app, "web=3")
        result["ps:scale web=1->3"] = time.monotonic() - t0
        # Roll back to v2 (a code-only push, before GREETING was set).
        t0 = time.monotonic()
        server.ssh("releases:rollback", app, "2")
        result["releases:rollback"] = probe.wait_for("v2 hello from flask", t0) - t0
        time.sleep(0.3)
        result["failed probes"] = float(probe.failures(t_code))
        if os.environ.get("BENCH_DEBUG"):
            print(
                [(round(t - t_first, 3), b) for t, b in probe.samples if t > t_first and b is None],
                "code",
                round(t_code - t_first, 3),
                "config",
                round(t0 - t_first, 3),
                flush=True,
            )
    releases = json.loads(server.sshd.ssh(["releases", app, "--format", "json"]).stdout)
    pushes = len(kinds_in_order)
    kinds = {1: "cold deploy", **{2 + i: kind for i, kind in enumerate(kinds_in_order)}}
    kinds.update({2 + pushes: "config:set", 3 + pushes: "ps:scale", 4 + pushes: "releases:rollback"})
    for release in releases:
        kind = kinds.get(release["version"])
        if kind is None:
            continue
        for phase in ("build", "release", "deploy", "post_deploy"):
            if phase in release["timings"]:
                PHASES.setdefault(f"{kind}: {phase}", []).append(release["timings"][phase])


def record_timeline(kind: str, server: SkiffServer, t0: float, client: dict[str, float]) -> None:
    """Merge the server's trail (first mark of each name) and the client's marks, in ms after t0."""
    from skiff import timeline

    steps: dict[str, float] = {}
    for name, mono, _wall, _pid in timeline.read(server.timeline):
        steps.setdefault(f"server: {name}", mono)
    steps.update(client)
    for name, when in steps.items():
        TIMELINES.setdefault(kind, {}).setdefault(name, []).append((when - t0) * 1000)


def print_timelines() -> dict[str, list[dict[str, float]]]:
    """One table per command: median ms after the start, gap from the step before (by median)."""
    tables: dict[str, list[dict[str, float]]] = {}
    for kind, steps in TIMELINES.items():
        rows = sorted(((statistics.median(v), name, len(v)) for name, v in steps.items()), key=lambda r: r[0])
        print(f"\n  push timeline: {kind} (medians in ms after the client command started)")
        print(f"    {'step':<44} {'at':>8} {'gap':>8} {'n':>3}")
        before = 0.0
        table = []
        for at, name, count in rows:
            print(f"    {name:<44} {at:>8.0f} {at - before:>8.0f} {count:>3}")
            table.append({"step": name, "at_ms": round(at, 1), "gap_ms": round(at - before, 1), "n": count})
            before = at
        tables[kind] = table
    return tables


def _segment(kind: str, start: str, end: str = "git.hook.updates-read") -> list[float]:
    """Seconds from the server mark ``start`` to ``end`` in each round of ``kind`` (git running the hook)."""
    steps = TIMELINES.get(kind, {})
    return [(b - a) / 1000 for a, b in zip(steps.get(f"server: {start}", []), steps.get(f"server: {end}", []))]


def print_one_start(skiff: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """One start per push against the hook's second start, same rounds: medians and paired ratios."""
    one, two = "code-only redeploy", TWO_STARTS
    figures = {
        "receive-pack -> refs read": (_segment(one, "git.receive-pack.start"), _segment(two, "git.receive-pack.exec")),
        "first remote: line": (FIRST_REMOTE.get(one, []), FIRST_REMOTE.get(two, [])),
        "command returned": (
            [v / 1000 for v in TIMELINES.get(one, {}).get("client: command returned", [])],
            [v / 1000 for v in TIMELINES.get(two, {}).get("client: command returned", [])],
        ),
        "new text served": (skiff.get(one, []), skiff.get(two, [])),
    }
    print("\n  code-only push, one start vs the hook's second start (medians; ratio: median of the rounds' ratios)")
    print(f"    {'what':<26} {'one start':>10} {'two starts':>10} {'ratio':>7}")
    rows = {}
    for name, (ours, before) in figures.items():
        pairs = [(a, b) for a, b in zip(ours, before) if b]
        if not pairs:
            continue
        a, b = statistics.median(ours) * 1000, statistics.median(before) * 1000
        ratio = statistics.median(x / y for x, y in pairs)
        print(f"    {name:<26} {a:>8.0f}ms {b:>8.0f}ms {ratio:>6.2f}x")
        rows[name] = {
            "one_start_ms": round(a, 1),
            "two_starts_ms": round(b, 1),
            "ratio": round(ratio, 3),
            "n": len(pairs),
        }
    return rows


def _step(kind: str, start: str, end: str) -> list[float]:
    """ms from ``start`` to ``end`` (timeline names) in each round of ``kind``."""
    steps = TIMELINES.get(kind, {})
    return [b - a for a, b in zip(steps.get(start, []), steps.get(end, []))]


def print_prestart(skiff: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """The code-only push with the prestart against the same push without it, same rounds."""
    on, off = "code-only redeploy", NO_PRESTART
    if off not in skiff:
        return {}
    served = "client: new text served"
    figures = {
        "new text served": ([v * 1000 for v in skiff.get(on, [])], [v * 1000 for v in skiff.get(off, [])]),
        "build.end -> served": (
            _step(on, "server: build.end", served),
            _step(off, "server: build.end", served),
        ),
        "deploy.start -> started": (
            _step(on, "server: deploy.start", "server: docker.started.web"),
            _step(off, "server: deploy.start", "server: docker.started.web"),
        ),
        "started -> healthy": (
            _step(on, "server: docker.started.web", "server: docker.healthy.web"),
            _step(off, "server: docker.started.web", "server: docker.healthy.web"),
        ),
    }
    print("\n  code-only push, prestart vs none (ps:set APP prestart false), same rounds (medians; paired ratio)")
    print(f"    {'what':<26} {'prestart':>10} {'none':>10} {'ratio':>7}")
    rows = {}
    for name, (ours, before) in figures.items():
        pairs = [(a, b) for a, b in zip(ours, before) if b]
        if not pairs:
            continue
        a, b = statistics.median(ours), statistics.median(before)
        ratio = statistics.median(x / y for x, y in pairs)
        print(f"    {name:<26} {a:>8.0f}ms {b:>8.0f}ms {ratio:>6.2f}x")
        rows[name] = {"prestart_ms": round(a, 1), "none_ms": round(b, 1), "ratio": round(ratio, 3), "n": len(pairs)}
    return rows


# -- baseline: docker build + docker run ------------------------------------------------------

DOCKERFILE = """FROM skiff/stack:trixie
USER root
COPY ca.crt /tmp/ca.crt
COPY requirements.txt /app/requirements.txt
RUN python3 -m venv /venv && PIP_CERT=/tmp/ca.crt /venv/bin/pip install -q -r /app/requirements.txt
COPY . /app
WORKDIR /app
ENV PORT=5000 PATH=/venv/bin:$PATH
CMD ["sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app"]
"""


def baseline_round(work: Path, port: int) -> dict[str, float]:
    tag = f"skiff-bench/handrolled:{secrets.token_hex(3)}"
    name = f"skiff-bench-{secrets.token_hex(3)}"
    src = work / name
    src.mkdir()

    def write(files: dict[str, str]) -> None:
        for fname, text in files.items():
            (src / fname).write_text(text)
        (src / "Dockerfile").write_text(DOCKERFILE)
        shutil.copy(CA_BUNDLE, src / "ca.crt")

    def build(no_cache: bool) -> None:
        subprocess.run(
            [
                "docker",
                "build",
                "-q",
                *(["--no-cache"] if no_cache else []),
                "--label",
                "skiff.bench=1",
                "-t",
                tag,
                str(src),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def replace(env: dict[str, str]) -> None:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        args = [
            "docker",
            "run",
            "-d",
            "--init",
            "--name",
            name,
            "--label",
            "skiff.bench=1",
            "-p",
            f"127.0.0.1:{port}:5000",
        ]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        subprocess.run([*args, tag], check=True, stdout=subprocess.DEVNULL)

    result: dict[str, float] = {}
    try:
        with Prober(port) as probe:
            write(flask_files())
            t0 = time.monotonic()
            build(no_cache=True)
            replace({})
            t_first = probe.wait_for("hello from flask", t0)
            result["cold deploy"] = t_first - t0

            write(flask_files("v2"))
            t0 = t_code = time.monotonic()
            build(no_cache=False)
            replace({})
            result["code-only redeploy"] = probe.wait_for("v2 hello from flask", t0) - t0
            time.sleep(0.3)
            result["code-only gap"] = probe.longest_gap(t0, time.monotonic())

            t0 = time.monotonic()
            replace({"GREETING": "meow"})
            result["config:set"] = probe.wait_for("v2 meow", t0) - t0
            time.sleep(0.3)
            result["config:set gap"] = probe.longest_gap(t0, time.monotonic())
            result["failed probes"] = float(probe.failures(t_code))
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["docker", "rmi", "-f", tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result


# -- main -------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    n = runs(5)
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    server = SkiffServer(work)
    prestart = os.environ.get("BENCH_PRESTART", "true")
    if prestart == "false":
        global PAIRED_PRESTART
        PAIRED_PRESTART = False
    server.local("ps:set", "--global", "prestart", prestart)
    print(f"prestart: {prestart}", flush=True)
    samples: dict[str, dict[str, list[float]]] = {"skiff": {}, "docker build + run": {}}
    failed = 0
    try:
        for i in range(n):
            for label, fn in (
                ("skiff", lambda i=i: skiff_round(server, work, i)),
                ("docker build + run", lambda: baseline_round(work, free_port())),
            ):
                try:
                    values = fn()
                except Exception as exc:  # e.g. the shared engine restarted under us: skip the round
                    failed += 1
                    print(f" !     {label} round {i + 1} failed: {type(exc).__name__}: {str(exc)[-300:]}", flush=True)
                    continue
                for key, value in values.items():
                    samples[label].setdefault(key, []).append(value)
            print(f"       round {i + 1}/{n} done", flush=True)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    if not samples["skiff"] or not samples["docker build + run"]:
        raise RuntimeError("no round succeeded")
    targets = {
        "cold deploy": 5.0,
        "code-only redeploy": 2.0,
        TWO_STARTS: None,
        NO_PRESTART: None,
        "config:set": 1.5,
        "ps:scale web=1->3": None,
        "releases:rollback": None,
        "code-only gap": 0.0,
        "config:set gap": 0.0,
        "failed probes": 0.0,
    }
    done = min(len(v) for v in samples["skiff"].values())
    print(
        f"\ndeploy (Flask sample app, medians of {done} runs ({failed} failed rounds); "
        "gaps = longest time without a 200)"
    )
    print(f"  {'case':<22} {'skiff':>9} {'baseline':>9} {'ratio':>7} {'target':>8}")
    table = {}
    for key, target in targets.items():
        if key not in samples["skiff"]:
            continue
        ours = statistics.median(samples["skiff"][key])
        unit = "" if key == "failed probes" else "s"
        row = {
            "skiff": {"median": ours, "min": min(samples["skiff"][key]), "max": max(samples["skiff"][key])},
            "target": target,
            "n": n,
        }
        shown_target = f"{target:>7.1f}{unit:1}" if target is not None else f"{'-':>8}"
        if key in samples["docker build + run"]:  # scale and rollback have no hand-rolled baseline
            base = statistics.median(samples["docker build + run"][key])
            ratio = ours / base if base else float("nan")
            row.update(baseline={"median": base}, ratio=round(ratio, 3))
            print(f"  {key:<22} {ours:>8.2f}{unit:1} {base:>8.2f}{unit:1} {ratio:>6.2f}x {shown_target}")
        else:
            print(f"  {key:<22} {ours:>8.2f}{unit:1} {'-':>9} {'-':>7} {shown_target}")
        table[key] = row
    print("\n  skiff phase timings (medians, from the releases):")
    for key, values in PHASES.items():
        print(f"    {key:<34} {statistics.median(values):>6.2f}s")
    timelines = print_timelines()
    one_start = print_one_start(samples["skiff"])
    paired = print_prestart(samples["skiff"])
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["deploy prestart"] = {"unit": "ms", "rows": paired, "when": time.strftime("%Y-%m-%d %H:%M")}
    results["deploy one start"] = {"unit": "ms", "rows": one_start, "when": time.strftime("%Y-%m-%d %H:%M")}
    results["deploy timeline"] = {"unit": "ms", "tables": timelines, "when": time.strftime("%Y-%m-%d %H:%M")}
    results["deploy"] = {
        "unit": "s",
        "baseline": "docker build + docker run",
        "rows": table,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
