"""The authorized_keys file: Skiff's lines, parsing, validation, atomic rewrite.

A line Skiff writes looks like this (one line)::

    command="SKIFF_KEY_NAME=alice SKIFF_KEY_FINGERPRINT=SHA256:x... SKIFF_ROOT='/srv/skiff'
    '/opt/skiff/bin/skiff' ssh-command",restrict,pty ssh-ed25519 AAAA... alice

sshd runs the ``command`` through the account's shell whatever the client
asked for; the client's command is in ``SSH_ORIGINAL_COMMAND`` and ``skiff
ssh-command`` splits it with shlex, never with a shell. Every other line of
the file is kept as it is.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from skiff.errors import SkiffError, ValidationError
from skiff.executable import skiff_executable

from . import AUTHORIZED_KEYS_ENV

DEFAULT_USER = "skiff"
KEY_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
KEY_TYPE = re.compile(r"\A(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9-]+@openssh\.com)\Z")
KEY_BLOB = re.compile(r"\A[A-Za-z0-9+/]+={0,3}\Z")
FINGERPRINT = re.compile(r"\ASHA256:[A-Za-z0-9+/]+=*\Z")
SKIFF_LINE = re.compile(
    r'\Acommand="SKIFF_KEY_NAME=(?P<name>\S+) SKIFF_KEY_FINGERPRINT=(?P<fingerprint>\S+) [^"]*",'
    r"(?P<options>[a-z,-]+) (?P<type>\S+) (?P<blob>\S+)"
)
DEFAULT_OPTIONS = "restrict,pty"


@dataclass(frozen=True)
class PublicKey:
    """A validated public key: type, base64 blob and SHA256 fingerprint."""

    type: str
    blob: str
    fingerprint: str


@dataclass(frozen=True)
class SkiffKey:
    """One line of authorized_keys that Skiff wrote."""

    name: str
    fingerprint: str
    type: str
    blob: str
    options: str


def validate_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name or ""):
        raise ValidationError(
            f"invalid key name {name!r}: use letters, digits, '.', '_', '@' and '-', at most 64 characters"
        )
    return name


def parse_public_key(text: str) -> PublicKey:
    """Validate one OpenSSH public key with ``ssh-keygen -l``; return it."""
    if "PRIVATE KEY" in text:
        raise ValidationError("that is a private key: give the public key (the .pub file)")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValidationError("no public key given (pass a KEYFILE or pipe the key on stdin)")
    if len(lines) > 1:
        raise ValidationError("give exactly one public key per ssh-keys:add")
    fields = lines[0].split()
    if len(fields) < 2 or not KEY_TYPE.fullmatch(fields[0]) or not KEY_BLOB.fullmatch(fields[1]):
        raise ValidationError("not an OpenSSH public key (expected 'TYPE BASE64 [comment]', without options)")
    key_type, blob = fields[0], fields[1]
    import subprocess  # here, not at the top: the role check of every SSH command imports this module
    import tempfile

    with tempfile.TemporaryDirectory(prefix="skiff-key-") as tmp:
        path = Path(tmp) / "key.pub"
        path.write_text(f"{key_type} {blob}\n")
        proc = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) < 2 or not FINGERPRINT.fullmatch(parts[1]):
        raise ValidationError("not a valid public key (ssh-keygen -l rejects it)")
    return PublicKey(key_type, blob, parts[1])


def _safe_for_command(value: str, what: str) -> str:
    if any(c in value for c in '"\\\n\r\x00'):
        raise SkiffError(f"the {what} {value!r} cannot be written into authorized_keys")
    return shlex.quote(value)


def forced_command(name: str, fingerprint: str, root: Path | None) -> str:
    """The ``command=`` value: key name and fingerprint in the environment, then skiff."""
    parts = [f"SKIFF_KEY_NAME={validate_name(name)}", f"SKIFF_KEY_FINGERPRINT={fingerprint}"]
    if root is not None:
        parts.append(f"SKIFF_ROOT={_safe_for_command(str(root), 'SKIFF_ROOT')}")
    parts += [_safe_for_command(skiff_executable(), "skiff path"), "ssh-command"]
    return " ".join(parts)


def key_line(name: str, key: PublicKey, root: Path | None, options: str = DEFAULT_OPTIONS) -> str:
    if not FINGERPRINT.fullmatch(key.fingerprint):
        raise ValidationError(f"bad fingerprint {key.fingerprint!r}")
    return f'command="{forced_command(name, key.fingerprint, root)}",{options} {key.type} {key.blob} {name}'


def parse_line(line: str) -> SkiffKey | None:
    """The key of a line Skiff wrote, or ``None`` for any other line."""
    match = SKIFF_LINE.match(line)
    if not match:
        return None
    return SkiffKey(match["name"], match["fingerprint"], match["type"], match["blob"], match["options"])


def line_blobs(line: str) -> set[str]:
    """Base64 fields of any authorized_keys line (to spot a key that is already there)."""
    return {token for token in line.split() if len(token) > 40 and KEY_BLOB.fullmatch(token)}


# -- the file -------------------------------------------------------------------


def default_path(user: str | None = None) -> Path:
    """``~ACCOUNT/.ssh/authorized_keys`` of the service account (``$SKIFF_USER``, default ``skiff``)."""
    user = user or os.environ.get("SKIFF_USER") or DEFAULT_USER
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        raise SkiffError(
            f"there is no {user!r} account to hold the keys: run make install, "
            f"or point {AUTHORIZED_KEYS_ENV} (or ssh-keys:set authorized-keys-file) at the file"
        ) from None
    return Path(home) / ".ssh" / "authorized_keys"


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def skiff_keys(lines: list[str]) -> list[SkiffKey]:
    return [key for key in map(parse_line, lines) if key is not None]


def _owner_for(path: Path) -> tuple[int, int]:
    """Owner of the existing file, else of the nearest existing parent directory."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    st = probe.stat()
    return st.st_uid, st.st_gid


def write_lines(path: Path, lines: list[str]) -> None:
    """Replace ``path`` atomically (temp file + rename), mode 0600, same owner."""
    uid, gid = _owner_for(path)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
        if os.geteuid() == 0:
            os.chown(path.parent, uid, gid)
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".authorized_keys.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
