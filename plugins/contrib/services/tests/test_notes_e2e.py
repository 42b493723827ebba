"""The toolkit proven with a small service (notes_service.py, ~50 lines): real dockerd.

create (a locally built image, its own network, restart always, the data volume),
link (NOTES_URL, the app's network), export (a tar stream), destroy, and import.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_config.plugin as config_plugin
from skiff.contracts import app_network

sys.path.insert(0, str(Path(__file__).parent))
from notes_service import KIND, NotesPlugin  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture
def h(skiff, stack_image, docker_client, skiff_root):
    yield skiff(("apps", apps_plugin), ("config", config_plugin), ("notes", NotesPlugin()))
    for c in docker_client.containers.list(all=True, filters={"label": f"skiff.root={skiff_root}"}):
        c.remove(force=True)
    for net in docker_client.networks.list(filters={"label": f"skiff.root={skiff_root}"}):
        net.remove()


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_create_link_export_import(h, docker_client, skiff_root):
    name = "n" + uuid.uuid4().hex[:8]
    ok(h.invoke("notes:create", name))
    container = docker_client.containers.get(KIND.container_name(name))
    assert container.status == "running" and container.image.tags == [KIND.local_image]
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert set(container.attrs["NetworkSettings"]["Networks"]) == {KIND.network(name)}
    data = skiff_root / "services" / "notes" / name / "data"
    (data / "hello.txt").write_text("kept\n")

    h.create_app("blog")
    ok(h.invoke("notes:link", name, "blog"))
    url = h.state.get_config("blog")["NOTES_URL"]
    password = url.split("notes:")[1].split("@")[0]
    assert url == f"http://notes:{password}@skiff-notes-{name}:8000/" and len(password) == 32
    container.reload()
    assert app_network("blog") in container.attrs["NetworkSettings"]["Networks"]
    assert ok(h.invoke("notes:linked", name, "blog")).stdout.strip().endswith("linked to blog")
    assert ok(h.invoke("notes:app-links", "blog")).stdout.split() == [name]
    assert password not in ok(h.invoke("notes:info", name)).output

    export = notes_cli(skiff_root, "notes:export", name)
    assert export.returncode == 0, export.stderr
    with tarfile.open(fileobj=io.BytesIO(export.stdout)) as tar:
        assert tar.extractfile("./hello.txt").read() == b"kept\n"

    refused = h.invoke("notes:destroy", name, "--force")
    assert refused.exit_code == 1 and "unlink it first" in refused.stderr
    ok(h.invoke("notes:unlink", name, "blog"))
    ok(h.invoke("notes:destroy", name, "--force"))
    assert not data.exists() and not h.state.get_config("blog").get("NOTES_URL")

    ok(h.invoke("notes:create", name))
    imported = notes_cli(skiff_root, "notes:import", name, input=export.stdout)
    assert imported.returncode == 0, imported.stderr
    assert (data / "hello.txt").read_text() == "kept\n"
    bad = notes_cli(skiff_root, "notes:import", name, input=b"not a tar")
    assert bad.returncode == 1 and b"nothing was imported" in bad.stderr
    assert (data / "hello.txt").read_text() == "kept\n"
    ok(h.invoke("notes:destroy", name, "--force"))


# a real skiff process with the notes plugin registered (binary stdin/stdout, as over SSH)
CLI = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import skiff_apps.plugin, skiff_config.plugin
from skiff.cli import build_cli, make_context, run
from skiff.testing import make_plugin_manager
from notes_service import NotesPlugin
pm = make_plugin_manager(("apps", skiff_apps.plugin), ("config", skiff_config.plugin), ("notes", NotesPlugin()))
context = make_context(pm)
sys.exit(run(build_cli(context), context, sys.argv[1:]))
"""


def notes_cli(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, str(Path(__file__).parent), *args],
        input=input,
        capture_output=True,
        env=dict(os.environ, SKIFF_ROOT=str(root)),
        timeout=120,
    )


def test_the_small_service_gets_backups_from_the_toolkit(h, docker_client, skiff_root, tmp_path):
    name = "n" + uuid.uuid4().hex[:8]
    ok(h.invoke("notes:create", name))
    data = skiff_root / "services" / "notes" / name / "data"
    (data / "todo.txt").write_text("backed up\n")
    ok(h.invoke("notes:backup", name, "notes"))  # relative: under SKIFF_ROOT/backups
    [made] = sorted((skiff_root / "backups" / "notes").iterdir())
    assert made.name.startswith(f"notes-{name}-") and made.name.endswith(".tar")
    ok(h.invoke("notes:destroy", name, "--force"))
    ok(h.invoke("notes:create", name))
    assert not (data / "todo.txt").exists()
    ok(h.invoke("notes:backup-restore", name, str(made)))
    assert (data / "todo.txt").read_text() == "backed up\n"
    ok(h.invoke("notes:destroy", name, "--force"))
