"""Where nginx lives and how to drive it: global settings and per-app options.

Both kinds are declared settings (:data:`SETTINGS`; the core generates
``nginx:set``). Global ones (``nginx:set --global KEY VALUE``) are root-level,
refused over SSH, and overridden by ``SKIFF_NGINX_*`` environment variables, so
tests point the plugin at a private nginx and production at the system one.
Per-app ones (``nginx:set APP KEY VALUE``) a deployer of the app may change;
every change rewrites the config and is undone if nginx refuses it.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from skiff.context import Context
from skiff.errors import ValidationError
from skiff.settings import Namespace, Setting, choice

from . import PLUGIN, names


def _path(value: str) -> str:
    if value and (not os.path.isabs(value) or any(c in value for c in "\n\r\x00")):
        raise ValidationError(f"invalid path {value!r}: expected an absolute path")
    return value


def _host(value: str) -> str:
    if value:
        names.domain(value)
    return value.lower()


def _keepalive(value: str) -> str:
    return str(names.port(value, "keepalive connection count"))


def _global(name: str, env: str, default: Any, type: Any, help: str) -> Setting:
    """A server-wide setting: root only (never over SSH), overridden by ``env``."""
    return Setting(name, type=type, default=default, scope="global", env=env, level="root", help=help)


GLOBAL_SETTINGS: tuple[Setting, ...] = (
    _global("bin", "SKIFF_NGINX_BIN", "", _path, "the nginx binary (default: nginx on PATH, /usr/sbin/nginx)"),
    _global("conf", "SKIFF_NGINX_CONF", "", _path, "nginx's main config file (-c); empty: nginx's default"),
    _global("prefix", "SKIFF_NGINX_PREFIX", "", _path, "nginx's prefix (-p); empty: nginx's default"),
    _global("pid-file", "SKIFF_NGINX_PID", "", _path, "the master's pid file (default /run/nginx.pid)"),
    _global(
        "sudo",
        "SKIFF_NGINX_SUDO",
        "auto",
        choice("auto", "always", "never"),
        "run nginx -t / -s reload through 'sudo -n' (auto: when not root)",
    ),
    _global("http-port", "SKIFF_NGINX_HTTP_PORT", 80, names.port, "the port of http vhosts"),
    _global("https-port", "SKIFF_NGINX_HTTPS_PORT", 443, names.port, "the port of https vhosts"),
    _global(
        "listen-address",
        "SKIFF_NGINX_LISTEN",
        "",
        names.addresses,
        "comma-separated addresses servers listen on (empty: all, IPv4 and IPv6)",
    ),
    _global("public-host", "SKIFF_NGINX_PUBLIC_HOST", "", _host, "host name in URLs of apps without a domain"),
)

APP_SETTINGS: tuple[Setting, ...] = (
    Setting("client-max-body-size", type=names.size, default="1m", help="largest request body nginx accepts"),
    Setting("proxy-read-timeout", type=names.duration, default="60s", help="how long nginx waits for the app"),
    Setting("proxy-connect-timeout", type=names.duration, default="5s", help="how long nginx waits to connect"),
    Setting("keepalive", type=_keepalive, default="16", help="idle keep-alive connections to the app's containers"),
    Setting(
        "access-log-buffer",
        type=names.log_buffer,
        default="32k",
        help="access log buffer: lines reach the file within 1s (0: every line at once)",
    ),
)


def _apply(context: Context, scope: str, setting: Setting, store: Callable[[], None]) -> None:
    """Rewrite the nginx config of the apps the change touches; undo the change if nginx refuses it."""
    from .commands.domains import changing

    apps = [scope] if scope else context.state.list_apps()
    changing(context, apps, [(setting.name, scope)], store)


#: ``nginx:set [--global] [APP] KEY [VALUE]`` is generated; ``nginx:report`` is the plugin's own.
SETTINGS = Namespace(PLUGIN, GLOBAL_SETTINGS + APP_SETTINGS, commands=("set",), apply=_apply)


@dataclass
class Settings:
    """The resolved global settings of one invocation."""

    root: Path  # SKIFF_ROOT/nginx
    bin: str
    conf: str
    prefix: str
    pid_file: str
    sudo: str
    http_port: int
    https_port: int
    listen_address: str  # the setting as given: "" or comma-separated addresses
    public_host: str

    @property
    def listen_addresses(self) -> list[str]:
        """Addresses of the ``listen`` lines ("" = every IPv4 address, "[::]" = every IPv6 one)."""
        if self.listen_address:
            return [a.strip() for a in self.listen_address.split(",") if a.strip()]
        return ["", "[::]"] if ipv6_available() else [""]

    @property
    def conf_dir(self) -> Path:
        """The directory nginx includes (``include ROOT/nginx/conf.d/*.conf;``)."""
        return self.root / "conf.d"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def app_file(self, app: str) -> Path:
        return self.conf_dir / f"app-{app}.conf"

    def cert_files(self, app: str) -> tuple[Path, Path]:
        return self.certs_dir / app / "server.crt", self.certs_dir / app / "server.key"

    def log_file(self, app: str, kind: str) -> Path:
        return self.logs_dir / f"{app}-{kind}.log"

    def command(self, *args: str) -> list[str]:
        """The argument list running nginx with ``args`` (with sudo when needed)."""
        cmd = [self.bin]
        if self.prefix:
            cmd += ["-p", self.prefix]
        if self.conf:
            cmd += ["-c", self.conf]
        cmd += list(args)
        if self.sudo == "always" or (self.sudo == "auto" and os.geteuid() != 0):
            cmd = ["sudo", "-n", *cmd]
        return cmd


def ipv6_available() -> bool:
    return socket.has_ipv6 and os.path.exists("/proc/net/if_inet6")


def load(context: Context) -> Settings:
    def get(key: str) -> Any:
        return SETTINGS.get(context.state, key)

    # The system path first: the sudoers rule make install writes names /usr/sbin/nginx.
    binary = (
        get("bin") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else shutil.which("nginx")) or "nginx"
    )
    return Settings(
        root=context.path("nginx"),
        bin=binary,
        conf=get("conf"),
        prefix=get("prefix"),
        pid_file=get("pid-file") or ("" if get("conf") else "/run/nginx.pid"),
        sudo=get("sudo"),
        http_port=int(get("http-port")),
        https_port=int(get("https-port")),
        listen_address=get("listen-address"),
        public_host=get("public-host"),
    )


def app_options(context: Context, app: str) -> dict[str, str]:
    """APP's proxy options (client-max-body-size, timeouts, keepalive) as nginx writes them."""
    return {s.name: str(SETTINGS.get(context.state, s.name, app=app)) for s in APP_SETTINGS}
