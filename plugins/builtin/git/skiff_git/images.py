"""Prebuilt images for ``git:load-image`` and ``git:from-image``.

A ``docker save`` tarball is never handed to the engine as it came: the
engine's ``docker load`` restores the tags the tarball names, and a tarball
can name any tag (``skiff/stack:trixie``, another app's ``skiff/<app>:...``).
:func:`rewrite` copies it member by member (bounded size and member count,
safe names, no devices or hard links, links that stay inside) into a new
plain tar whose ``manifest.json`` has no ``RepoTags``, without the legacy
``repositories`` file, and whose OCI ``index.json`` has no image-name
annotations. The engine then loads an untagged image, known by its id (the
digest of its config), and the image builder tags the app's own image
``skiff/<app>:<build id>`` from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff import contracts, validate
from skiff.errors import SkiffError, ValidationError

MAX_INDEX = 4 * 1024 * 1024  # manifest.json, index.json, repositories, each config
NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_size: int = 4 * 1024**3
    max_members: int = 100_000


@dataclass
class Entry:
    """One image of a tarball's ``manifest.json``."""

    config: str
    tags: list[str]
    layers: list[str]
    image_id: str = ""


@dataclass
class Rewritten:
    entries: list[Entry]
    dropped_tags: list[str] = field(default_factory=list)

    def choose(self, wanted: str | None) -> Entry:
        """The entry tagged ``wanted`` (``name`` means ``name:latest``), or the only one."""
        if wanted is None:
            if len(self.entries) == 1:
                return self.entries[0]
            raise ValidationError(
                f"the tarball holds {len(self.entries)} images: name the one to deploy "
                f"(git:load-image APP IMAGE; its tags: {', '.join(self.dropped_tags) or 'none'})"
            )
        want = normalise(wanted)
        for entry in self.entries:
            if want in {normalise(tag) for tag in entry.tags}:
                return entry
        raise ValidationError(
            f"the tarball has no image tagged {wanted}; its tags: {', '.join(self.dropped_tags) or 'none'}"
        )


def normalise(ref: str) -> str:
    """``name`` -> ``name:latest``; ``docker.io/library/x`` -> ``x`` (as the engine shows them)."""
    repo, tag = validate.image_name(ref)
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix) :]
            break
    return f"{repo}{tag if tag.startswith('@') else ':' + tag}"


def _member_name(name: str) -> str:
    if "\x00" in name or "\\" in name or name.startswith("/"):
        raise ValidationError(f"the tarball has an unsafe member name: {validate.shown(name)}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        raise ValidationError(f"the tarball has a member outside its tree: {validate.shown(name)}")
    return "/".join(parts)


def _check_link(name: str, target: str) -> None:
    """``docker save`` links a repeated layer to ``../<id>/layer.tar``: relative, inside the tarball."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if not target or target.startswith("/") or "\x00" in target or joined.startswith(".."):
        raise ValidationError(f"the tarball has a link that leaves it: {name} -> {validate.shown(target)}")


def _read_small(archive: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> bytes:
    if member.size > MAX_INDEX:
        raise ValidationError(f"the tarball's {what} is larger than {MAX_INDEX // 1024**2} MiB")
    data = archive.extractfile(member)
    assert data is not None
    return data.read()


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"the tarball's {what} is not valid JSON") from exc


def parse_manifest(raw: bytes) -> list[Entry]:
    """The entries of ``manifest.json`` (full shape check: a list of {Config, RepoTags, Layers})."""
    data = _json(raw, "manifest.json")
    if not isinstance(data, list) or not data:
        raise ValidationError("the tarball's manifest.json lists no image")
    entries = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise ValidationError("the tarball's manifest.json has an entry without Config")
        tags = item.get("RepoTags") or []
        layers = item.get("Layers") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValidationError("the tarball's manifest.json has invalid RepoTags")
        if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
            raise ValidationError("the tarball's manifest.json has invalid Layers")
        for tag in tags:
            validate.image_reference(tag, "tarball tag")
        entries.append(Entry(_member_name(item["Config"]), tags, [_member_name(layer) for layer in layers]))
    return entries


def strip_manifest(raw: bytes) -> bytes:
    data = _json(raw, "manifest.json")
    for item in data:
        item["RepoTags"] = None
    return json.dumps(data).encode()


def strip_index(raw: bytes) -> bytes:
    """``index.json`` without the annotations that name images (a containerd store would tag them)."""
    data = _json(raw, "index.json")
    if not isinstance(data, dict):
        raise ValidationError("the tarball's index.json is not an OCI index")
    for manifest in data.get("manifests") or []:
        if isinstance(manifest, dict) and isinstance(manifest.get("annotations"), dict):
            for key in NAME_ANNOTATIONS:
                manifest["annotations"].pop(key, None)
    return json.dumps(data).encode()


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValidationError("the input is not a docker save tarball (tar, or gzip/bzip2/xz of one)") from exc


def _scan(path: Path, limits: Limits) -> tuple[list[Entry], set[str]]:
    """First pass: check every member; return the manifest's entries and the regular files' names."""
    entries: list[Entry] | None = None
    files: set[str] = set()
    size = members = 0
    with _open(path) as archive:
        while True:
            member = archive.next()
            if member is None:
                break
            archive.members = []  # type: ignore[attr-defined]  # keep no headers in memory
            members += 1
            if members > limits.max_members:
                raise ValidationError(f"the tarball has more than {limits.max_members} members")
            name = _member_name(member.name)
            if member.isreg():
                size += member.size
                if size > limits.max_size:
                    raise ValidationError(
                        f"the tarball is larger than {_size(limits.max_size)} (setting image-max-size)"
                    )
                files.add(name)
                if name == "manifest.json":
                    entries = parse_manifest(_read_small(archive, member, name))
            elif member.issym():
                _check_link(name, member.linkname)
                files.add(name)
            elif not member.isdir():
                raise ValidationError(f"the tarball has a hard link or special file: {validate.shown(name)}")
    if entries is None:
        raise ValidationError("the tarball has no manifest.json: make it with docker save (docker image save IMAGE)")
    for entry in entries:
        for needed in (entry.config, *entry.layers):
            if needed not in files:
                raise ValidationError(f"the tarball's manifest.json names {validate.shown(needed)}, which it lacks")
    return entries, files


def rewrite(path: Path, dest: Path, limits: Limits = Limits()) -> Rewritten:
    """Check the tarball at ``path`` and write its untagged copy to ``dest``; return its images."""
    try:
        entries, _ = _scan(path, limits)
        configs = {entry.config: entry for entry in entries}
        dropped = [tag for entry in entries for tag in entry.tags]
        with _open(path) as archive, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
            while True:
                member = archive.next()
                if member is None:
                    break
                archive.members = []  # type: ignore[attr-defined]  # keep no headers in memory
                name = _member_name(member.name)
                if name == "repositories":
                    continue  # the legacy tag list: never loaded
                copy = tarfile.TarInfo(name)
                copy.mode, copy.mtime = member.mode & 0o755, member.mtime
                if member.isdir():
                    copy.type = tarfile.DIRTYPE
                    out.addfile(copy)
                elif member.issym():
                    copy.type, copy.linkname = tarfile.SYMTYPE, member.linkname
                    out.addfile(copy)
                elif name in ("manifest.json", "index.json") or name in configs:
                    raw = _read_small(archive, member, name)
                    if name == "manifest.json":
                        raw = strip_manifest(raw)
                    elif name == "index.json":
                        raw = strip_index(raw)
                    if name in configs:
                        configs[name].image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
                    copy.size = len(raw)
                    out.addfile(copy, io.BytesIO(raw))
                else:
                    copy.size = member.size
                    out.addfile(copy, archive.extractfile(member))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValidationError(f"the tarball is damaged: {_first_line(exc)}") from exc
    return Rewritten(entries, dropped)


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load(client: Any, tarball: Path) -> None:
    """``docker load`` the rewritten tarball (it names no tag, so none changes)."""
    import docker.errors

    try:
        with open(tarball, "rb") as data:
            for chunk in client.api.load_image(data):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise SkiffError(f"the engine refused the image: {_first_line(Exception(chunk['error']))}")
    except docker.errors.APIError as exc:
        raise SkiffError(f"the engine refused the image: {_first_line(Exception(exc.explanation or exc))}") from exc


# -- the image builder -----------------------------------------------------------------

BUILDER = "image"
OWN_LABELS = ("skiff.app", "skiff.build", "skiff.builder")


def build(deploy: Any, client: Any) -> str:
    """Tag the app's own image ``skiff/<app>:<build id>`` from the source's image id.

    A one-line ``FROM <id>`` build adds the labels the scheduler needs
    (``skiff.app``): a loaded or pulled image cannot be relabelled otherwise.
    Other ``skiff.*`` labels the image carries (another app's, a stack's) are
    blanked, so no other app's cleanup ever selects this one.
    """
    import secrets
    import time

    import docker.errors

    source = deploy.source
    name = source.extra.get("name") or source.location
    try:
        image = client.images.get(source.location)
    except docker.errors.ImageNotFound:
        raise SkiffError(
            f"image {name} ({source.location[:19]}) that {deploy.app} was deployed from is no longer on this server: "
            f"deploy it again with git:load-image {deploy.app} or git:from-image {deploy.app} IMAGE"
        ) from None
    tag = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    ref = f"skiff/{deploy.app}:{tag}"
    inherited = (image.attrs.get("Config") or {}).get("Labels") or {}
    labels = {key: "" for key in inherited if key.startswith("skiff.") and key not in OWN_LABELS}
    labels.update({"skiff.app": deploy.app, "skiff.build": tag, "skiff.builder": BUILDER})
    (deploy.workdir / "Dockerfile").write_text(f"FROM {image.id}\n")
    error = ""
    for chunk in client.api.build(
        path=str(deploy.workdir), tag=ref, rm=True, forcerm=True, pull=False, decode=True, labels=labels
    ):
        if "error" in chunk:
            error = str(chunk["error"]).strip()
    if error:
        raise SkiffError(f"cannot tag the image for {deploy.app}: {error.splitlines()[0]}")
    built = client.images.get(ref)
    deploy.meta.update(
        {
            "exposed_ports": contracts.image_exposed_ports(built.attrs),
            "image_id": built.id,
            "image_source": {
                "image": source.extra.get("name") or image.id,
                "id": image.id,
                "how": source.extra.get("how") or "image",
            },
        }
    )
    deploy.output.step(f"Tagged {ref} from {source.extra.get('name') or image.id[:19]}")
    return ref


def other_app(image_attrs: dict[str, Any], tags: list[str], app: str, is_app: Callable[[str], bool]) -> str | None:
    """The other app an image on the server belongs to (its labels or ``skiff/<app>`` tags), if any."""
    labels = (image_attrs.get("Config") or {}).get("Labels") or {}
    for key in ("skiff.app", "skiff.deps", "skiff.build-for"):
        owner = labels.get(key)
        if owner and owner != app:
            return owner
    for tag in tags:
        repo = tag.rsplit(":", 1)[0]
        if repo.startswith("skiff/"):
            owner = repo[len("skiff/") :]
            if owner != app and validate.APP_NAME.fullmatch(owner) and is_app(owner):
                return owner
    return None


def read_stdin(dest: Path, max_size: int) -> None:
    """Save stdin to ``dest``, at most ``max_size`` bytes."""
    import sys

    total = 0
    with open(dest, "wb") as out:
        while chunk := sys.stdin.buffer.read(CHUNK):
            total += len(chunk)
            if total > max_size:
                raise ValidationError(f"the tarball is larger than {max_size // 1024**2} MiB (setting image-max-size)")
            out.write(chunk)
    if total == 0:
        raise ValidationError("no tarball on stdin: docker image save IMAGE | ssh skiff@HOST git:load-image APP")
