"""A private Skiff server for benchmarks: its own SKIFF_ROOT, nginx and sshd on loopback.

Used by availability.py, scale.py and ssh_cli.py. Every plugin that is installed
is loaded (real buildpacks, docker scheduler, nginx); traffic goes to 127.0.0.1 only.
Apps the benchmarks create are destroyed by :meth:`Server.close`, which also
removes every container and image labelled with their names.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLASK = ROOT / "tests" / "apps" / "flask"
DOMAIN = "skiff.bench"


def flask_files(prefix: str = "") -> dict[str, str]:
    """The Flask + gunicorn sample app; ``prefix`` goes before every answer (a code change)."""
    files = {p.name: p.read_text() for p in FLASK.iterdir() if p.is_file()}
    if prefix:
        files["app.py"] = files["app.py"].replace("return os.environ", f'return "{prefix} " + os.environ')
    return files


def new_app(prefix: str = "bench") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


class Server:
    """SKIFF_ROOT + private nginx + private sshd (key ``bench``); ``push``, ``ssh``, ``local``."""

    def __init__(self, prefix: str = "bench-"):
        from skiff.testing.nginx import start_nginx
        from skiff.testing.sshd import add_key, make_key, skiff_executable, start_sshd

        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        self.root = self.work / "skiff-root"
        self.root.mkdir()
        self.apps: list[str] = []
        self.nginx = start_nginx(self.root)
        keys = self.work / "keys"
        keys.mkdir()
        self.host_key = make_key(keys / "host")
        self.client_key = make_key(keys / "client")
        self.authorized = self.work / "authorized_keys"
        self.env = {"SKIFF_ROOT": str(self.root), "SKIFF_AUTHORIZED_KEYS": str(self.authorized), **self.nginx.env}
        added = add_key("bench", self.client_key.with_suffix(".pub"), self.env)
        if added.exit_code != 0:
            raise RuntimeError(added.output)
        self.sshd = start_sshd(self.work / "sshd", self.host_key, self.client_key, self.authorized, self.env)
        self.skiff = skiff_executable()
        self.local("domains:set-global", DOMAIN)

    @property
    def local_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def local(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``skiff ARGS`` on the server side (no SSH)."""
        proc = subprocess.run([self.skiff, *args], env=self.local_env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"skiff {' '.join(args)} failed: {(proc.stdout + proc.stderr)[-2000:]}")
        return proc

    def ssh(self, *args: str, timeout: float = 300) -> str:
        result = self.sshd.ssh(list(args), timeout=timeout)
        if result.exit_code != 0:
            raise RuntimeError(f"ssh {' '.join(args)} failed: {result.output[-2000:]}")
        return result.stdout

    def repo(self, app: str, files: dict[str, str] | None = None) -> Path:
        from skiff.testing.sshd import init_repo

        return init_repo(self.work / "repos" / app, files or flask_files())

    def push(self, repo: Path, app: str) -> None:
        from skiff.testing.sshd import git_push

        if app not in self.apps:
            self.apps.append(app)
        result = git_push(repo, app, self.sshd)
        if result.exit_code != 0:
            raise RuntimeError(f"push of {app} failed: {result.output[-2000:]}")

    def host(self, app: str) -> str:
        return f"{app}.{DOMAIN}"

    def get(self, app: str, timeout: float = 5) -> tuple[int, str]:
        from skiff.testing.nginx import get

        try:
            answer = get(self.nginx.http_port, "/", self.host(app), timeout=timeout)
        except OSError as exc:
            return 0, str(exc)
        return answer.status, answer.body.strip()

    def wait_for(self, app: str, text: str, timeout: float = 60) -> float:
        """Poll through nginx until ``text`` is served; return when it was."""
        deadline = time.monotonic() + timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            status, body = self.get(app)
            if status == 200 and body == text:
                return time.monotonic()
            time.sleep(0.005)
        raise RuntimeError(f"{app} never answered {text!r} (last answer: {status} {body[:80]!r})")

    def nginx_reload(self) -> None:
        """A plain ``nginx -s reload`` of the private nginx (config unchanged)."""
        proc = self.nginx._run("-s", "reload")
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)

    def close(self) -> None:
        wait_for_engine()
        for app in self.apps:
            self.local("apps:destroy", app, "--force", check=False)
        self.sshd.stop()
        self.nginx.stop()
        try:
            remove_labelled(self.apps)
        except Exception as exc:  # noqa: BLE001 - report, keep cleaning up
            print(f" !     could not remove the containers of {', '.join(self.apps)}: {exc}", flush=True)
        shutil.rmtree(self.nginx.prefix, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


def wait_for_engine(timeout: float = 120) -> bool:
    """Wait until dockerd answers (another user of this machine may be restarting it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return True
        time.sleep(1)
    return False


def remove_labelled(apps: list[str]) -> None:
    """Remove containers, images and build caches of ``apps`` (their ``skiff.*`` labels)."""
    if not apps:
        return
    import docker

    client = docker.from_env(timeout=300)
    try:
        for app in apps:
            for key in ("skiff.app", "skiff.build-for"):
                for c in client.containers.list(all=True, filters={"label": f"{key}={app}"}):
                    try:
                        c.remove(force=True, v=True)
                    except docker.errors.APIError:
                        pass
            for key in ("skiff.app", "skiff.deps"):
                images = client.images.list(filters={"label": f"{key}={app}"})
                images.sort(key=lambda i: i.attrs.get("Created", ""), reverse=True)
                for image in images:
                    try:
                        client.images.remove(image.id, force=True)
                    except docker.errors.APIError:
                        pass
            for volume in client.volumes.list(filters={"label": f"skiff.cache={app}"}):
                try:
                    volume.remove(force=True)
                except docker.errors.APIError:
                    pass
    finally:
        client.close()
