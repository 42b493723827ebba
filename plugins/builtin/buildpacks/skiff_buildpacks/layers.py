"""Images assembled from tar streams, without a container: ``docker load`` of a layer on a base image.

A code layer that needs no compile step is only files: instead of a container
(create, ``put_archive``, commit) Skiff writes the layer tar itself and hands the
engine an image archive (``manifest.json``, the image config, the new layer) whose
config lists the base image's layers by their diff ids. The engine has those
layers, so it reads only the new one, once. The same call can load images that
add no layer at all (a dependency image of an app made of a shared layer).

The layer is the same tar :func:`skiff_buildpacks.build.code_tar` writes for
``put_archive``; a name that a layer would read as a whiteout (``.wh.*``) keeps
the build on the container path, where it is an ordinary file.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from skiff.errors import SkiffError

from .build import ImageChanges

WHITEOUT = ".wh."
# engines where a load without the base's layer files failed: the container path from then on
_UNSUPPORTED: set[str] = set()


@dataclass
class NewImage:
    """One image of an image archive: its base, what changes, its new layer (or none), its tag."""

    base: dict[str, Any]  # the base image as the engine inspects it (or a NewImage's ``inspect``)
    changes: ImageChanges
    repository: str
    tag: str
    layer: BinaryIO | None = None
    layer_digest: str | None = None  # the layer's diff id when already known (the same file as another image's)

    def __post_init__(self) -> None:
        self.diff_id = self.layer_digest or (sha256_file(self.layer) if self.layer is not None else None)
        self.config = image_config(self.base, self.changes, self.diff_id)
        self.config_bytes = json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()
        self.id = "sha256:" + hashlib.sha256(self.config_bytes).hexdigest()

    @property
    def inspect(self) -> dict[str, Any]:
        """This image as :func:`image_config` reads a base (for an image loaded on top of it)."""
        return {
            "Config": self.config["config"],
            "RootFS": {"Type": "layers", "Layers": self.config["rootfs"]["diff_ids"]},
            "Architecture": self.config["architecture"],
            "Os": self.config["os"],
        }


def sha256_file(fileobj: BinaryIO) -> str:
    fileobj.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(1 << 20), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return "sha256:" + digest.hexdigest()


def image_config(base: dict[str, Any], changes: ImageChanges, diff_id: str | None) -> dict[str, Any]:
    """The config of an image made of ``base``'s layers (plus ``diff_id``'s) with ``changes`` applied."""
    layers = list((base.get("RootFS") or {}).get("Layers") or [])
    if not layers:
        raise SkiffError("the base image lists no layers")
    if diff_id is not None:
        layers.append(diff_id)
    config: dict[str, Any] = {
        "architecture": base.get("Architecture") or "amd64",
        "os": base.get("Os") or "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": changes.apply(base.get("Config") or {}),
        "rootfs": {"type": "layers", "diff_ids": layers},
    }
    if base.get("Variant"):
        config["variant"] = base["Variant"]
    return config


def loadable(layer: BinaryIO) -> bool:
    """True if no entry of the tar ``layer`` would be read as a whiteout when applied as a layer."""
    layer.seek(0)
    with tarfile.open(fileobj=layer, mode="r:") as tf:
        ok = not any(part.startswith(WHITEOUT) for member in tf for part in member.name.split("/"))
    layer.seek(0)
    return ok


def archive(images: list[NewImage]) -> BinaryIO:
    """The ``docker load`` archive of ``images`` (each base's layers are listed, never included)."""
    fileobj = tempfile.TemporaryFile(prefix="skiff-load-", suffix=".tar")
    manifest = []
    added: set[str] = set()  # one layer file may serve two images (a layer on the build and the run image)
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tf:

        def add(name: str, data: BinaryIO, size: int) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o644, int(time.time())
            tf.addfile(info, data)

        for image in images:
            hexid = image.id.split(":", 1)[1]
            add(f"{hexid}.json", io.BytesIO(image.config_bytes), len(image.config_bytes))
            paths = [f"{d.split(':', 1)[1]}/layer.tar" for d in image.config["rootfs"]["diff_ids"]]
            if image.layer is not None and paths[-1] not in added:
                added.add(paths[-1])
                image.layer.seek(0, 2)
                size = image.layer.tell()
                image.layer.seek(0)
                add(paths[-1], image.layer, size)
            manifest.append(
                {"Config": f"{hexid}.json", "RepoTags": [f"{image.repository}:{image.tag}"], "Layers": paths}
            )
        data = json.dumps(manifest).encode()
        add("manifest.json", io.BytesIO(data), len(data))
    fileobj.seek(0)
    return fileobj


def load(client: Any, images: list[NewImage]) -> list[str]:
    """Load ``images`` in one call; return their ids. Raises :class:`LoadRefused` when the engine refuses."""
    with archive(images) as data:
        try:
            for chunk in client.api.load_image(data):
                if isinstance(chunk, dict) and (chunk.get("error") or chunk.get("errorDetail")):
                    raise LoadRefused(str(chunk.get("error") or chunk.get("errorDetail")))
        except LoadRefused:
            raise
        except Exception as exc:
            import docker.errors

            if isinstance(exc, docker.errors.APIError):
                raise LoadRefused(str(exc.explanation or exc)) from exc
            raise
    for image in images:  # the engine made exactly the image whose config we wrote
        if client.api.inspect_image(f"{image.repository}:{image.tag}").get("Id") != image.id:
            raise LoadRefused(f"the engine loaded {image.repository}:{image.tag} with another id")
    return [image.id for image in images]


class LoadRefused(Exception):
    """The engine did not load an image archive (e.g. an image store that needs every layer file)."""


def supported(client: Any) -> bool:
    return _engine_key(client) not in _UNSUPPORTED


def mark_unsupported(client: Any) -> None:
    _UNSUPPORTED.add(_engine_key(client))


def _engine_key(client: Any) -> str:
    return str(getattr(getattr(client, "api", None), "base_url", "") or "")
