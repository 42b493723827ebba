"""Turn a source tree into an image: a cached dependency layer, then a code layer.

No Dockerfile and no ``docker build``: a build container runs the packs'
steps as the stack's non-root user and is committed (``docker commit``).

1. dependencies: a container from the stack image gets the dependency files
   (``put_archive``), runs the install steps with the per-app package cache
   and the host CA bundle mounted, and is committed as
   ``skiff/<app>:deps-<key>``. The key hashes the dependency files, the steps,
   the stack image id and the pack versions; a build with the same key reuses
   the image and skips the install.
2. code: a container from the dependency image gets the source under /app;
   compile steps run in it when a pack has some (npm run build,
   collectstatic); it is committed as ``skiff/<app>:<build id>`` with the
   runtime env, ``USER``, ``WORKDIR`` and ``CMD``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from skiff.errors import SkiffError
from skiff.output import Output

MARK = "\x1e"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_USER = "1000:1000"
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
BUILD_LABEL = "skiff.build-for"  # on build containers: the app
DEPS_LABEL = "skiff.deps"  # on dependency images: the app
CACHE_LABEL = "skiff.cache"  # on package-cache volumes: the app
ALWAYS_EXCLUDED = {".git"}
BUILDER_VERSION = "1"
# App config vars whose value changes how dependencies install: part of the layer key.
KEY_CONFIG_PREFIXES = (
    "PIP_",
    "NPM_CONFIG_",
    "npm_config_",
    "NODE_",
    "PYTHON",
    "UV_",
    "POETRY_",
    "BUILD_",
    "COMPOSER",
    "BUNDLE_",
    "GEM_",
    "YARN_",
)


@dataclass
class Stack:
    image: str
    id: str
    python: str = ""
    node: str = ""
    user: str = DEFAULT_USER
    path: str = DEFAULT_PATH
    #: not built yet: the stack of a Debian suite the stack plugin builds on first use (``python`` is its minor)
    buildable: bool = False


@dataclass
class Build:
    """What packs see of one build."""

    app: str
    source: Path
    config: dict[str, str]
    stack: Stack
    stacks: list[Stack] | None
    output: Output
    packs: list[str] = field(default_factory=list)
    stacks_loader: Callable[[], list[Stack]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the buildpacks settings of the app
    cache_dir: Path | None = None  # the server's download cache (SKIFF_ROOT/cache/buildpacks), skiff writes it
    toolchain_loader: Callable[..., Any] | None = None
    #: make a stack current before it is used (build a buildable one, rebuild a stale one); returns it afresh
    stack_ensurer: Callable[[Stack], Stack] | None = None

    def available_stacks(self) -> list[Stack]:
        """Every stack image present, the configured one first (listed on first use: it costs engine calls)."""
        if self.stacks is None:
            self.stacks = self.stacks_loader() if self.stacks_loader else [self.stack]
        return self.stacks

    def has(self, relpath: str) -> bool:
        """True if ``relpath`` is a regular file or directory of the source, reached without symlinks.

        A symlinked file or parent directory could point outside the source (at a host
        file the build would then copy into the image), so it does not count.
        """
        parts = Path(relpath).parts
        if not parts or Path(relpath).is_absolute() or ".." in parts:
            return False
        path = self.source
        for part in parts:
            path = path / part
            if path.is_symlink():
                return False
        return path.exists()

    def read(self, relpath: str) -> str:
        if not self.has(relpath):
            raise SkiffError(f"{relpath} is missing or a symlink")
        try:
            return (self.source / relpath).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SkiffError(f"{relpath} is not valid UTF-8") from None

    def toolchain(self, name: str, packages: list[str], version_command: list[str]) -> Any:
        """The build's stack with Debian ``packages`` added (``skiff/stack-NAME:SUITE``), made on first use.

        Returns a :class:`skiff_buildpacks.toolchains.Toolchain` (``image``, ``version``: what
        ``version_command`` printed). Compile in it with a ``stage`` (see the compile hook).
        """
        if self.toolchain_loader is None:
            raise SkiffError(f"no Docker engine to build the {name} toolchain layer")
        return self.toolchain_loader(self.stack, name, packages, version_command)

    def use_stack(self, stack: Stack) -> Stack:
        """Switch this build to another stack (e.g. for a Python version); return it as it now is.

        A stack not built yet (``buildable``) is built first, and a stale one rebuilt
        (``stack_ensurer``); the list of available stacks then holds the built one.
        """
        if self.stack_ensurer is not None and (stack.buildable or stack is not self.stack):
            ready = self.stack_ensurer(stack)
            if self.stacks is not None:
                self.stacks = [ready if s.image == stack.image else s for s in self.stacks]
            stack = ready
        elif stack.buildable:
            raise SkiffError(f"the stack {stack.image} is not built: run 'skiff stack:build'")
        self.stack = stack
        return stack

    def switch_to_stack_where(self, fits: Callable[[Stack], bool]) -> Stack | None:
        """Keep the stack if ``fits`` it, else switch to the first available one that does.

        Returns the stack the build now uses, or ``None`` (unchanged) when none fits.
        """
        if fits(self.stack):
            return self.stack
        for stack in self.available_stacks():
            if fits(stack):
                return self.use_stack(stack)
        return None


def build_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def image_tag(app: str, tag: str) -> str:
    return f"skiff/{app}:{tag}"


# -- streaming the driver's output ------------------------------------------


class Progress:
    """Turns the driver's output into ``----->`` lines, indented tool output and step times."""

    def __init__(self, out: Output):
        self.out = out
        self.failed: tuple[str, int] | None = None
        self.reports: dict[str, Any] = {}  # what the driver reported (``installed``: untrusted data)
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.line(line.decode("utf-8", "replace"))

    def close(self) -> None:
        if self._buffer:
            self.line(self._buffer.decode("utf-8", "replace"))
            self._buffer = b""

    def line(self, text: str) -> None:
        text = text.rstrip("\r")
        if "\r" in text:  # progress bars: keep the last state
            text = text.rsplit("\r", 1)[-1]
        if text.startswith(MARK):
            try:
                data = json.loads(text[1:])
            except ValueError:
                return
            if "step" in data:
                self.out.step(data["step"])
            elif "done" in data:
                self.out.info(f"done in {data['seconds']:.1f}s")
            elif "fail" in data:
                self.failed = (data["fail"], int(data.get("code", 1)))
            elif "report" in data and isinstance(data["report"], str):
                self.reports[data["report"]] = data.get("data")
            return
        self.out.info(text)


# -- containers ------------------------------------------------------------


@contextmanager
def code_tar(
    source: Path,
    exclude: Iterable[str],
    extra: dict[str, bytes],
    uid: int,
    gid: int,
    only: Iterable[str] | None = None,
    tmpdir: Path | None = None,
) -> Iterator[BinaryIO]:
    """A tar of ``source`` under ``app/`` (owned by uid:gid), plus ``extra`` files, in a temporary file.

    The tar is written to disk (in ``tmpdir``) and streamed to the engine from there, so a large
    source never sits in memory. The file is positioned at its start and deleted on exit.
    """
    with tempfile.TemporaryFile(dir=tmpdir, prefix="skiff-code-", suffix=".tar") as fileobj:
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tf:
            _CodeTar(tf, source, uid, gid).add_all(exclude, extra, only)
        fileobj.seek(0)
        yield fileobj


def archive_size(fileobj: BinaryIO) -> int:
    """The size in bytes of an archive file from :func:`code_tar`."""
    return os.fstat(fileobj.fileno()).st_size


class _CodeTar:
    """Writes the entries of :func:`code_tar` into an open tarfile."""

    def __init__(self, tf: tarfile.TarFile, source: Path, uid: int, gid: int):
        self.tf, self.source, self.uid, self.gid = tf, source, uid, gid
        self.dirs_added = {"app"}

    def owned(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = self.uid, self.gid, "", ""
        info.mode |= 0o600 if not info.isdir() else 0o700
        return info

    def add_all(self, exclude: Iterable[str], extra: dict[str, bytes], only: Iterable[str] | None) -> None:
        root = tarfile.TarInfo("app")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        self.tf.addfile(self.owned(root))
        if only is not None:
            for rel in only:
                self.add_dirs(rel)
                self.tf.add(self.source / rel, arcname=f"app/{rel}", recursive=False, filter=self.owned)
        else:
            self.add_tree(set(ALWAYS_EXCLUDED) | {e.strip("/") for e in exclude})
        for rel, data in sorted(extra.items()):
            self.add_dirs(rel)
            info = tarfile.TarInfo(f"app/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            self.tf.addfile(self.owned(info), io.BytesIO(data))

    def add_dirs(self, rel: str) -> None:
        parts = Path(rel).parts[:-1]
        for i in range(1, len(parts) + 1):
            name = "app/" + "/".join(parts[:i])
            if name not in self.dirs_added:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                self.tf.addfile(self.owned(info))
                self.dirs_added.add(name)

    def add_tree(self, excluded: set[str]) -> None:
        """Regular files, directories and symlinks of the source, sorted, without ``excluded`` paths."""
        for dirpath, dirnames, filenames in os.walk(self.source):
            rel_dir = os.path.relpath(dirpath, self.source)
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(d for d in dirnames if os.path.join(rel_dir, d) not in excluded)
            for name in sorted(dirnames) + sorted(filenames):
                rel = os.path.join(rel_dir, name)
                if rel in excluded:
                    continue
                path = os.path.join(dirpath, name)
                mode = os.lstat(path).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                    continue
                self.tf.add(path, arcname=f"app/{rel}", recursive=False, filter=self.owned)
                if stat.S_ISDIR(mode):
                    self.dirs_added.add(f"app/{rel}")


def add_outputs(archive: BinaryIO, outputs: BinaryIO, parent: str, uid: int, gid: int) -> BinaryIO:
    """Append the regular files and directories of the tar ``outputs`` under ``app/<parent>/``.

    ``outputs`` comes from a build container (:meth:`Runner.collect`): names that climb
    out, links and devices are left out; modes keep their execute bits. Returns
    ``archive`` at its start.
    """
    base = "/".join(["app", *Path(parent).parts[:-1]]) if parent else "app"
    archive.seek(0)
    with tarfile.open(fileobj=outputs, mode="r:") as src:
        with tarfile.open(fileobj=archive, mode="a", format=tarfile.PAX_FORMAT) as out:
            for member in src:
                parts = Path(member.name).parts
                if not parts or Path(member.name).is_absolute() or ".." in parts:
                    continue
                if not (member.isfile() or member.isdir()):
                    continue
                info = tarfile.TarInfo(f"{base}/{'/'.join(parts)}")
                info.type, info.mtime, info.uid, info.gid = member.type, member.mtime, uid, gid
                info.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
                if member.isfile():
                    info.size = member.size
                    out.addfile(info, src.extractfile(member))
                else:
                    out.addfile(info)
    archive.seek(0)
    return archive


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (the engine's archive stream), for ``tarfile``'s stream mode."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def changed_entries(stream: Iterable[bytes], changed: set[str]) -> BinaryIO:
    """The entries of the tar ``stream`` (named ``app/...``) whose ``/app/...`` path is in ``changed``.

    Returns a temporary tar file at its start.
    """
    fileobj = tempfile.TemporaryFile(prefix="skiff-changes-", suffix=".tar")
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as src:
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as out:
            for member in src:
                if "/" + member.name.rstrip("/") not in changed:
                    continue
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
    fileobj.seek(0)
    return fileobj


def _engine_errors() -> tuple[type[BaseException], ...]:
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    return (docker.errors.APIError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


def engine_error(exc: BaseException) -> SkiffError:
    """One clear line for a Docker engine failure in the middle of a build."""
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        return SkiffError(f"the Docker engine refused: {exc.explanation or exc}")
    return SkiffError(
        f"lost the connection to the Docker engine during the build ({type(exc).__name__}); is dockerd running?"
    )


def remove_leftover_build_containers(client, app: str) -> None:
    """Remove build containers of ``app`` left by a killed build (the app lock is held: none is live)."""
    for container in client.containers.list(all=True, filters={"label": f"{BUILD_LABEL}={app}"}, sparse=True):
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass


def cache_volume(app: str) -> str:
    """The Docker volume holding ``app``'s package cache (pip, npm)."""
    return f"skiff-cache-{app}"


def _file_entry(name: str, data: bytes, uid: int, gid: int, mode: int) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, int(time.time())
    return info, data


def driver_archive(plan: dict[str, Any], uid: int, gid: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """Tar entries for /build/skiff: the driver and its plan (which holds the app's config).

    They go into the container's own layer with ``put_archive`` (no host file the build
    user must be able to read) and the driver deletes them before any step runs, so they
    never reach the committed image.
    """
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name in ("build", "build/skiff"):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o700 if name == "build/skiff" else 0o755, uid, gid
        entries.append((info, None))
    entries.append(
        _file_entry("build/skiff/driver.py", Path(__file__).with_name("driver.py").read_bytes(), uid, gid, 0o400)
    )
    entries.append(_file_entry("build/skiff/plan.json", json.dumps(plan).encode(), uid, gid, 0o400))
    return entries


def with_entries(archive: BinaryIO, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> BinaryIO:
    """Append ``entries`` to ``archive`` (an uncompressed tar file from :func:`code_tar`), in place.

    Returns the same file, positioned at its start.
    """
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="a", format=tarfile.PAX_FORMAT) as out:
        for info, data in entries:
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    archive.seek(0)
    return archive


class Runner:
    """Creates, feeds, runs and commits build containers for one build."""

    def __init__(self, client, build: Build, settings: dict[str, Any]):
        self.client = client
        self.build = build
        self.settings = settings
        uid, _, gid = build.stack.user.partition(":")
        self.uid, self.gid = int(uid), int(gid or uid)
        self.reports: dict[str, Any] = {}  # the driver's reports of the last run
        self.exported: BinaryIO | None = None  # the archive ``run(export=...)`` read; the caller closes it
        self._removals: list[threading.Thread] = []

    def _plan(self, steps: list[dict[str, Any]], env: dict[str, str], shared: Iterable[str] = ()) -> dict[str, Any]:
        return {
            "shared": list(shared),
            "steps": steps,
            "env": env,
            "path": env.get("PATH") or self.build.stack.path,
            "env_dir": "/build/env",
            "config": self.build.config,
            "ca": "/build/ca-certificates.crt" if self._ca() else None,
        }

    def _ca(self) -> str | None:
        if not self.settings.get("trust-host-ca", True):
            return None
        bundle = self.settings.get("ca-bundle") or DEFAULT_CA
        if not os.path.isfile(bundle):
            self.build.output.warn(f"CA bundle {bundle} not found; builds use the stack's own CAs")
            return None
        return bundle

    def _mounts(self, read_only: dict[str, str] | None = None) -> list:
        from docker.types import Mount

        # A named volume (under Docker's root-only data dir) rather than a host directory:
        # no host user can read or poison the cache, and skiff needs no chown.
        mounts = [
            Mount("/build/cache", cache_volume(self.build.app), type="volume", labels={CACHE_LABEL: self.build.app})
        ]
        ca = self._ca()
        if ca:
            mounts.append(Mount("/build/ca-certificates.crt", ca, type="bind", read_only=True))
        for target, source in sorted((read_only or {}).items()):  # server caches only Skiff writes
            mounts.append(Mount(target, source, type="bind", read_only=True))
        return mounts

    def run(
        self,
        image: str,
        steps: list[dict[str, Any]],
        env: dict[str, str],
        archive: BinaryIO,
        changes: ImageChanges,
        repository: str,
        tag: str,
        archives: Iterable[str] = (),
        read_only: dict[str, str] | None = None,
        shared: list[str] | None = None,
        export: str | None = None,
    ) -> str:
        """Run ``steps`` in a container of ``image`` holding ``archive`` (a tar file, streamed); commit it.

        See :meth:`run_or_export` (here never without a commit).
        """
        image_id = self.run_or_export(
            image, steps, env, archive, changes, repository, tag, archives, read_only, shared, export
        )
        assert image_id is not None  # only with ``load``
        return image_id

    def run_or_export(
        self,
        image: str,
        steps: list[dict[str, Any]],
        env: dict[str, str],
        archive: BinaryIO,
        changes: ImageChanges,
        repository: str,
        tag: str,
        archives: Iterable[str] = (),
        read_only: dict[str, str] | None = None,
        shared: list[str] | None = None,
        export: str | None = None,
        load: bool = False,
    ) -> str | None:
        """Run ``steps`` in a container of ``image`` holding ``archive`` (a tar file, streamed); commit it.

        Returns the image id. With steps, the driver and its plan are appended to ``archive``.
        ``archives`` are host paths of more tar files (from the server's cache) put in after it;
        ``read_only`` maps container paths to server directories bind-mounted read-only.
        ``shared``: hashes of shared layers the steps may resolve to; when the driver reports one
        of them, nothing is committed and ``""`` is returned (the caller makes the layer).
        ``export``: a path in the container whose archive (entries named after its last element)
        is read while the commit runs and left in :attr:`exported` (a temporary file, or None).
        ``load`` (with ``export``): the archive is read first, and when it can be a layer (no whiteout
        name) nothing is committed and None is returned: the caller loads the layer made of it.
        """
        from . import layers

        with self._container(image, steps, env, archive, archives, read_only, shared or []) as container:
            if shared and self.reports.get("shared_venv") in shared:
                return ""
            if export and load:
                self.exported = self._export(container, export)
                if self.exported is not None and layers.loadable(self.exported):
                    return None
                if self.exported is not None:
                    self.exported.close()
                self.exported = None  # committed below, and read again while it is
            if not export:
                return container.commit(repository=repository, tag=tag, changes=changes.dockerfile()).id
            # the archive of ``export`` streams out of this very container while the engine commits it
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiff-export")
            exported = pool.submit(self._export, container, export)
            pool.shutdown(wait=False)
            try:
                image_id = container.commit(repository=repository, tag=tag, changes=changes.dockerfile()).id
            finally:
                self.exported = exported.result()
            return image_id

    def _export(self, container, path: str) -> BinaryIO | None:
        """The engine's archive of ``path`` in ``container`` as a temporary file at its start (None: it failed)."""
        fileobj = tempfile.TemporaryFile(prefix="skiff-export-", suffix=".tar")
        try:
            stream, _ = container.get_archive(path)
            for chunk in stream:
                fileobj.write(chunk)
        except _engine_errors():
            fileobj.close()
            return None  # the caller copies another way
        fileobj.seek(0)
        return fileobj

    def copy_app(self, source: str, image: str, changes: list[str], repository: str, tag: str) -> str:
        """Commit a container of ``image`` holding ``/app`` of the image ``source``; return the image id.

        The tree streams from one container to the other through the engine (never unpacked
        here); neither container runs.
        """
        src = dst = None
        try:
            src = self.client.containers.create(
                source, ["true"], labels={BUILD_LABEL: self.build.app}, network_disabled=True
            )
            dst = self.client.containers.create(
                image, ["true"], labels={BUILD_LABEL: self.build.app}, network_disabled=True
            )
            stream, _ = src.get_archive("/app")
            dst.put_archive("/", stream)
            return dst.commit(repository=repository, tag=tag, changes=changes).id
        except _engine_errors() as exc:
            raise engine_error(exc) from exc
        finally:
            for container in (src, dst):
                if container is not None:
                    self._discard(container)

    def compile_changes(
        self, image: str, steps: list[dict[str, Any]], env: dict[str, str], archive: BinaryIO
    ) -> BinaryIO:
        """Run ``steps`` in a container of ``image`` holding ``archive``; return what changed under /app.

        The result is a tar file (at its start) of the entries under ``/app`` that the
        archive and the steps added or modified, as the engine's diff of the container
        says: the code and the compile steps' outputs, without the unchanged files of
        the dependency layer. Files the steps deleted from the dependency layer are
        not carried over.
        """
        with self._container(image, steps, env, archive) as container:
            changed = {
                entry["Path"]
                for entry in container.diff() or []
                if entry.get("Kind") in (0, 1) and (entry["Path"] == "/app" or entry["Path"].startswith("/app/"))
            }
            stream, _ = container.get_archive("/app")
            return changed_entries(stream, changed)

    def collect(
        self, image: str, steps: list[dict[str, Any]], env: dict[str, str], archive: BinaryIO, paths: list[str]
    ) -> list[BinaryIO]:
        """Run ``steps`` like :meth:`run`, then return what they left at ``/app/<path>``, one tar file each.

        The container is not committed; each tar (entries named after the path's last
        element, as the engine's archive API gives them) is a temporary file at its start.
        """
        import docker.errors

        results: list[BinaryIO] = []
        with self._container(image, steps, env, archive) as container:
            for rel in paths:
                try:
                    stream, _ = container.get_archive(f"/app/{rel}")
                except docker.errors.NotFound:
                    raise SkiffError(f"the build left no /app/{rel}") from None
                fileobj = tempfile.TemporaryFile(prefix="skiff-out-", suffix=".tar")
                for chunk in stream:
                    fileobj.write(chunk)
                fileobj.seek(0)
                results.append(fileobj)
        return results

    @contextmanager
    def _container(
        self,
        image: str,
        steps: list[dict[str, Any]],
        env: dict[str, str],
        archive: BinaryIO,
        archives: Iterable[str] = (),
        read_only: dict[str, str] | None = None,
        shared: list[str] | None = None,
    ) -> Iterator[Any]:
        """A container of ``image`` with ``archive`` (then the tar files at ``archives``) in it and ``steps`` run.

        The container is removed on exit.
        """
        container = None
        try:
            kwargs: dict[str, Any] = dict(
                user=self.build.stack.user, working_dir="/app", labels={BUILD_LABEL: self.build.app}, detach=True
            )
            if steps:
                kwargs["mounts"] = self._mounts(read_only)
                # ENV_DIR lives in memory: a tmpfs is never part of a commit
                kwargs["tmpfs"] = {"/build/env": f"size=4m,mode=0700,uid={self.uid},gid={self.gid}"}
                command = ["python3", "/build/skiff/driver.py"]
                with_entries(archive, driver_archive(self._plan(steps, env, shared or []), self.uid, self.gid))
            else:
                command = ["true"]
                kwargs["network_disabled"] = True
            container = self.client.containers.create(image, command, **kwargs)
            archive.seek(0)
            container.put_archive("/", archive)
            for path in archives:
                with open(path, "rb") as extra:
                    container.put_archive("/", extra)
            if steps:
                container.start()
                progress = Progress(self.build.output)
                for chunk in container.logs(stream=True, follow=True):
                    progress.feed(chunk)
                progress.close()
                self.reports = progress.reports
                status = container.wait().get("StatusCode", 1)
                if status != 0:
                    what, code = progress.failed or ("the build", status)
                    raise SkiffError(f"{what} failed (exit {code})")
            yield container
        except _engine_errors() as exc:
            raise engine_error(exc) from exc
        finally:
            if container is not None:
                self._discard(container)

    def _discard(self, container) -> None:
        """Remove a finished build container in the background (:meth:`finish` waits for it)."""

        def remove() -> None:
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass  # a leftover is removed by the next build of the app

        thread = threading.Thread(target=remove, name="skiff-remove-build-container", daemon=True)
        thread.start()
        self._removals.append(thread)

    def finish(self) -> None:
        """Wait for the build containers being removed."""
        for thread in self._removals:
            thread.join()
        self._removals = []


def hash_key(
    build: Build,
    pack_versions: list[tuple[str, str]],
    files: list[str],
    generated: dict[str, bytes],
    steps: list[dict[str, Any]],
    env: dict[str, str],
    archives: list[str] | None = None,
) -> str:
    """The dependency layer's key (``archives``: the keys of the cached archives it gets, e.g. a Node.js release)."""
    h = hashlib.sha256()

    def put(data: Any) -> None:
        h.update(json.dumps(data, sort_keys=True).encode())
        h.update(b"\0")

    head: dict[str, Any] = {
        "builder": BUILDER_VERSION,
        "stack": build.stack.id,
        "packs": pack_versions,
        "steps": steps,
        "env": env,
        "config": {k: v for k, v in sorted(build.config.items()) if k.startswith(KEY_CONFIG_PREFIXES)},
    }
    if archives:
        head["archives"] = archives
    put(head)
    for rel in sorted(files):
        put(rel)
        h.update(hashlib.sha256((build.source / rel).read_bytes()).digest())
    for rel, data in sorted(generated.items()):
        put(rel)
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


MAX_DEPS_DEPTH = 3  # dependency layers stacked by additive installs before a fresh one
MAX_LINES_LABEL = 32 * 1024


def previous_layer(client, app: str, compat: str, lines: dict[str, list[str]]) -> Any | None:
    """The app's newest dependency layer that the new one may build on (additions only)."""
    images = sorted(
        client.images.list(filters={"label": f"{DEPS_LABEL}={app}"}),
        key=lambda i: i.attrs.get("Created", ""),
        reverse=True,
    )
    if not images:
        return None
    labels = images[0].labels or {}
    if labels.get("skiff.deps.compat") != compat:
        return None
    try:
        depth = int(labels.get("skiff.deps.depth", "0"))
        old = json.loads(labels.get("skiff.deps.lines") or "null")
    except ValueError:
        return None
    if not isinstance(old, dict) or depth + 1 >= MAX_DEPS_DEPTH or set(old) != set(lines):
        return None
    if all(set(old[pack]) <= set(lines[pack]) for pack in lines):
        return images[0]
    return None


@dataclass
class ImageChanges:
    """What a committed or loaded image gets on top of its base's config (``docker commit --change``)."""

    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    cmd: list[str] | None = None

    def dockerfile(self) -> list[str]:
        """The changes as instructions for ``docker commit``."""
        changes = [f"ENV {k}={dockerfile_value(v)}" for k, v in self.env.items()]
        if self.workdir:
            changes.append(f"WORKDIR {self.workdir}")
        if self.user:
            changes.append(f"USER {self.user}")
        if self.labels:
            changes.append("LABEL " + " ".join(f"{k}={dockerfile_value(v)}" for k, v in self.labels.items()))
        if self.cmd is not None:
            changes.append("CMD " + json.dumps(self.cmd))
        return changes

    def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        """A copy of an image's ``Config`` with the changes made as ``docker commit`` makes them."""
        new = dict(config)
        env = list(new.get("Env") or [])
        for key, value in self.env.items():
            env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
        new["Env"] = env
        new["Labels"] = {**(new.get("Labels") or {}), **self.labels}
        if self.workdir:
            new["WorkingDir"] = self.workdir
        if self.user:
            new["User"] = self.user
        if self.cmd is not None:
            new["Cmd"] = list(self.cmd)
        return new


def deps_labels(app: str, key: str, compat: str, lines: dict[str, list[str]] | None, depth: int) -> ImageChanges:
    text = json.dumps(lines, sort_keys=True) if lines is not None else ""
    if len(text) > MAX_LINES_LABEL:
        text = ""
    return ImageChanges(
        labels={
            DEPS_LABEL: app,
            "skiff.deps.key": key,
            "skiff.deps.compat": compat,
            "skiff.deps.depth": str(depth),
            "skiff.deps.lines": text,
        }
    )


def dockerfile_value(value: str) -> str:
    """A value quoted for an ENV/LABEL instruction given to ``docker commit``."""
    return json.dumps(value)


def final_changes(
    app: str, bid: str, env: dict[str, str], user: str, web: str | None, packs: list[str]
) -> ImageChanges:
    labels = {
        "skiff.app": app,
        "skiff.build": bid,
        "skiff.builder": "buildpacks",
        "skiff.buildpacks": ",".join(packs),
        DEPS_LABEL: "",
        BUILD_LABEL: "",
        "skiff.deps.lines": "",
        "skiff.deps.run": "",
    }
    cmd = ["/bin/sh", "-c", web] if web else None
    return ImageChanges(env=dict(env), labels=labels, workdir="/app", user=user, cmd=cmd)


def timed(out: Output, message: str, fn: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    result = fn()
    out.info(f"{message} in {time.monotonic() - t0:.1f}s")
    return result
