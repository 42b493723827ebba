"""Where nginx lives and how to drive it: global settings and per-app options.

Global settings are plugin properties (``nginx:set --global KEY VALUE``,
refused over SSH) overridden by ``SKIFF_NGINX_*`` environment variables, so
tests point the plugin at a private nginx and production at the system one.
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
from skiff.state import GLOBAL

from . import PLUGIN, names


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValidationError(f"invalid value {value!r}: expected one of {', '.join(allowed)}")
        return value

    return check


def _path(value: str) -> str:
    if value and (not os.path.isabs(value) or any(c in value for c in "\n\r\x00")):
        raise ValidationError(f"invalid path {value!r}: expected an absolute path")
    return value


def _port(value: str) -> str:
    return str(names.port(value))


def _host(value: str) -> str:
    if value:
        names.domain(value)
    return value.lower()


# key: (env var, default, validator, description)
GLOBAL_SETTINGS: dict[str, tuple[str, str, Callable[[str], str], str]] = {
    "bin": ("SKIFF_NGINX_BIN", "", _path, "the nginx binary (default: nginx on PATH, /usr/sbin/nginx)"),
    "conf": ("SKIFF_NGINX_CONF", "", _path, "nginx's main config file (-c); empty: nginx's default"),
    "prefix": ("SKIFF_NGINX_PREFIX", "", _path, "nginx's prefix (-p); empty: nginx's default"),
    "pid-file": ("SKIFF_NGINX_PID", "", _path, "the master's pid file (default /run/nginx.pid)"),
    "sudo": (
        "SKIFF_NGINX_SUDO",
        "auto",
        _choice("auto", "always", "never"),
        "run nginx -t / -s reload through 'sudo -n' (auto: when not root)",
    ),
    "http-port": ("SKIFF_NGINX_HTTP_PORT", "80", _port, "the port of http vhosts"),
    "https-port": ("SKIFF_NGINX_HTTPS_PORT", "443", _port, "the port of https vhosts"),
    "listen-address": (
        "SKIFF_NGINX_LISTEN",
        "",
        names.addresses,
        "comma-separated addresses servers listen on (empty: all, IPv4 and IPv6)",
    ),
    "public-host": ("SKIFF_NGINX_PUBLIC_HOST", "", _host, "host name in URLs of apps without a domain"),
}

# key: (default, validator, description)
APP_SETTINGS: dict[str, tuple[str, Callable[[str], str], str]] = {
    "client-max-body-size": ("1m", names.size, "largest request body nginx accepts"),
    "proxy-read-timeout": ("60s", names.duration, "how long nginx waits for the app's response"),
    "proxy-connect-timeout": ("5s", names.duration, "how long nginx waits to connect to a container"),
    "keepalive": (
        "16",
        lambda v: str(names.port(v, "keepalive connection count")),
        "idle keep-alive connections nginx keeps to the app's containers",
    ),
}


def global_value(context: Context, key: str) -> str:
    env, default, _, _ = GLOBAL_SETTINGS[key]
    if os.environ.get(env):
        return os.environ[env]
    value = context.state.get_property(PLUGIN, key)
    return default if value in (None, "") else str(value)


def app_value(context: Context, app: str, key: str) -> str:
    default, _, _ = APP_SETTINGS[key]
    value = context.state.get_property(PLUGIN, key, app=app)
    return default if value in (None, "") else str(value)


def check(key: str, value: str, is_global: bool) -> str:
    """Validate ``value`` for ``key``; raise ValidationError naming the known keys."""
    table: dict[str, Any] = GLOBAL_SETTINGS if is_global else APP_SETTINGS
    if key not in table:
        raise ValidationError(
            f"unknown {'global ' if is_global else ''}nginx setting {key!r}; known: {', '.join(sorted(table))}"
        )
    validator = table[key][2] if is_global else table[key][1]
    return validator(value)


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
    def get(key: str) -> str:
        return global_value(context, key)

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
    return {key: app_value(context, app, key) for key in APP_SETTINGS}


def set_value(context: Context, key: str, value: str | None, app: str = GLOBAL) -> None:
    """Store (or with ``None`` remove) a validated setting."""
    if value is None or value == "":
        context.state.delete_property(PLUGIN, key, app=app)
    else:
        context.state.set_property(PLUGIN, key, check(key, value, app == GLOBAL), app=app)
