"""Shared virtualenv layers: one per stack and resolved set of verified wheels, built by Skiff itself.

After an app's uv build whose every installed distribution is a verified wheel of the
shared cache (:mod:`skiff_buildpacks.wheels`), Skiff installs exactly those wheel files
into ``/app/.venv`` in a container it runs itself (the stack image, no network, no app
config, no app cache, the wheels read-only), compiles their bytecode there and commits
it as ``skiff-shared/venv:<hash>``. A record under ``SKIFF_ROOT/cache/buildpacks/venvs/``
names the image and the requirement lines of the apps that resolved to it.

A later app with the same requirement lines still resolves them itself, against the
index, in its own build container (``uv pip compile``); only when that resolution is the
very set of the record does its dependency image become the shared layer (loaded with
the app's labels, no copy). Any other outcome installs as before. One app never decides
another's versions: the shared layer only ever stands in for the app's own resolution.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .wheels import WheelCache, normalize, parse_wheel, remove_exited

REPOSITORY = "skiff-shared/venv"
LABEL = "skiff.shared-venv"
HASH_RE = re.compile(r"\A[0-9a-f]{64}\Z")
#: a shared layer's copy onto a run image: ``skiff-shared/venv:run-<hash 16>-<run image id 12>``
RUN_TAG = re.compile(r"skiff-shared/venv:run-[0-9a-f]{16}-[0-9a-f]{12}")
MAX_LINE_SETS = 16  # requirement line sets remembered per record
RESOLVED = "/tmp/skiff-resolved.txt"  # where the build's resolve step writes its pins


def pins_hash(pins: Iterable[tuple[str, str]]) -> str:
    """The hash of a resolved set: sorted ``name==version`` lines, names and versions normalised.

    The driver computes the same from ``uv pip compile``'s output (``driver.pins_hash``).
    """
    lines = sorted({f"{normalize(name)}=={version.lower()}" for name, version in pins})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def files_hash(files: Iterable[str]) -> str:
    pins = []
    for name in files:
        parsed = parse_wheel(name)
        if parsed is None:
            raise ValueError(f"not a wheel file name: {name}")
        pins.append((parsed[0], parsed[1]))
    return pins_hash(pins)


class SharedVenvs:
    """The records of one stack's shared virtualenv layers (only Skiff writes them, on the host)."""

    def __init__(self, cache_dir: Path, stack_id: str):
        self.root = cache_dir / "venvs"
        self.dir = self.root / re.sub(r"[^0-9a-f]", "", stack_id.split(":")[-1])[:16]

    def get(self, digest: str) -> dict[str, Any] | None:
        if not HASH_RE.fullmatch(digest):
            return None
        try:
            record = json.loads((self.dir / f"{digest}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and isinstance(record.get("image"), str) else None

    def candidates(self, lines: list[str]) -> dict[str, dict[str, Any]]:
        """The records an app with these requirement lines may resolve to (hash -> record)."""
        found: dict[str, dict[str, Any]] = {}
        if not self.dir.is_dir():
            return found
        for path in self.dir.glob("*.json"):
            record = self.get(path.stem)
            if record is not None and sorted(lines) in [sorted(s) for s in record.get("lines", [])]:
                found[path.stem] = record
        return found

    def put(self, digest: str, image: str, files: list[str], lines: list[str]) -> dict[str, Any]:
        old = self.get(digest) or {}
        sets = [s for s in old.get("lines", []) if sorted(s) != sorted(lines)] if old.get("image") == image else []
        record = {"image": image, "files": sorted(files), "lines": [sorted(lines), *sets][:MAX_LINE_SETS]}
        if old.get("image") == image and isinstance(old.get("runs"), dict):
            record["runs"] = old["runs"]
        self._write(digest, record)
        return record

    def _write(self, digest: str, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".record-")
        with os.fdopen(fd, "w") as out:
            json.dump(record, out, sort_keys=True)
        os.replace(tmp, self.dir / f"{digest}.json")

    def run_copy(self, digest: str, run_id: str) -> str | None:
        """The tag of the shared layer's copy onto the run image ``run_id``, if one was made."""
        runs = (self.get(digest) or {}).get("runs")
        ref = runs.get(run_id) if isinstance(runs, dict) else None
        return ref if isinstance(ref, str) and RUN_TAG.fullmatch(ref) else None

    def put_run_copy(self, digest: str, run_id: str, ref: str) -> None:
        """Record ``ref`` as the shared layer's copy onto the run image ``run_id`` (made once per set)."""
        record = self.get(digest)
        if record is None or not RUN_TAG.fullmatch(ref):
            return
        runs = record.get("runs")
        record["runs"] = {**(runs if isinstance(runs, dict) else {}), run_id: ref}
        self._write(digest, record)

    def all(self) -> dict[str, dict[str, Any]]:
        """Every record of this stack (hash -> record)."""
        found: dict[str, dict[str, Any]] = {}
        for path in self.dir.glob("*.json") if self.dir.is_dir() else []:
            record = self.get(path.stem)
            if record is not None:
                found[path.stem] = record
        return found

    def add_lines(self, digest: str, lines: list[str]) -> None:
        record = self.get(digest)
        if record is not None and sorted(lines) not in [sorted(s) for s in record.get("lines", [])]:
            self.put(digest, record["image"], record.get("files", []), lines)

    def purge(self, client: Callable[[], Any] | None = None) -> int:
        """Forget every record (of every stack) and remove its image; return how many there were.

        ``client`` makes the engine client, called only when there is an image to remove.

        Apps' images made of a shared layer keep it: an image removed here only loses its tag.
        """
        count = 0
        if not self.root.is_dir():
            return 0
        for stack_dir in self.root.iterdir():
            for path in stack_dir.iterdir():
                record = (
                    SharedVenvs(self.root.parent, stack_dir.name).get(path.stem) if path.suffix == ".json" else None
                )
                if record is not None and client is not None:
                    runs = record.get("runs")
                    copies = [r for r in (runs.values() if isinstance(runs, dict) else []) if isinstance(r, str)]
                    for ref in [*(r for r in copies if RUN_TAG.fullmatch(r)), record["image"]]:
                        try:
                            client().images.remove(ref)
                        except Exception:
                            pass  # gone already, or in use
                path.unlink()
                count += path.suffix == ".json"
            stack_dir.rmdir()
        return count


def eligible(config: dict[str, str], texts: Iterable[str]) -> bool:
    """May an app's dependencies come from a shared layer? Only plain requirements and no install settings.

    Any ``UV_*``/``PIP_*`` config var or option line (``--hash``, ``--no-binary``, ``-e`` ...) keeps
    the app on its own install, where they take effect.
    """
    if any(key.startswith(("UV_", "PIP_")) for key in config):
        return False
    for text in texts:
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if re.match(r"(?:-r|--requirement|-c|--constraint)[\s=]", line):
                continue
            if line.startswith("-") or " -" in line or "@" in line or "://" in line:
                return False
    return True


def build_shared(
    client: Any,
    stack: Any,
    uv_dir: str,
    uv_mount: str,
    cache: WheelCache,
    files: list[str],
    lines: list[str],
    venv: str,
) -> tuple[str, bool]:
    """Make (or reuse) the shared layer of ``files`` on ``stack``; record ``lines`` for it.

    Returns ``(hash, built now)``. Runs the build driver in a container Skiff controls: no
    network, no app input but the names of verified wheels, ``/tmp`` in memory.
    """
    import docker.errors
    import docker.types

    from .build import BUILD_LABEL, driver_archive, with_entries

    records = SharedVenvs(cache.dir.parent, stack.id)
    digest = files_hash(files)
    record = records.get(digest)
    if record is not None:
        try:
            client.api.inspect_image(record["image"])
            records.add_lines(digest, lines)
            return digest, False
        except docker.errors.ImageNotFound:
            pass
    pins = []
    for name in sorted(files):
        parsed = parse_wheel(name)
        assert parsed is not None
        pins.append(f"{parsed[0]}=={parsed[1]}")
    remove_exited(client, LABEL)
    uid, _, gid = stack.user.partition(":")
    step = {
        "venv": venv,
        "run": [
            [f"{uv_mount}/uv", "pip", "install", "--no-deps", "--offline", "--no-index", "--find-links", "/w"]
            + ["--python", f"{venv}/bin/python", *pins]
        ],
        "env": {
            "UV_CACHE_DIR": "/tmp/uv",
            "UV_LINK_MODE": "copy",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        },
        "compile": {"venv": venv, "wheels": "/w"},
        "report_installed": venv,
    }
    plan = {"steps": [step], "env": {}, "path": stack.path, "env_dir": None, "config": {}, "ca": None}
    container = client.containers.create(
        stack.image,
        ["python3", "/build/skiff/driver.py"],
        user=stack.user,
        working_dir="/app",
        network_disabled=True,
        tmpfs={"/tmp": "size=512m,mode=1777"},
        mounts=[
            docker.types.Mount("/w", str(cache.dir), type="bind", read_only=True),
            docker.types.Mount(uv_mount, uv_dir, type="bind", read_only=True),
        ],
        labels={LABEL: digest},
    )
    try:
        root = io.BytesIO()
        with tarfile.open(fileobj=root, mode="w") as tf:
            info = tarfile.TarInfo("app")
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, int(uid), int(gid or uid)
            tf.addfile(info)
        with tempfile.TemporaryFile() as archive:
            archive.write(root.getvalue())
            with_entries(archive, driver_archive(plan, int(uid), int(gid or uid)))
            container.put_archive("/", archive)
        container.start()
        logs = b"".join(container.logs(stream=True, follow=True))
        if container.wait().get("StatusCode", 1) != 0:
            raise RuntimeError("installing the shared wheels failed: " + logs.decode("utf-8", "replace")[-300:])
        if not _installed_exactly(logs, pins):
            raise RuntimeError("the shared layer does not hold exactly the wheels it was built from")
        changes = [f'LABEL {LABEL}="{digest}" {BUILD_LABEL}=""']
        image = container.commit(repository=REPOSITORY, tag=digest[:16], changes=changes)
    finally:
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass
    records.put(digest, image.id, files, lines)
    return digest, True


def _installed_exactly(logs: bytes, pins: list[str]) -> bool:
    from .build import MARK

    for line in logs.decode("utf-8", "replace").split("\n"):  # not splitlines: it splits at the mark
        if line.startswith(MARK) and '"report": "installed"' in line:
            data = json.loads(line[1:]).get("data") or []
            got = sorted(f"{normalize(d['name'])}=={d['version'].lower()}" for d in data)
            return got == sorted(p.lower() for p in pins)
    return False
