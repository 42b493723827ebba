"""Backups of any service kind: to a directory or an S3-compatible bucket, encrypted, on a schedule.

What a service keeps about its backups is the plugin's property ``backup:NAME`` in the 0600
state store, next to its record: ``auth`` (S3 credentials), ``passphrase`` (gpg, symmetric
AES256) and ``schedule`` (``{"schedule": EXPR, "dest": DEST}``). Nothing of it is printed.
A backup is the kind's export (``ServiceKind.export``), checked (``dump_magic``), optionally
encrypted, then written to a temporary file at the destination and renamed into place (a
bucket's object appears whole), so a failure leaves no partial file. A restore decrypts and
checks the file before it reaches the kind's import, which is atomic (redis checks the RDB,
postgres loads in one transaction): a bad file changes nothing.

gpg (Debian's ``gnupg``) runs with a throwaway home, the passphrase on its stdin (a pipe),
never in its argv. boto3 is imported only for ``s3://`` destinations (the ``s3`` extra).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff import validate
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError
from skiff.settings import Namespace, Setting, integer

from .kind import ServiceKind
from .record import service_name

if TYPE_CHECKING:  # pragma: no cover
    from .commandset import Commands

KEY_PREFIX = "backup:"
GPG_SUFFIX = ".gpg"
MAX_PASSPHRASE = 1024
BUCKET_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
PREFIX_RE = re.compile(r"\A(?:[A-Za-z0-9._-]+/)*[A-Za-z0-9._-]*\Z")
STAMP = "%Y%m%dT%H%M%S"
REGION_RE = re.compile(r"\A[a-z0-9-]{1,32}\Z")
SIGNATURES = ("s3v4", "s3")
KEY_RE = re.compile(r"\A[\x21-\x7e]{1,256}\Z")  # printable, no spaces

SETTINGS = Namespace(
    "backups",
    (
        Setting(
            "retention",
            type=integer(0, 100000),
            default=0,
            scope="global",
            level="admin",
            env="SKIFF_BACKUP_RETENTION",
            help="Keep the newest N backups of each service at its destination (0: keep all).",
        ),
    ),
    commands=("set", "report"),
)


# -- destinations ------------------------------------------------------------------


@dataclass(frozen=True)
class Local:
    """A directory on this machine."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Bucket:
    """``s3://bucket/prefix`` on an S3-compatible endpoint."""

    bucket: str
    prefix: str  # "" or ending in "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def checked_text(what: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 4096 or any(ch in value for ch in "\0\r\n"):
        raise ValidationError(f"invalid {what} {validate.shown(value)}")
    return value


def backups_dir(context: Context) -> Path:
    return context.path("backups")


def local_path(context: Context, text: str, what: str) -> Path:
    """``text`` as a full path, resolved (links followed); over SSH it must be under SKIFF_ROOT/backups.

    A relative path is taken under SKIFF_ROOT/backups."""
    base = backups_dir(context)
    path = Path(text)
    if not path.is_absolute():
        path = base / path
    resolved = path.resolve()
    if context.via_ssh:
        top = base.resolve()
        if resolved != top and top not in resolved.parents:
            raise SkiffError(
                f"over SSH a backup {what} must be under {top} (this is {resolved}); any path only from a root shell"
            )
    return resolved


def parse_bucket(text: str) -> Bucket:
    rest = text[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValidationError(f"invalid bucket {validate.shown(bucket)}: 3-63 lowercase letters, digits, dots, dashes")
    if not PREFIX_RE.fullmatch(prefix) or any(part in ("", ".", "..") for part in prefix.rstrip("/").split("/")[1:]):
        raise ValidationError(f"invalid prefix {validate.shown(prefix)}: letters, digits, . _ - and / between parts")
    if prefix.split("/")[0] in (".", ".."):
        raise ValidationError(f"invalid prefix {validate.shown(prefix)}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Bucket(bucket, prefix)


def destination(context: Context, dest: str) -> Local | Bucket:
    checked_text("destination", dest)
    if dest.startswith("s3://"):
        return parse_bucket(dest)
    if "://" in dest:
        raise ValidationError(f"invalid destination {validate.shown(dest)}: give a directory or s3://BUCKET/PREFIX")
    return Local(local_path(context, dest, "destination"))


# -- gpg ---------------------------------------------------------------------------------


def check_passphrase(passphrase: str) -> str:
    if not passphrase or len(passphrase) > MAX_PASSPHRASE or "\0" in passphrase:
        raise ValidationError(f"invalid passphrase: give one line of 1 to {MAX_PASSPHRASE} characters on stdin")
    return passphrase


@contextlib.contextmanager
def gpg_home() -> Iterator[str]:
    """A throwaway GNUPGHOME (short path: the agent's socket lives there); its agent stopped after."""
    home = tempfile.mkdtemp(prefix="skiff-gpg-")
    try:
        yield home
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "all"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


def gpg(args: list[str], passphrase: str) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("gpg") is None:
        raise SkiffError("encrypted backups need gpg (apt-get install gnupg)")
    with gpg_home() as home:
        argv = [
            "gpg",
            "--homedir",
            home,
            "--batch",
            "--yes",
            "--quiet",
            "--no-tty",
            "--no-symkey-cache",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            *args,
        ]
        return subprocess.run(argv, input=passphrase.encode() + b"\n", capture_output=True, timeout=3600)


def encrypt(source: Path, target: Path, passphrase: str) -> None:
    done = gpg(["--symmetric", "--cipher-algo", "AES256", "--output", str(target), str(source)], passphrase)
    if done.returncode != 0:
        raise SkiffError(f"encrypting the backup failed: {last_line(done.stderr)}")


def decrypt(source: Path, target: Path, passphrase: str, shown: str) -> None:
    done = gpg(["--decrypt", "--output", str(target), str(source)], passphrase)
    if done.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise SkiffError(f"cannot decrypt {shown}: wrong passphrase or a damaged file; nothing was restored")


def last_line(err: bytes) -> str:
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no detail"


# -- S3 ----------------------------------------------------------------------------------


def s3_client(auth: dict[str, str] | None, shown: str) -> Any:
    if not auth:
        raise SkiffError(f"no S3 credentials for {shown}: store them with backup-auth first")
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SkiffError("S3 backups need boto3: pip install 'skiff-services[s3]'") from None
    return boto3.session.Session().client(
        "s3",
        aws_access_key_id=auth["access_key"],
        aws_secret_access_key=auth["secret"],
        region_name=auth.get("region") or "us-east-1",
        endpoint_url=auth.get("endpoint") or None,
        config=Config(
            signature_version=auth.get("signature") or "s3v4",
            connect_timeout=10,
            read_timeout=120,
            retries={"max_attempts": 2},
        ),
    )


def s3_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# -- the command bodies ----------------------------------------------------------------


class Backups:
    """``KIND:backup*`` for one kind; ``commands`` gives the export, the import and the locks."""

    def __init__(self, kind: ServiceKind, commands: Commands):
        self.kind = kind
        self.commands = commands
        self.store = commands.store

    # -- the stored configuration --

    def config(self, context: Context, name: str) -> dict[str, Any]:
        service_name(name)
        return dict(context.state.get_property(self.kind.name, KEY_PREFIX + name) or {})

    def update(self, context: Context, name: str, **changes: Any) -> None:
        """Set (or, with ``None``, remove) keys of ``backup:NAME``; the service must exist."""
        with self.store.lock(context, name):
            self.store.load(context, name)
            config = self.config(context, name)
            for key, value in changes.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
            if config:
                context.state.set_property(self.kind.name, KEY_PREFIX + name, config)
            else:
                context.state.delete_property(self.kind.name, KEY_PREFIX + name)

    def forget(self, context: Context, name: str) -> None:
        """The service is destroyed: its credentials, passphrase and schedule go with it."""
        context.state.delete_property(self.kind.name, KEY_PREFIX + name)

    def summary(self, context: Context, name: str) -> dict[str, str]:
        """What ``KIND:info`` shows of the backups: the schedule, whether they are encrypted and
        whether S3 credentials are stored (never the credentials or the passphrase)."""
        config = self.config(context, name)
        scheduled = config.get("schedule") or {}
        auth = config.get("auth") or {}
        return {
            "backup schedule": f"{scheduled['schedule']} -> {scheduled['dest']}" if scheduled else "-",
            "backup encryption": "on" if config.get("passphrase") else "off",
            "backup s3 credentials": f"stored ({auth.get('endpoint') or 'AWS'})" if auth else "-",
        }

    def file_re(self, name: str) -> re.Pattern[str]:
        return re.compile(
            rf"\A{re.escape(self.kind.name)}-{re.escape(name)}-\d{{8}}T\d{{6}}\.\d{{3}}Z\.{re.escape(self.kind.dump_suffix)}"
            rf"(?:{re.escape(GPG_SUFFIX)})?\Z"
        )

    def file_name(self, name: str, encrypted: bool) -> str:
        now = datetime.now(timezone.utc)
        stamp = f"{now.strftime(STAMP)}.{now.microsecond // 1000:03d}Z"
        return f"{self.kind.name}-{name}-{stamp}.{self.kind.dump_suffix}" + (GPG_SUFFIX if encrypted else "")

    def scratch(self, context: Context) -> Any:
        top = context.path("tmp")
        top.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=top, prefix=f"{self.kind.name}-backup-")

    # -- backup --

    def backup(self, context: Context, name: str, dest: str) -> str:
        """Write a backup of ``name`` to ``dest``; return where it is."""
        kind = self.kind
        self.store.load(context, name)
        target = destination(context, dest)
        config = self.config(context, name)
        client = s3_client(config.get("auth"), f"{kind.name} {name}") if isinstance(target, Bucket) else None
        _, container = self.commands.running(context, name)
        passphrase = config.get("passphrase")
        filename = self.file_name(name, bool(passphrase))
        with self.scratch(context) as scratch:
            dump = Path(scratch) / "dump"
            context.output.step(f"Backing up {kind.name} {name}" + (" (encrypted)" if passphrase else ""))
            try:
                with open(dump, "wb") as out:
                    self.commands.export_to(container, out)
            except OSError as exc:
                raise SkiffError(f"cannot write the dump to {scratch}: {exc.strerror}; nothing was written") from None
            if kind.dump_magic:
                with open(dump, "rb") as check:
                    if not check.read(len(kind.dump_magic)) == kind.dump_magic:
                        raise SkiffError(f"the export of {name} is not a {kind.title} dump; nothing was written")
            payload = dump
            if passphrase:
                payload = Path(scratch) / "dump.gpg"
                encrypt(dump, payload, passphrase)
            if isinstance(target, Local):
                where = self.put_local(context, target.path, payload, filename)
                kept = self.prune_local(context, target.path, name)
            else:
                where = self.put_s3(client, target, payload, filename)
                kept = self.prune_s3(context, client, target, name)
        context.output.step(f"Backed up {kind.name} {name} to {where}")
        if kept:
            context.output.info(f"Removed {kept} older backup{'s' if kept != 1 else ''} (retention)")
        return where

    def put_local(self, context: Context, directory: Path, payload: Path, filename: str) -> str:
        final = directory / filename
        top = backups_dir(context).resolve()
        if not directory.is_dir() and (directory == top or top in directory.parents):
            with contextlib.suppress(OSError):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # under SKIFF_ROOT/backups: made
        if not directory.is_dir():
            raise SkiffError(f"cannot write the backup to {directory}: no such directory; nothing was written")
        part: str | None = None
        try:
            fd, part = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
            with os.fdopen(fd, "wb") as out, open(payload, "rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, final)
            part = None
        except OSError as exc:
            raise SkiffError(
                f"cannot write the backup to {directory}: {exc.strerror or exc}; nothing was written"
            ) from None
        finally:
            if part is not None:
                with contextlib.suppress(OSError):
                    os.unlink(part)
        return str(final)

    def put_s3(self, client: Any, target: Bucket, payload: Path, filename: str) -> str:
        key = target.prefix + filename
        try:
            client.upload_file(str(payload), target.bucket, key)
        except Exception as exc:  # botocore's errors: one line
            raise SkiffError(f"the upload to s3://{target.bucket}/{key} failed: {s3_error(exc)}") from None
        return f"s3://{target.bucket}/{key}"

    def retention(self, context: Context) -> int:
        return int(SETTINGS.get(context.state, "retention") or 0)

    def prune_local(self, context: Context, directory: Path, name: str) -> int:
        keep = self.retention(context)
        if not keep:
            return 0
        pattern = self.file_re(name)
        mine = sorted(p.name for p in directory.iterdir() if pattern.fullmatch(p.name) and p.is_file())
        old = mine[:-keep]
        for filename in old:
            (directory / filename).unlink()
        return len(old)

    def prune_s3(self, context: Context, client: Any, target: Bucket, name: str) -> int:
        keep = self.retention(context)
        if not keep:
            return 0
        pattern = self.file_re(name)
        try:
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=target.bucket, Prefix=f"{target.prefix}{self.kind.name}-{name}-"
            ):
                for item in page.get("Contents") or []:
                    if pattern.fullmatch(item["Key"][len(target.prefix) :]):
                        keys.append(item["Key"])
            old = sorted(keys)[:-keep]
            for key in old:
                client.delete_object(Bucket=target.bucket, Key=key)
        except Exception as exc:
            raise SkiffError(f"the backup is written, but pruning {target} failed: {s3_error(exc)}") from None
        return len(old)

    # -- restore --

    def restore(self, context: Context, name: str, source: str, passphrase: str | None) -> None:
        """Load backup ``source`` (a file, or ``s3://bucket/key``) into ``name``; a bad one changes nothing."""
        kind = self.kind
        self.store.load(context, name)
        checked_text("source", source)
        config = self.config(context, name)
        with self.scratch(context) as scratch:
            if source.startswith("s3://"):
                bucket = parse_bucket(source)
                key = bucket.prefix.rstrip("/")
                if not key:
                    raise ValidationError(f"invalid source {validate.shown(source)}: give s3://BUCKET/KEY")
                local = Path(scratch) / "download"
                client = s3_client(config.get("auth"), f"{kind.name} {name}")
                try:
                    client.download_file(bucket.bucket, key, str(local))
                except Exception as exc:
                    raise SkiffError(f"cannot fetch {source}: {s3_error(exc)}; nothing was restored") from None
                shown, encrypted = source, key.endswith(GPG_SUFFIX)
            else:
                local = local_path(context, source, "source")
                if not local.is_file():
                    raise SkiffError(f"no backup file {local}")
                shown, encrypted = str(local), local.name.endswith(GPG_SUFFIX)
            if encrypted or self.looks_encrypted(local):
                phrase = passphrase or config.get("passphrase")
                if not phrase:
                    raise SkiffError(
                        f"{shown} is encrypted: give its passphrase on stdin (--passphrase-stdin); nothing was restored"
                    )
                plain = Path(scratch) / "plain"
                decrypt(local, plain, phrase, shown)
                local = plain
            with open(local, "rb") as dump:
                if kind.dump_magic and dump.read(len(kind.dump_magic)) != kind.dump_magic:
                    raise SkiffError(f"{shown} is not a {kind.title} dump; nothing was restored")
                dump.seek(0)
                context.output.step(f"Restoring {kind.name} {name} from {shown}")
                with self.store.lock(context, name):
                    service, container = self.commands.running(context, name)
                    self.commands.import_from(context, service, container, dump)
        context.output.step(f"Restored {kind.name} {name} from {shown}")

    def looks_encrypted(self, path: Path) -> bool:
        """An OpenPGP symmetric-key packet first (old or new format), when the kind's dump has a magic."""
        if not self.kind.dump_magic:
            return False
        with open(path, "rb") as f:
            head = f.read(2)
        return head[:1] in (b"\x8c", b"\x8d", b"\xc3")
