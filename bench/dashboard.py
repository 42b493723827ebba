"""The dashboard: load time of the apps list with 20 apps, and the dashboard server's memory.

On a private Skiff server (SKIFF_ROOT, nginx and sshd on 127.0.0.1; real docker scheduler and
nginx plugin), 20 small Dockerfile apps (python3's http.server on the stack image, a code-only
build) are pushed with `git push`; the dashboard is enabled and `skiff dashboard:serve` runs on a
free loopback port behind nginx's dashboard vhost. A `dashboard:login` link over SSH gives a
session (the admin key: every app is listed).

1. Load time of `GET /` (the apps list, 20 rows) through nginx, median of BENCH_RUNS loads
   (default 20), next to a GET of one app through the same nginx (the proxy floor), over HTTP
   (one new connection per load, the whole body read); and in headless Chromium (when Debian's
   chromium and chromium-driver are installed) the Navigation Timing of the page:
   `loadEventEnd` of `performance.getEntriesByType("navigation")`, i.e. request to page loaded,
   with the page's CSS and scripts.
2. Memory of the dashboard server process: RSS after start-up (before any request), RSS after
   the loads above, and its peak (VmHWM).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleave, report, runs  # noqa: E402
from _stack import Server, new_app  # noqa: E402

APPS = int(os.environ.get("BENCH_DASHBOARD_APPS", 20))
DASHBOARD = "dashboard.skiff.bench"  # dashboard.<global domain> of _stack.Server

DOCKERFILE = """\
FROM skiff/stack:trixie
COPY server.py /srv/server.py
USER app
EXPOSE 8080
CMD ["python3", "/srv/server.py"]
"""
SERVER = """\
import http.server, os
ANSWER = open(__file__).read().splitlines()[-1].lstrip("# ").encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), H).serve_forever()
"""


def app_files(answer: str) -> dict[str, str]:
    return {"Dockerfile": DOCKERFILE, "server.py": SERVER + f"# {answer}\n"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tree_kb(pid: int, field: str) -> int:
    """``field`` of the process and its children (a server with worker processes)."""
    total = status_kb(pid, field)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        try:
            total += tree_kb(int(child), field)
        except OSError:
            pass
    return total


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def login_path(server: Server) -> str:
    line = server.ssh("dashboard:login").strip()
    match = re.fullmatch(rf"https?://{re.escape(DASHBOARD)}(?::\d+)?(/login/\S+)", line)
    if not match:
        raise RuntimeError(f"dashboard:login printed {line!r}")
    return match.group(1)


def session_cookie(server: Server) -> str:
    """Open a login link with http.client; the session cookie it sets (``name=value``)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.nginx.http_port, timeout=10)
    try:
        conn.request("GET", login_path(server), headers={"Host": DASHBOARD})
        resp = conn.getresponse()
        resp.read()
        cookies = [v.split(";", 1)[0] for k, v in resp.getheaders() if k.lower() == "set-cookie"]
    finally:
        conn.close()
    if resp.status not in (302, 303) or not cookies:
        raise RuntimeError(f"login answered {resp.status} without a cookie")
    return "; ".join(cookies)


def timed_get(port: int, host: str, path: str = "/", cookie: str | None = None, expect: str | None = None) -> float:
    """Seconds of one GET on a new connection, body read; checks status 200 (and ``expect``)."""
    import http.client

    headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    if resp.status != 200 or (expect and expect not in body):
        raise RuntimeError(f"GET {host}{path}: {resp.status} {body[:200]!r}")
    return elapsed


def browser_loads(server: Server, n: int, apps: list[str]) -> list[float] | None:
    """Navigation Timing (request to loadEventEnd, seconds) of ``n`` loads of the apps list."""
    from skiff.testing.browser import missing_binaries, start_chromium

    if missing_binaries():
        print(f"  (no browser figures: {', '.join(missing_binaries())} missing)", flush=True)
        return None
    profile = Path(tempfile.mkdtemp(prefix="bench-dashboard-chromium-"))
    driver = start_chromium(profile / "profile", {DASHBOARD: "127.0.0.1"})
    base = f"http://{DASHBOARD}:{server.nginx.http_port}"
    try:
        driver.get(base + login_path(server))
        rows = driver.find_elements("css selector", "table#apps tr[data-app]")
        if len(rows) < len(apps):
            raise RuntimeError(f"the apps list shows {len(rows)} apps, not {len(apps)}")
        samples = []
        for _ in range(n):
            driver.get(base + "/")
            timing = driver.execute_script(
                "const e = performance.getEntriesByType('navigation')[0]; return [e.startTime, e.loadEventEnd];"
            )
            samples.append((timing[1] - timing[0]) / 1000)
        return samples
    finally:
        driver.quit()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    server = Server("bench-dashboard-")
    dashboard: subprocess.Popen[bytes] | None = None
    try:
        apps = []
        for i in range(APPS):
            app = new_app(f"d{i:02d}x")
            server.push(server.repo(app, app_files(f"app{i}")), app)
            server.wait_for(app, f"app{i}")
            apps.append(app)
        print(f"  {len(apps)} apps deployed", flush=True)
        port = free_port()
        server.local("dashboard:set", "--global", "port", str(port))
        server.local("dashboard:enable")
        dashboard = subprocess.Popen(
            [server.skiff, "dashboard:serve", "--host", "127.0.0.1", "--port", str(port)],
            env=server.local_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(port)
        time.sleep(1)
        rss_idle = tree_kb(dashboard.pid, "VmRSS") / 1024
        cookie = session_cookie(server)
        http_port = server.nginx.http_port
        n = runs(20)
        cases = {
            "GET one app through nginx (floor)": lambda: timed_get(http_port, server.host(apps[0])),
            f"GET / apps list, {APPS} apps (HTTP)": lambda: timed_get(
                http_port, DASHBOARD, "/", cookie, expect=f'data-app="{apps[-1]}"'
            ),
        }
        timed_get(http_port, DASHBOARD, "/", cookie)  # warm: templates compiled, caches filled
        samples = interleave(cases, n)
        loads = browser_loads(server, n, apps)
        if loads:
            samples["apps list in Chromium (loadEventEnd)"] = loads
        report(
            f"dashboard: apps list load time, {APPS} apps",
            samples,
            baseline="GET one app through nginx (floor)",
        )
        rss_after = tree_kb(dashboard.pid, "VmRSS") / 1024
        peak = tree_kb(dashboard.pid, "VmHWM") / 1024
        report(
            "dashboard: server memory (dashboard:serve)",
            {
                "RSS after start-up": [rss_idle],
                f"RSS after {n * (2 if loads else 1) + 1} page loads": [rss_after],
                "peak RSS (VmHWM)": [peak],
            },
            unit="MB",
        )
    finally:
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
                dashboard.wait()
        server.close()


if __name__ == "__main__":
    main()
