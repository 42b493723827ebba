"""Images assembled from tar streams (``docker load`` of a layer on a base): config, archive, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile

import pytest

from skiff_buildpacks import layers
from skiff_buildpacks.build import ImageChanges, final_changes

BASE = {
    "Id": "sha256:base",
    "Architecture": "amd64",
    "Os": "linux",
    "RootFS": {"Type": "layers", "Layers": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
    "Config": {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"], "Labels": {"skiff.stack": "trixie"}, "User": "root"},
}


def layer_tar(*names: str) -> tempfile.SpooledTemporaryFile:
    f = tempfile.TemporaryFile()
    with tarfile.open(fileobj=f, mode="w") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"hi"))
    f.seek(0)
    return f


def test_changes_apply_as_docker_commit_applies_them():
    changes = ImageChanges(env={"PATH": "/app/.venv/bin:/usr/bin", "PORT": "5000"}, labels={"a": "b"}, user="1000")
    config = changes.apply(BASE["Config"])
    assert config["Env"] == ["LANG=C.UTF-8", "PATH=/app/.venv/bin:/usr/bin", "PORT=5000"]
    assert config["Labels"] == {"skiff.stack": "trixie", "a": "b"} and config["User"] == "1000"
    assert BASE["Config"]["Env"] == ["PATH=/usr/bin", "LANG=C.UTF-8"]  # the base is not changed
    assert changes.dockerfile() == [
        'ENV PATH="/app/.venv/bin:/usr/bin"',
        'ENV PORT="5000"',
        "USER 1000",
        'LABEL a="b"',
    ]
    final = final_changes("web1", "b1", {"X": "1"}, "1000:1000", "gunicorn app:app", ["python"])
    assert final.cmd == ["/bin/sh", "-c", "gunicorn app:app"] and final.workdir == "/app"
    assert final.apply({})["Labels"]["skiff.deps"] == ""  # the dependency image's labels are cleared


def test_the_archive_carries_the_new_layer_only_and_names_every_layer():
    layer = layer_tar("app/app.py")
    image = layers.NewImage(BASE, ImageChanges(labels={"x": "y"}), "skiff/web1", "b1", layer=layer)
    on_top = layers.NewImage(image.inspect, ImageChanges(labels={"z": "1"}), "skiff/web1", "b2")
    layer_digest = "sha256:" + hashlib.sha256(layer_tar("app/app.py").read()).hexdigest()
    assert image.diff_id == layer_digest and on_top.diff_id is None
    with layers.archive([image, on_top]) as data, tarfile.open(fileobj=data) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
        raw = tf.extractfile(manifest[0]["Config"]).read()
        config = json.loads(raw)
    assert [m["RepoTags"] for m in manifest] == [["skiff/web1:b1"], ["skiff/web1:b2"]]
    assert config["rootfs"]["diff_ids"] == [*BASE["RootFS"]["Layers"], layer_digest]
    assert len(manifest[0]["Layers"]) == 3 and manifest[1]["Layers"] == manifest[0]["Layers"]
    # only the new layer's tar is in the archive: the engine has the base's layers
    assert [n for n in names if n.endswith("layer.tar")] == [layer_digest.split(":")[1] + "/layer.tar"]
    # the image id is the digest of the config file, as the engine computes it
    assert manifest[0]["Config"] == hashlib.sha256(raw).hexdigest() + ".json" == image.id.split(":")[1] + ".json"
    assert on_top.config["config"]["Labels"] == {"skiff.stack": "trixie", "x": "y", "z": "1"}


@pytest.mark.parametrize("name", ["app/.wh.app.py", "app/.wh..wh..opq", "app/sub/.wh.x/y"])
def test_names_a_layer_reads_as_whiteouts_keep_the_container_path(name):
    assert not layers.loadable(layer_tar("app/ok.py", name))
    assert layers.loadable(layer_tar("app/ok.py", "app/x.wh.y"))


class RefusingApi:
    base_url = "http+docker://refusing"

    def load_image(self, data):
        yield {"errorDetail": {"message": "layer does not exist"}, "error": "layer does not exist"}

    def inspect_image(self, ref):
        return dict(BASE)


class Client:
    def __init__(self, api):
        self.api = api


def test_a_refused_load_is_one_exception_and_the_engine_is_remembered():
    client = Client(RefusingApi())
    image = layers.NewImage(BASE, ImageChanges(), "skiff/web1", "b1", layer=layer_tar("app/a"))
    with pytest.raises(layers.LoadRefused, match="layer does not exist"):
        layers.load(client, [image])
    assert layers.supported(client)
    layers.mark_unsupported(client)
    assert not layers.supported(client) and layers.supported(Client(type("A", (), {"base_url": "other"})()))


def test_an_image_loaded_with_another_id_is_refused():
    class Api(RefusingApi):
        def load_image(self, data):
            yield {"stream": "Loaded image: skiff/web1:b1\n"}

        def inspect_image(self, ref):
            return {"Id": "sha256:other"}

    image = layers.NewImage(BASE, ImageChanges(), "skiff/web1", "b1", layer=layer_tar("app/a"))
    with pytest.raises(layers.LoadRefused, match="another id"):
        layers.load(Client(Api()), [image])
