"""Which docker options reach the host (pure: no engine, no state, no I/O).

An option is *host-reaching* when it gives a container something of the host
or of another app: a host path, the docker socket, host namespaces, extra
privileges, devices, host groups, host files read by the client, or a named
volume that is not the app's own. Such options are for root on the server
only (docs/security.md, "Host-reaching options").

:func:`host_reaching_reason` takes the tokens of one option as a user typed
them (``["--volume=/:/host"]``, ``["-v", "/:/host"]``, ``["-v/:/host"]``,
``["'--user' '0'"]``) and returns why it reaches the host, or ``None``.
Unknown or unparseable input is never declared safe by this module: its
callers also run the allow-list, and a parse error here is a reason.
"""

from __future__ import annotations

import re
import shlex

#: short option -> long option (docker run's short forms that take a value)
SHORT = {
    "-v": "--volume",
    "-u": "--user",
    "-p": "--publish",
    "-e": "--env",
    "-l": "--label",
    "-w": "--workdir",
    "-h": "--hostname",
    "-m": "--memory",
    "-c": "--cpu-shares",
}
NO_VALUE_SHORT = {"-P": "--publish-all", "-t": "--tty", "-i": "--interactive", "-d": "--detach"}
#: options that take no value (a following token is the next option, not a value)
NO_VALUE = {
    "--privileged",
    "--publish-all",
    "--oom-kill-disable",
    "--read-only",
    "--init",
    "--tty",
    "--interactive",
    "--detach",
    "--rm",
    "--no-healthcheck",
}
ALWAYS = {
    "--privileged": "gives the container every capability and the host's devices",
    "--cap-add": "adds a kernel capability (host-level privileges)",
    "--device": "gives the container a host device",
    "--device-cgroup-rule": "opens host devices to the container",
    "--gpus": "gives the container host GPUs",
    "--sysctl": "changes kernel parameters",
    "--volumes-from": "mounts another container's volumes",
    "--cgroup-parent": "places the container in a host cgroup",
    "--oom-kill-disable": "makes the host's OOM killer pick host processes instead",
    "--runtime": "runs the container with another host runtime binary",
    "--publish": "publishes a port on the host's addresses",
    "--publish-all": "publishes ports on the host's addresses",
    "--env-file": "reads a file of the host",
    "--label-file": "reads a file of the host",
    "--cidfile": "writes a file of the host",
}
NAMESPACES = ("--network", "--net", "--pid", "--ipc", "--uts", "--userns", "--cgroupns")
SAFE_SECURITY_OPTS = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
#: group names that are privileged on a Debian host (numeric gids below 1000 are system groups too)
HOST_GROUPS = {"root", "docker", "sudo", "wheel", "adm", "disk", "shadow", "kmem", "sys", "staff", "systemd-journal"}
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SOCKET = "docker.sock"


def split_tokens(option_tokens: list[str]) -> tuple[str, str]:
    """``(long flag, value)`` of one option; ``ValueError`` when it cannot be read."""
    words: list[str] = []
    for token in option_tokens:
        words += shlex.split(token) if any(c in token for c in "'\"\\ \t") else [token]
    if not words:
        raise ValueError("no option given")
    first, rest = words[0], words[1:]
    if first.startswith("--"):
        flag, sep, value = first.partition("=")
        if flag == "--net":
            flag = "--network"
    elif first in NO_VALUE_SHORT:
        flag, sep, value = NO_VALUE_SHORT[first], "", ""
    elif first[:2] in SHORT:
        flag, value = SHORT[first[:2]], first[2:].removeprefix("=")
        sep = "=" if first[2:] else ""
    else:
        raise ValueError(f"{first!r} is not an option")
    if not sep and flag not in NO_VALUE and rest:
        value, rest = rest[0], rest[1:]
    if rest:
        raise ValueError(f"one option at a time; unexpected {' '.join(rest)!r}")
    return flag, value


def host_reaching_reason(option_tokens: list[str], app: str | None = None) -> str | None:
    """Why the option reaches the host (a short phrase), or ``None`` when it is app-scoped.

    ``app`` is the app the option is for: named volumes must be its own
    (``APP`` or ``APP_...``/``APP....``; app names have no ``_`` or ``.``).
    """
    try:
        flag, value = split_tokens(option_tokens)
    except ValueError as exc:
        return f"cannot be read safely ({exc})"
    if flag in ALWAYS:
        return ALWAYS[flag]
    if SOCKET in value:
        return "names the docker socket (root on the host)"
    if flag == "--volume":
        return _volume_reason(value, app)
    if flag == "--mount":
        return _mount_reason(value, app)
    if flag == "--user":
        return _user_reason(value)
    if flag == "--group-add":
        return _group_reason(value)
    if flag in NAMESPACES:
        return _namespace_reason(flag, value)
    if flag == "--security-opt" and value not in SAFE_SECURITY_OPTS:
        return "changes the container's confinement (seccomp, AppArmor, SELinux)"
    return None


def _volume_reason(value: str, app: str | None) -> str | None:
    source, sep, _target = value.partition(":")
    if not sep:  # an anonymous volume: -v /data
        return None if value.startswith("/") else f"invalid volume {value!r}"
    return _source_reason(source, app)


def _source_reason(source: str, app: str | None) -> str | None:
    if not source:
        return None
    if source[0] in "/.~" or "/" in source or "\\" in source:
        return f"bind-mounts the host path {source}"
    if not VOLUME_NAME.fullmatch(source):
        return f"invalid volume name {source!r}"
    if app is None or not (source == app or source.startswith((f"{app}_", f"{app}."))):
        return f"mounts the volume {source}, which is not the app's own (name it {app or 'APP'}_...)"
    return None


def _mount_reason(value: str, app: str | None) -> str | None:
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        fields[key.strip().lower()] = val.strip() if sep else "true"
    kind = fields.get("type", "volume")
    if kind == "tmpfs":
        return None
    if kind != "volume":
        return f"mounts the host ({kind} mount)"
    source = fields.get("source", fields.get("src", ""))
    if any(key.startswith(("volume-driver", "volume-opt")) for key in fields):
        return "uses a volume driver or driver options (host paths, devices)"
    return _source_reason(source, app)


def _is_zero_or_root(name: str) -> bool:
    return name == "root" or (name.isdigit() and int(name) == 0)


def _user_reason(value: str) -> str | None:
    user, _, group = value.partition(":")
    if _is_zero_or_root(user.strip()):
        return "runs as root (uid 0)"
    if group and _is_zero_or_root(group.strip()):
        return "runs with the root group (gid 0)"
    if not user.strip():
        return "runs as the image's default user, possibly root"
    return None


def _group_reason(value: str) -> str | None:
    name = value.strip()
    if name in HOST_GROUPS or (name.isdigit() and int(name) < 1000):
        return f"adds the host group {name}"
    return None


def _namespace_reason(flag: str, value: str) -> str | None:
    if flag == "--network" and value not in ("", "none"):
        if value != "host" and not value.startswith("container:"):
            return f"joins the docker network {value}, other apps' or services' containers (use network:set)"
    if value == "host":
        return f"shares the host's {flag[2:]} namespace"
    if value.startswith("container:"):
        return f"shares another container's {flag[2:]} namespace"
    if flag == "--userns" and value:
        return "changes the user namespace"
    return None
