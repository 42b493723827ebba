"""``docker-options``: an allow-list of docker flags, parsed into SDK arguments.

Dokku passes these strings to a shell; Skiff parses each option against an
allow-list, stores it normalised as ``--flag=value`` and turns it into
keyword arguments of the docker SDK. Nothing reaches a shell.

Some allowed options reach the host (:mod:`skiff_docker.hostreach`): only root
on the server may store them, and they are applied only when root confirmed
them for the app (:func:`skiff_docker.settings.applied_docker_options`).
"""

from __future__ import annotations

import re
from typing import Any

from skiff.contracts import BuildOptions
from skiff.errors import ValidationError

PHASES = ("build", "deploy", "run")
VALUE = re.compile(r"\A[A-Za-z0-9_./:=,@+%-]{1,512}\Z")
CAP = re.compile(r"\A[A-Z_]{2,40}\Z")
SIZE = re.compile(r"\A[0-9]+[bkmgBKMG]?\Z")
ULIMIT = re.compile(r"\A[a-z]+=-?[0-9]+(:-?[0-9]+)?\Z")
KEYVALUE = re.compile(r"\A[A-Za-z0-9_.-]+=[A-Za-z0-9_./:,@+%-]*\Z")

ALIASES = {"-v": "--volume", "-u": "--user", "--net": "--network"}
#: flags allowed in the deploy and run phases (host-reaching ones only from root: hostreach)
RUN_FLAGS = {
    "--add-host",
    "--volume",
    "--cap-add",
    "--cap-drop",
    "--shm-size",
    "--ulimit",
    "--dns",
    "--tmpfs",
    "--log-driver",
    "--log-opt",
    "--label",
    "--user",
    "--workdir",
    "--hostname",
    "--read-only",
    # host-reaching: root on the server only
    "--privileged",
    "--device",
    "--network",
    "--pid",
    "--ipc",
    "--uts",
    "--userns",
    "--cgroupns",
    "--security-opt",
    "--sysctl",
    "--group-add",
    "--mount",
}
#: the build phase: nothing host-reaching (builders apply only these)
BUILD_FLAGS = {"--build-arg", "--add-host", "--label", "--shm-size", "--ulimit"}
NO_VALUE = {"--read-only", "--privileged"}
#: flag -> SDK keyword of a single value
SINGLE = {
    "--shm-size": "shm_size",
    "--user": "user",
    "--workdir": "working_dir",
    "--hostname": "hostname",
    "--network": "network_mode",
    "--pid": "pid_mode",
    "--ipc": "ipc_mode",
    "--uts": "uts_mode",
    "--userns": "userns_mode",
    "--cgroupns": "cgroupns",
}
#: flag -> SDK keyword of a list
LISTS = {
    "--cap-add": "cap_add",
    "--cap-drop": "cap_drop",
    "--dns": "dns",
    "--device": "devices",
    "--security-opt": "security_opt",
    "--group-add": "group_add",
}


def allowed(phase: str) -> set[str]:
    return BUILD_FLAGS if phase == "build" else RUN_FLAGS


def normalise(phase: str, words: list[str]) -> str:
    """Validate one option (``["--flag", "value"]`` or ``["--flag=value"]``)."""
    if phase not in PHASES:
        raise ValidationError(f"unknown phase {phase!r}: use build, deploy or run")
    if not words:
        raise ValidationError("give an option, e.g. --add-host=db:10.0.0.2")
    flag, sep, value = words[0].partition("=")
    flag = ALIASES.get(flag, flag)
    rest = words[1:]
    if not sep and rest:
        value, rest = rest[0], rest[1:]
    if rest:
        raise ValidationError(f"one option at a time; unexpected {' '.join(rest)!r}")
    if flag not in allowed(phase):
        raise ValidationError(
            f"docker option {flag!r} is not allowed in the {phase} phase; allowed: {', '.join(sorted(allowed(phase)))}"
        )
    if flag in NO_VALUE:
        if value:
            raise ValidationError(f"{flag} takes no value")
        return flag
    if not value:
        raise ValidationError(f"{flag} needs a value")
    _check_value(flag, value)
    return f"{flag}={value}"


def _check_value(flag: str, value: str) -> None:
    if not VALUE.fullmatch(value):
        raise ValidationError(f"invalid value for {flag}: {value!r}")
    if flag in ("--cap-add", "--cap-drop") and not CAP.fullmatch(value):
        raise ValidationError(f"invalid capability {value!r}")
    if flag == "--shm-size" and not SIZE.fullmatch(value):
        raise ValidationError(f"invalid size {value!r}")
    if flag == "--ulimit" and not ULIMIT.fullmatch(value):
        raise ValidationError(f"invalid ulimit {value!r}: use name=soft[:hard]")
    if flag in ("--label", "--log-opt", "--build-arg", "--sysctl") and not KEYVALUE.fullmatch(value):
        raise ValidationError(f"invalid {flag} {value!r}: use key=value")
    if flag == "--label" and value.startswith("skiff."):
        raise ValidationError("labels starting with skiff. are reserved")
    if flag == "--add-host" and value.count(":") < 1:
        raise ValidationError(f"invalid --add-host {value!r}: use host:ip")
    if flag == "--volume":
        parts = value.split(":")
        if (
            len(parts) not in (2, 3)
            or not parts[1].startswith("/")
            or (len(parts) == 3 and parts[2] not in ("ro", "rw"))
        ):
            raise ValidationError(f"invalid volume {value!r}: use SOURCE:/container/path[:ro]")
        if ".." in parts[0].split("/") or ".." in parts[1].split("/"):
            raise ValidationError(f"invalid volume {value!r}: no '..'")
    if flag == "--mount":
        _check_mount(value)


MOUNT_KEYS = {"type", "source", "src", "target", "dst", "destination", "readonly", "ro"}


def _check_mount(value: str) -> None:
    fields = dict(part.partition("=")[::2] for part in value.split(","))
    target = fields.get("target") or fields.get("dst") or fields.get("destination") or ""
    if not set(fields) <= MOUNT_KEYS or fields.get("type", "volume") not in ("bind", "volume", "tmpfs"):
        raise ValidationError(f"invalid mount {value!r}: use type=bind|volume|tmpfs,source=S,target=/T[,readonly]")
    if not target.startswith("/") or any(".." in val.split("/") for val in fields.values()):
        raise ValidationError(f"invalid mount {value!r}: the target must be an absolute path, no '..'")


def run_kwargs(options: list[str]) -> dict[str, Any]:
    """SDK ``containers.create`` keyword arguments for stored run/deploy options.

    Callers pass only checked options (``settings.applied_docker_options``).
    """
    kwargs: dict[str, Any] = {}
    for option in options:
        flag, _, value = option.partition("=")
        if flag in SINGLE:
            kwargs[SINGLE[flag]] = value
        elif flag in LISTS:
            kwargs.setdefault(LISTS[flag], []).append(value)
        else:
            _special(kwargs, flag, value)
    if "log_config" in kwargs:
        from docker.types import LogConfig

        kwargs["log_config"] = LogConfig(
            type=kwargs["log_config"].get("Type", "json-file"), config=kwargs["log_config"].get("Config", {})
        )
    return kwargs


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def build_options(options: list[str]) -> BuildOptions:
    """The checked ``build`` options as :class:`skiff.contracts.BuildOptions` (``deploy.build_options``).

    Callers pass only checked options (``settings.applied_docker_options(..., "build", ...)``).
    """
    result = BuildOptions()
    for option in options:
        flag, _, value = option.partition("=")
        if flag == "--build-arg":
            key, _, val = value.partition("=")
            result.setdefault("buildargs", {})[key] = val
        elif flag == "--label":
            key, _, val = value.partition("=")
            result.setdefault("labels", {})[key] = val
        elif flag == "--add-host":
            host, _, address = value.partition(":")
            result.setdefault("extra_hosts", {})[host] = address
        elif flag == "--shm-size":
            number = value.rstrip("bkmgBKMG")
            result["shmsize"] = int(number) * SIZE_UNITS[value[len(number) :].lower()]
        elif flag == "--ulimit":
            name, _, limits = value.partition("=")
            soft, _, hard = limits.partition(":")
            result.setdefault("ulimits", {})[name] = (int(soft), int(hard or soft))
    return result


def _special(kwargs: dict[str, Any], flag: str, value: str) -> None:
    if flag == "--add-host":
        host, _, ip = value.partition(":")
        kwargs.setdefault("extra_hosts", {})[host] = ip
    elif flag == "--volume":
        parts = value.split(":")
        mode = parts[2] if len(parts) == 3 else "rw"
        kwargs.setdefault("volumes", {})[parts[0]] = {"bind": parts[1], "mode": mode}
    elif flag == "--ulimit":
        from docker.types import Ulimit

        name, _, limits = value.partition("=")
        soft, _, hard = limits.partition(":")
        kwargs.setdefault("ulimits", []).append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))
    elif flag == "--tmpfs":
        path, _, opts = value.partition(":")
        kwargs.setdefault("tmpfs", {})[path] = opts
    elif flag == "--log-driver":
        kwargs.setdefault("log_config", {"Config": {}})["Type"] = value
    elif flag == "--log-opt":
        key, _, val = value.partition("=")
        kwargs.setdefault("log_config", {"Config": {}}).setdefault("Config", {})[key] = val
    elif flag in ("--label", "--sysctl"):
        key, _, val = value.partition("=")
        kwargs.setdefault("labels" if flag == "--label" else "sysctls", {})[key] = val
    elif flag == "--read-only":
        kwargs["read_only"] = True
    elif flag == "--privileged":
        kwargs["privileged"] = True
    elif flag == "--mount":
        kwargs.setdefault("mounts", []).append(_mount(value))


def _mount(value: str) -> Any:
    from docker.types import Mount

    fields = dict(part.partition("=")[::2] for part in value.split(","))
    target = fields.get("target") or fields.get("dst") or fields.get("destination") or ""
    source = fields.get("source") or fields.get("src")
    read_only = fields.get("readonly", fields.get("ro")) in ("", "true", "1")
    return Mount(target=target, source=source, type=fields.get("type", "volume"), read_only=read_only)
