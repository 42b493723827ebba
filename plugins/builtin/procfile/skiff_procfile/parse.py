"""Parse a Procfile and an app.json; every error names the file and the line."""

from __future__ import annotations

import re
from typing import Any

from skiff import validate
from skiff.errors import ValidationError

from . import jsonc

PROCESS_NAME = re.compile(r"\A[A-Za-z0-9_-]+\Z")
MAX_PROCESS_NAME = 63
RELEASE = "release"
LINE_END = re.compile(r"\r\n|\r|\n")


def parse_procfile(text: str, filename: str = "Procfile") -> tuple[dict[str, str], str | None]:
    """Return ``(processes, release_command)``.

    Lines are ``name: command``; blank lines and ``#`` comments are skipped,
    as are a leading UTF-8 BOM and the CR of CRLF line ends (a lone CR ends a
    line too). ``release:`` is the release task, not a process.
    """
    processes: dict[str, str] = {}
    first_line: dict[str, int] = {}
    release: str | None = None
    text = text.removeprefix(jsonc.BOM)
    for number, raw in enumerate(LINE_END.split(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        where = f"{filename} line {number}"
        if not sep:
            raise ValidationError(f"{where}: expected 'name: command', got {_short(line)!r}")
        if not PROCESS_NAME.fullmatch(name) or len(name) > MAX_PROCESS_NAME:
            raise ValidationError(
                f"{where}: invalid process name {_short(name)!r}"
                f" (letters, digits, '_' and '-', at most {MAX_PROCESS_NAME})"
            )
        if not command:
            raise ValidationError(f"{where}: process {name} has an empty command")
        if "\x00" in command:
            raise ValidationError(f"{where}: process {name} has a NUL byte in its command")
        if name in first_line:
            raise ValidationError(f"{where}: duplicate process type {name} (first defined on line {first_line[name]})")
        first_line[name] = number
        if name == RELEASE:
            release = command
        else:
            processes[name] = command
    return processes, release


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        names = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true or false"}
        raise ValidationError(f"app.json: {where} must be {names.get(kind, kind.__name__)}")
    return value


def parse_app_json(text: str, filename: str = "app.json") -> dict[str, Any]:
    """Validate an app.json and return the parts Skiff uses.

    The text may have what Heroku and Dokku accept: ``//`` and ``/* */``
    comments, trailing commas, CRLF line ends and a UTF-8 BOM (see
    :mod:`skiff_procfile.jsonc`). Keys kept: ``scripts`` (``dokku.predeploy``,
    ``dokku.postdeploy``), ``healthchecks``, ``formation``, ``env``, ``cron``
    (others are dropped).
    """
    try:
        data = jsonc.loads(text)
    except jsonc.JsoncError as exc:
        raise ValidationError(f"{filename} line {exc.line}: invalid JSON: {exc}") from exc
    _expect(data, dict, "the top level")
    result: dict[str, Any] = {}
    scripts = data.get("scripts")
    if scripts is not None:
        _expect(scripts, dict, "scripts")
        dokku = _expect(scripts.get("dokku", {}), dict, "scripts.dokku")
        kept = {}
        for key in ("predeploy", "postdeploy"):
            if key in dokku:
                kept[key] = _expect(dokku[key], str, f"scripts.dokku.{key}")
        unknown = sorted(set(dokku) - {"predeploy", "postdeploy"})
        if unknown:
            raise ValidationError(f"app.json: unknown key scripts.dokku.{unknown[0]} (use predeploy or postdeploy)")
        if "postdeploy" in scripts and "postdeploy" not in kept:  # Heroku's spelling
            kept["postdeploy"] = _expect(scripts["postdeploy"], str, "scripts.postdeploy")
        result["scripts"] = {"dokku": kept} if kept else {}
    if "healthchecks" in data:
        checks = _expect(data["healthchecks"], dict, "healthchecks")
        for process, items in checks.items():
            _process_name(process, "healthchecks")
            for index, check in enumerate(_expect(items, list, f"healthchecks.{process}")):
                _expect(check, dict, f"healthchecks.{process}[{index}]")
        result["healthchecks"] = checks
    if "formation" in data:
        formation = _expect(data["formation"], dict, "formation")
        for process, spec in formation.items():
            _process_name(process, "formation")
            _expect(spec, dict, f"formation.{process}")
            if "quantity" in spec:
                quantity = spec["quantity"]
                if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
                    raise ValidationError(f"app.json: formation.{process}.quantity must be a whole number >= 0")
        result["formation"] = formation
    if "env" in data:
        result["env"] = parse_env(_expect(data["env"], dict, "env"))
    if "cron" in data:
        result["cron"] = parse_cron(_expect(data["cron"], list, "cron"))
    return result


MAX_CRON_JOBS = 100


def parse_cron(jobs: list[Any]) -> list[dict[str, str]]:
    """Check app.json ``cron``: each entry ``{"command": LINE, "schedule": EXPR}`` (Dokku's form).

    The command is one line (no line break, no NUL: it runs under ``/bin/sh -c`` in
    the app's container, never on the host); the schedule five cron fields or an
    @-macro (:func:`skiff.validate.cron_schedule`). Refused here, at push, before
    anything is stored. Other keys of an entry are dropped.
    """
    if len(jobs) > MAX_CRON_JOBS:
        raise ValidationError(f"app.json: cron holds {len(jobs)} jobs (at most {MAX_CRON_JOBS})")
    kept = []
    for index, job in enumerate(jobs):
        where = f"cron[{index}]"
        _expect(job, dict, where)
        for key in ("command", "schedule"):
            if key not in job:
                raise ValidationError(f"app.json: {where} has no {key}")
            _expect(job[key], str, f"{where}.{key}")
        try:
            validate.cron_command(job["command"])
            validate.cron_schedule(job["schedule"])
        except ValidationError as exc:
            raise ValidationError(f"app.json: {where}: {exc}") from None
        kept.append({"command": job["command"], "schedule": job["schedule"]})
    return kept


def _process_name(name: str, where: str) -> None:
    if not PROCESS_NAME.fullmatch(name):
        raise ValidationError(f"app.json: {where}: invalid process name {_short(name)!r}")


def parse_env(env: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Normalise ``env``: each key to ``{description, value, required, generator}``."""
    result: dict[str, dict[str, Any]] = {}
    for key, spec in env.items():
        try:
            validate.config_key(key)
        except ValidationError:
            raise ValidationError(f"app.json: env: invalid config key {_short(key)!r}") from None
        if isinstance(spec, str):
            spec = {"value": spec}
        _expect(spec, dict, f"env.{key}")
        item: dict[str, Any] = {"required": spec.get("required", True)}
        if not isinstance(item["required"], bool):
            raise ValidationError(f"app.json: env.{key}.required must be true or false")
        if "value" in spec:
            item["value"] = _expect(spec["value"], str, f"env.{key}.value")
        if "description" in spec:
            item["description"] = _expect(spec["description"], str, f"env.{key}.description")
        if "generator" in spec:
            if spec["generator"] != "secret":
                raise ValidationError(f'app.json: env.{key}.generator must be "secret"')
            item["generator"] = "secret"
        result[key] = item
    return result
