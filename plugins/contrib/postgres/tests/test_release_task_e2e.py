"""End to end, the regression of issue 14: a Django-like app whose settings pick the
database by ``DYNO`` (as Heroku's Python getting-started app does: the database at
``DATABASE_URL`` when ``DYNO`` is set, a local SQLite file otherwise), with a linked
postgres and a Procfile ``release: python manage.py migrate``, pushed with git over SSH.

The release task must migrate the linked database, not a SQLite file in its throwaway
container: the web process then reads what it wrote, and so does a ``run`` container.
The task also stores the environment it saw, which must be the web process's own
(less ``DYNO`` and ``HOSTNAME``). Django itself is not installed offline: the app is a
stdlib web server and psycopg.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

from skiff.testing.docker import http_get, new_app_name
from skiff.testing.sshd import init_repo

pytestmark = pytest.mark.e2e

PLUGINS = {
    "apps",
    "config",
    "procfile",
    "stack",
    "buildpacks",
    "buildpack-python",
    "docker",
    "postgres",
    "git",
    "ssh-keys",
}
PER_CONTAINER = {"DYNO", "HOSTNAME"}

SETTINGS = '''"""As in Heroku's getting-started app: on a dyno, the database at DATABASE_URL; else SQLite."""
import os

IS_HEROKU_APP = "DYNO" in os.environ and "CI" not in os.environ
DATABASE = os.environ["DATABASE_URL"] if IS_HEROKU_APP else os.path.join(os.path.dirname(__file__), "db.sqlite3")
'''

DB = '''import sqlite3

import settings


def connect():
    """A connection to the configured database, and its parameter placeholder."""
    if settings.IS_HEROKU_APP:
        import psycopg

        return psycopg.connect(settings.DATABASE, connect_timeout=5), "%s"
    return sqlite3.connect(settings.DATABASE), "?"


def migrations():
    conn, _ = connect()
    with conn:
        return conn.execute("SELECT name, dyno, env FROM migrations ORDER BY name").fetchall()
'''

MANAGE = '''"""manage.py migrate | showmigrations"""
import json
import os
import sys

import db
import settings


def migrate():
    conn, p = db.connect()
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, dyno text, env text)")
        conn.execute(
            f"INSERT INTO migrations (name, dyno, env) VALUES ({p}, {p}, {p}) ON CONFLICT (name) DO NOTHING",
            ("0001_initial", os.environ.get("DYNO", ""), json.dumps(dict(os.environ), sort_keys=True)),
        )
    engine = "postgres" if settings.IS_HEROKU_APP else "sqlite"
    print(f"Applying notes.0001_initial... OK ({engine})", flush=True)


def showmigrations():
    for name, dyno, _ in db.migrations():
        print(f"[X] {name} (migrated by {dyno})")


{"migrate": migrate, "showmigrations": showmigrations}[sys.argv[1]]()
'''

WEB = '''"""GET / says hello; GET /db/ answers the migrations table as JSON (500 when it cannot)."""
import http.server
import json
import os

import db


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        status, body = 200, "relapp\\n"
        if self.path == "/db/":
            try:
                rows = [{"name": n, "dyno": d, "env": json.loads(e)} for n, d, e in db.migrations()]
                body = json.dumps({"migrations": rows, "env": dict(os.environ)})
            except Exception as exc:
                status, body = 500, f"{type(exc).__name__}: {exc}\\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
'''

FILES = {
    "Procfile": "web: python -u web.py\nrelease: python manage.py migrate\n",
    "requirements.txt": "psycopg[binary]==3.3.9\n",
    "settings.py": SETTINGS,
    "db.py": DB,
    "manage.py": MANAGE,
    "web.py": WEB,
}


@pytest.fixture
def sshd_skiff_env():
    others = {ep.name for ep in metadata.entry_points(group="skiff")} - PLUGINS
    return {"SKIFF_DISABLED_PLUGINS": ",".join(sorted(others))}


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def web_port(sshd, app: str) -> int:
    report = json.loads(ok(sshd.ssh(["ps:report", app, "--format", "json"])).stdout)
    ports = [r["port"] for r in report["processes"] if r["process"] == "web" and r["status"] == "running" and r["port"]]
    assert ports, report
    return ports[0]


def test_release_task_migrates_the_linked_database_that_web_reads(
    sshd, stack_image, pg_image, docker_cleanup, cleanup, service_name, tmp_path
):
    app = docker_cleanup.app(new_app_name("rel"))
    db = service_name
    ok(sshd.ssh(["apps:create", app]))
    ok(sshd.ssh(["postgres:create", db]))
    ok(sshd.ssh(["postgres:link", db, app]))  # before the first push, as on Heroku with an add-on
    dsn = ok(sshd.ssh(["postgres:info", db, "--dsn"])).stdout.strip()

    pushed = ok(sshd.git_push(init_repo(tmp_path / "relapp", FILES), app))
    assert f"Releasing {app} v1" in pushed.output
    assert "Running release: python manage.py migrate" in pushed.output
    assert "Applying notes.0001_initial... OK (postgres)" in pushed.output

    status, body = http_get(f"http://127.0.0.1:{web_port(sshd, app)}/db/")
    assert status == 200, body  # before the fix: 500, relation "migrations" does not exist
    answer = json.loads(body)
    [migration] = answer["migrations"]
    assert migration["name"] == "0001_initial" and migration["dyno"] == "release.1"
    web_env, task_env = answer["env"], migration["env"]
    assert web_env["DYNO"] == "web.1" and web_env["DATABASE_URL"] == task_env["DATABASE_URL"] == dsn
    assert {k: v for k, v in task_env.items() if k not in PER_CONTAINER} == {
        k: v for k, v in web_env.items() if k not in PER_CONTAINER
    }

    # the linked database holds it (not a file in a container), and a `run` container reads it too
    query = ok(sshd.ssh(["postgres:connect", db], input="SELECT 'got: ' || name || ' ' || dyno FROM migrations;\n"))
    assert "got: 0001_initial release.1" in query.stdout
    shown = ok(sshd.ssh(["run", app, "python manage.py showmigrations; echo dyno=$DYNO"]))
    assert "[X] 0001_initial (migrated by release.1)" in shown.stdout
    assert re.search(r"^dyno=run\.[0-9]{4}$", shown.stdout, re.M), shown.stdout

    ok(sshd.ssh(["apps:destroy", app, "--force"]))
    ok(sshd.ssh(["postgres:destroy", db, "--force"]))


# As Heroku's getting-started app: dj_database_url.config(ssl_require=True) asks for sslmode=require
TLS_FILES = {
    **FILES,
    "db.py": DB.replace("connect_timeout=5)", 'connect_timeout=5, sslmode="require")'),
    "manage.py": MANAGE.replace(
        '    engine = "postgres" if settings.IS_HEROKU_APP else "sqlite"\n',
        "    conn, _ = db.connect()\n"
        "    with conn:\n"
        '        ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]\n'
        '    engine = f"postgres, ssl={ssl}"\n',
    ),
}


def test_an_app_that_requires_tls_writes_and_reads_the_linked_database(
    sshd, stack_image, pg_image, docker_cleanup, cleanup, service_name, tmp_path
):
    app = docker_cleanup.app(new_app_name("tls"))
    db = service_name
    assert TLS_FILES["db.py"] != DB and TLS_FILES["manage.py"] != MANAGE
    ok(sshd.ssh(["apps:create", app]))
    ok(sshd.ssh(["postgres:create", db]))
    ok(sshd.ssh(["postgres:link", db, app]))
    dsn = ok(sshd.ssh(["postgres:info", db, "--dsn"])).stdout.strip()
    assert "sslmode" not in dsn  # the linked URL is the usual one: the app asks for TLS itself

    pushed = ok(sshd.git_push(init_repo(tmp_path / "tlsapp", TLS_FILES), app))
    assert "Applying notes.0001_initial... OK (postgres, ssl=True)" in pushed.output  # written over TLS
    status, body = http_get(f"http://127.0.0.1:{web_port(sshd, app)}/db/")
    assert status == 200, body  # read over TLS by the web process
    [migration] = json.loads(body)["migrations"]
    assert migration["name"] == "0001_initial" and migration["dyno"] == "release.1"

    ok(sshd.ssh(["apps:destroy", app, "--force"]))
    ok(sshd.ssh(["postgres:destroy", db, "--force"]))
