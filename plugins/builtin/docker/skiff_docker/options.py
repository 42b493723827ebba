"""``docker-options``: an allow-list of docker flags, parsed into SDK arguments.

Dokku passes these strings to a shell; Skiff parses each option against an
allow-list, stores it normalised as ``--flag=value`` and turns it into
keyword arguments of the docker SDK. Nothing reaches a shell.
"""
from __future__ import annotations

import re
from typing import Any

from skiff.errors import ValidationError

PHASES = ("build", "deploy", "run")
VALUE = re.compile(r"\A[A-Za-z0-9_./:=,@+%-]{1,512}\Z")
CAP = re.compile(r"\A[A-Z_]{2,40}\Z")
SIZE = re.compile(r"\A[0-9]+[bkmgBKMG]?\Z")
ULIMIT = re.compile(r"\A[a-z]+=-?[0-9]+(:-?[0-9]+)?\Z")
KEYVALUE = re.compile(r"\A[A-Za-z0-9_.-]+=[A-Za-z0-9_./:,@+%-]*\Z")

ALIASES = {"-v": "--volume"}
#: flag -> phases it is allowed in; None value = takes no value
RUN_FLAGS = {
    "--add-host", "--volume", "--cap-add", "--cap-drop", "--shm-size", "--ulimit", "--dns",
    "--tmpfs", "--log-driver", "--log-opt", "--label", "--user", "--workdir", "--hostname",
    "--read-only",
}
BUILD_FLAGS = {"--build-arg", "--add-host", "--label", "--shm-size", "--ulimit"}
NO_VALUE = {"--read-only"}


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
    if flag in ("--label", "--log-opt", "--build-arg") and not KEYVALUE.fullmatch(value):
        raise ValidationError(f"invalid {flag} {value!r}: use key=value")
    if flag == "--label" and value.startswith("skiff."):
        raise ValidationError("labels starting with skiff. are reserved")
    if flag == "--add-host" and value.count(":") < 1:
        raise ValidationError(f"invalid --add-host {value!r}: use host:ip")
    if flag == "--volume":
        parts = value.split(":")
        if len(parts) not in (2, 3) or not parts[1].startswith("/") or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValidationError(f"invalid volume {value!r}: use SOURCE:/container/path[:ro]")
        if ".." in parts[0].split("/") or ".." in parts[1].split("/"):
            raise ValidationError(f"invalid volume {value!r}: no '..'")


def run_kwargs(options: list[str]) -> dict[str, Any]:
    """SDK ``containers.create`` keyword arguments for stored run/deploy options."""
    kwargs: dict[str, Any] = {}
    for option in options:
        flag, _, value = option.partition("=")
        if flag == "--add-host":
            host, _, ip = value.partition(":")
            kwargs.setdefault("extra_hosts", {})[host] = ip
        elif flag == "--volume":
            parts = value.split(":")
            mode = parts[2] if len(parts) == 3 else "rw"
            kwargs.setdefault("volumes", {})[parts[0]] = {"bind": parts[1], "mode": mode}
        elif flag in ("--cap-add", "--cap-drop", "--dns"):
            kwargs.setdefault(flag[2:].replace("-", "_"), []).append(value)
        elif flag == "--shm-size":
            kwargs["shm_size"] = value
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
        elif flag == "--label":
            key, _, val = value.partition("=")
            kwargs.setdefault("labels", {})[key] = val
        elif flag == "--user":
            kwargs["user"] = value
        elif flag == "--workdir":
            kwargs["working_dir"] = value
        elif flag == "--hostname":
            kwargs["hostname"] = value
        elif flag == "--read-only":
            kwargs["read_only"] = True
    if "log_config" in kwargs:
        from docker.types import LogConfig

        kwargs["log_config"] = LogConfig(type=kwargs["log_config"].get("Type", "json-file"),
                                         config=kwargs["log_config"].get("Config", {}))
    return kwargs
