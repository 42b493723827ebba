"""The docker plugin's restore step (docker:apps): which apps start from their image, which are rebuilt."""

from __future__ import annotations

import docker
import pytest

import skiff_docker.plugin as docker_plugin
from skiff import lifecycle
from skiff.errors import SkiffError
from skiff_docker import engine, lifecycle_ops, settings


class Images:
    def __init__(self, present: set[str]):
        self.present = present

    def get(self, ref: str) -> object:
        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return object()


class Client:
    def __init__(self, present: set[str]):
        self.images = Images(present)


def release(h, app: str, image: str) -> None:
    made = h.state.create_release(
        app, description="Deploy", image=image, revision=None, config={}, processes={"web": "x"}, meta={}
    )
    h.state.finish_release(made, "succeeded", {})


def test_restore_starts_apps_from_their_image_or_rebuilds_them_from_their_source(skiff, monkeypatch):
    h = skiff(("docker", docker_plugin))
    for app in ("kept", "rebuilt", "lost", "paused", "new"):
        h.create_app(app)
    for app in ("kept", "rebuilt", "lost", "paused"):
        release(h, app, f"skiff/{app}:1")
    source = {"kind": "git", "location": "/srv/repos/rebuilt.git", "revision": "a" * 40, "ref": "refs/heads/main"}
    h.state.set_property(settings.PLUGIN, "source", source, app="rebuilt")
    settings.set_stopped(h.state, "paused", True)
    started, deployed = [], []
    monkeypatch.setattr(engine, "client", lambda: Client({"skiff/kept:1", "skiff/paused:1"}))
    monkeypatch.setattr(lifecycle_ops, "start", lambda context, app, description: started.append((app, description)))
    monkeypatch.setattr(
        lifecycle, "deploy", lambda context, app, src, description: deployed.append((app, src, description))
    )

    (part,) = docker_plugin.skiff_backup_parts(h.context)
    assert (part.name, part.order, part.paths, part.dump) == ("docker:apps", 900, (), None)
    with pytest.raises(SkiffError, match="these apps did not come back: lost"):
        part.restore(None)  # type: ignore[misc]
    assert started == [("kept", "Restore")]
    [(app, src, description)] = deployed
    assert (app, src.kind, src.location, src.revision, description) == (
        "rebuilt",
        "git",
        "/srv/repos/rebuilt.git",
        "a" * 40,
        "Rebuild aaaaaaa (restore)",
    )
