"""Drive nginx: test the config, swap app files safely, reload and wait for it.

:func:`apply` is the only writer of files nginx reads. Under one global lock
it puts the new files in place, runs ``nginx -t`` on the whole config and
either reloads nginx or puts every old file back, so a config nginx rejects
never stays on disk and never reaches a running nginx.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from skiff import timeline
from skiff.errors import SkiffError
from skiff.locks import file_lock, lock_path
from skiff.output import Output

from .render import SHARED, SHARED_FILE
from .settings import Settings

LOCK_TIMEOUT = 120.0
RELOAD_WAIT = 10.0


class NginxError(SkiffError):
    """nginx refused a config or a command; the message is nginx's own."""


def run(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            settings.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NginxError(f"cannot run nginx ({exc.filename}): install it or set SKIFF_NGINX_BIN") from exc


def _message(proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    wanted = [
        line
        for line in lines
        if "[emerg]" in line or "[alert]" in line or "[crit]" in line or "failed" in line or "sudo" in line
    ]
    return "; ".join(wanted or lines[-2:]) or f"exit status {proc.returncode}"


def test(settings: Settings) -> tuple[bool, str]:
    """``nginx -t`` on the whole config: (ok, nginx's message)."""
    proc = run(settings, "-t", "-q")
    return proc.returncode == 0, _message(proc) if proc.returncode else ""


def ensure_layout(settings: Settings) -> None:
    """Create the directories and the shared file the app configs rely on."""
    for directory in (settings.conf_dir, settings.certs_dir, settings.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.certs_dir, 0o700)
    shared = settings.conf_dir / SHARED_FILE
    if not shared.exists() or shared.read_text() != SHARED:
        _write(shared, SHARED)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _put(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
    else:
        _write(path, text)


def apply(settings: Settings, files: dict[Path, str | None], output: Output, what: str, force: bool = False) -> bool:
    """Write ``files`` (``None`` removes one), test, then reload or roll back.

    ``force`` reloads even when no file changed (a certificate file did: nginx
    reads certificates only when it loads its config).

    Returns ``True`` when nginx was reloaded, ``False`` when nginx is not
    running (the files are valid and in place; they apply when it starts).
    Raises :class:`NginxError` with nginx's message when the test fails; the
    old files are then back in place.
    """
    ensure_layout(settings)
    with file_lock(
        lock_path(settings.root.parent, "nginx"),
        LOCK_TIMEOUT,
        on_wait=lambda: output.step("Waiting for another nginx change to finish"),
    ):
        old = {path: (path.read_text() if path.exists() else None) for path in files}
        changed = {path: text for path, text in files.items() if old[path] != text}
        if not changed and not force:
            return reload(settings, output, only_if_needed=True)
        for path, text in changed.items():
            _put(path, text)
        timeline.mark("nginx.written")
        ok, message = test(settings)
        timeline.mark("nginx.tested")
        if not ok:
            for path in changed:
                _put(path, old[path])
            raise NginxError(f"nginx rejected the new config of {what}, the old one stays: {message}")
        try:
            reloaded = reload(settings, output)
            timeline.mark("nginx.reloaded")
            return reloaded
        except NginxError:
            # nginx -t passed but the master could not load it (a port another program holds):
            # it keeps serving the old config; put the old files back so disk matches.
            for path in changed:
                _put(path, old[path])
            raise


def reload(settings: Settings, output: Output, only_if_needed: bool = False) -> bool:
    """``nginx -s reload`` and wait until new workers run; ``False`` if nginx is down."""
    master = master_pid(settings)
    if master is None:
        if not only_if_needed:
            output.warn("nginx is not running; the config applies when it starts")
        return False
    if only_if_needed:
        return True
    before = children(master)
    proc = run(settings, "-s", "reload")
    if proc.returncode != 0:
        raise NginxError(f"nginx reload failed: {_message(proc)}")
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        # Done when new workers run and every old one stopped accepting connections.
        now = children(master)
        if now - before and all(_retired(pid) for pid in before & now):
            return True
        time.sleep(0.01)
    raise NginxError(
        "nginx did not load the new config (no new workers after the reload; "
        "see nginx's error log, e.g. a bind() failure); it keeps serving the old one"
    )


def master_pid(settings: Settings) -> int | None:
    """The pid of the running nginx master for these settings, if any."""
    if settings.pid_file:
        try:
            pid = int(Path(settings.pid_file).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _is_master(pid) else None
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _is_master(int(entry)):
            cmdline = _cmdline(int(entry))
            if settings.conf and settings.conf in cmdline:
                return int(entry)
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_master(pid: int) -> bool:
    return _cmdline(pid).startswith("nginx: master process")


def _retired(pid: int) -> bool:
    """An old worker is gone or shutting down (it no longer accepts connections)."""
    cmdline = _cmdline(pid)
    return not cmdline or "shutting down" in cmdline or "worker" not in cmdline


def children(pid: int) -> set[int]:
    """Pids of the processes whose parent is ``pid`` (the master's workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry))
    return found
