"""End to end: a real Django project shaped like Heroku's Python getting-started app, by ``git push``.

Django, gunicorn, dj-database-url, whitenoise and psycopg come from PyPI (uv, with the host's
CA bundle). The project is laid out as Heroku's sample is (a ``gettingstarted`` project, a
``hello`` app with a model and its migration, ``.python-version``, a Procfile with
``release: ./manage.py migrate --no-input`` and ``web: gunicorn``), and its settings decide the
database the way that sample does: ``dj_database_url`` with ``ssl_require=True`` when ``DYNO`` is
set, a SQLite file otherwise. The push must collect the static files in the build (whitenoise
serves their hashed names), run the migration against the linked postgres (over TLS) in the
release task, and the page at ``/db/`` served through nginx must read and write that database.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from skiff.testing.docker import new_app_name
from skiff.testing.sshd import commit_files, init_repo

pytestmark = pytest.mark.e2e

GLOBAL = "skiff.test"

SETTINGS = '''"""Settings as in Heroku's getting-started app: on a dyno, the database at DATABASE_URL."""
import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
IS_HEROKU_APP = "DYNO" in os.environ and "CI" not in os.environ
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", default=secrets.token_urlsafe(nbytes=64))
DEBUG = not IS_HEROKU_APP
ALLOWED_HOSTS = ["*"] if IS_HEROKU_APP else ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "hello",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "gettingstarted.urls"
WSGI_APPLICATION = "gettingstarted.wsgi.application"

if IS_HEROKU_APP:
    DATABASES = {
        "default": dj_database_url.config(
            env="DATABASE_URL", conn_max_age=600, conn_health_checks=True, ssl_require=True
        ),
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}

STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_URL = "static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
'''

URLS = """from django.urls import path

import hello.views

urlpatterns = [
    path("", hello.views.index),
    path("db/", hello.views.db),
]
"""

WSGI = """import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gettingstarted.settings")
application = get_wsgi_application()
"""

MANAGE = """#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gettingstarted.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

MODELS = """from django.db import models


class Greeting(models.Model):
    when = models.DateTimeField("date created", auto_now_add=True)
    dyno = models.CharField(max_length=40, default="")
"""

MIGRATION = """from django.db import migrations, models


def first_greeting(apps, schema_editor):
    import os

    apps.get_model("hello", "Greeting").objects.create(dyno=os.environ.get("DYNO", ""))


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Greeting",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("when", models.DateTimeField(auto_now_add=True, verbose_name="date created")),
                ("dyno", models.CharField(default="", max_length=40)),
            ],
        ),
        migrations.RunPython(first_greeting),
    ]
"""

VIEWS = """import os

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.templatetags.static import static

from .models import Greeting


def index(request):
    return HttpResponse(f"hello from Django, style at {static('hello/style.css')}\\n")


def db(request):
    Greeting.objects.create(dyno=os.environ.get("DYNO", ""))
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl = cursor.fetchone()[0]
    greetings = [g.dyno for g in Greeting.objects.order_by("when")]
    return JsonResponse({"vendor": connection.vendor, "ssl": ssl, "greetings": greetings})
"""

FILES = {
    ".python-version": "3.13\n",
    "Procfile": (
        "web: gunicorn --config gunicorn.conf.py gettingstarted.wsgi\n"  # as in Heroku's sample
        "release: ./manage.py migrate --no-input\n"
    ),
    "requirements.txt": (
        "django==6.1.3\ngunicorn==27.0.1\ndj-database-url==3.1.2\nwhitenoise==6.12.0\npsycopg[binary]==3.3.9\n"
    ),
    "gunicorn.conf.py": 'import os\n\nbind = ["0.0.0.0:" + os.environ.get("PORT", "8000")]\nworkers = 2\n',
    "manage.py": MANAGE,
    "gettingstarted/__init__.py": "",
    "gettingstarted/settings.py": SETTINGS,
    "gettingstarted/urls.py": URLS,
    "gettingstarted/wsgi.py": WSGI,
    "hello/__init__.py": "",
    "hello/models.py": MODELS,
    "hello/views.py": VIEWS,
    "hello/migrations/__init__.py": "",
    "hello/migrations/0001_initial.py": MIGRATION,
    "hello/static/hello/style.css": "body { color: #6762a6; }\n",
}


@pytest.fixture
def sshd_skiff_env(private_nginx):
    """The server-side skiff loads every installed plugin and drives the private nginx."""
    return dict(private_nginx.env)


def django_repo(path):
    repo = init_repo(path, FILES)
    os.chmod(repo / "manage.py", 0o755)  # the Procfile runs ./manage.py, as Heroku's sample does
    commit_files(repo, {}, "manage.py is executable")
    return repo


def test_a_django_app_collects_static_migrates_the_linked_postgres_and_serves_it_through_nginx(
    sshd, stack_image, pg_image, docker_cleanup, cleanup, service_name, private_nginx, tmp_path
):
    sshd.ok("domains:set-global", GLOBAL)
    app = docker_cleanup.app(new_app_name("dj"))
    host = f"{app}.{GLOBAL}"
    db = service_name
    sshd.ok("apps:create", app)
    sshd.ok("postgres:create", db)
    sshd.ok("postgres:link", db, app)

    pushed = sshd.git_push(django_repo(tmp_path / "gettingstarted"), app)
    out = pushed.output
    assert pushed.exit_code == 0, out
    assert "Using Python 3.13" in out, out
    assert re.search(r"[0-9]+ static files? copied to '[^']*/staticfiles'", out), out  # collectstatic in the build
    assert "Running release: ./manage.py migrate --no-input" in out
    assert re.search(r"Applying hello\.0001_initial\.\.\. *OK", out), out

    home = private_nginx.request(host=host)
    assert home.status == 200 and home.body.startswith("hello from Django"), home
    style = re.search(r"style at (/static/hello/style\.[0-9a-f]{12}\.css)", home.body)
    assert style, home.body  # the manifest's hashed name: collected in the build, served by whitenoise
    css = private_nginx.request(path=style.group(1), host=host)
    assert css.status == 200 and "#6762a6" in css.body, css

    page = private_nginx.request(path="/db/", host=host)
    assert page.status == 200, page  # the release migrated the linked database, not a SQLite file
    answer = json.loads(page.body)
    assert answer["vendor"] == "postgresql" and answer["ssl"] is True, answer
    assert answer["greetings"][0] == "release.1" and answer["greetings"][1] == "web.1", answer

    # the linked database holds both rows, and no SQLite file was left in the image
    query = sshd.ok("postgres:connect", db, input="SELECT 'got: ' || dyno FROM hello_greeting ORDER BY id;\n")
    assert "got: release.1" in query and "got: web.1" in query, query
    shown = sshd.ok("run", app, "./manage.py showmigrations hello; test ! -e db.sqlite3 && echo no-sqlite")
    assert "[X] 0001_initial" in shown and "no-sqlite" in shown, shown

    sshd.ok("apps:destroy", app, "--force")
    sshd.ok("postgres:destroy", db, "--force")
