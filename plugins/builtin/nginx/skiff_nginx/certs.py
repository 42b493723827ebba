"""TLS certificates of apps: check, store, generate and describe them with openssl.

Keys never appear in argument lists or output: openssl reads them from
0600 files in a private temp directory next to where they are stored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from skiff.errors import SkiffError, ValidationError

from . import names
from .settings import Settings

MAX_PEM = 256 * 1024


def _openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["openssl", *args],
            capture_output=True,
            input=input,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except FileNotFoundError:
        raise SkiffError("openssl is not installed (apt-get install openssl)") from None


@contextmanager
def _private_dir(settings: Settings) -> Iterator[Path]:
    settings.certs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.certs_dir, 0o700)
    path = Path(tempfile.mkdtemp(prefix=".new-", dir=settings.certs_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def check_pair(crt: Path, key: Path) -> None:
    """Raise ValidationError unless ``crt`` is a PEM certificate whose public key is ``key``'s."""
    cert_pub = _openssl("x509", "-in", str(crt), "-noout", "-pubkey")
    if cert_pub.returncode != 0:
        raise ValidationError("the certificate is not a PEM X.509 certificate")
    key_pub = _openssl("pkey", "-in", str(key), "-pubout", "-passin", "pass:")
    if key_pub.returncode != 0:
        raise ValidationError("the key is not a PEM private key without a passphrase")
    if cert_pub.stdout.strip() != key_pub.stdout.strip():
        raise ValidationError("the key does not match the certificate")


def read_tarball(stream: BinaryIO) -> tuple[bytes, bytes]:
    """``server.crt`` and ``server.key`` (or one ``*.crt`` and one ``*.key``) from a tar stream."""
    import tarfile  # lazily: it pulls in the compression modules

    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or member.size > MAX_PEM:
                    continue
                base = os.path.basename(member.name)
                for suffix in (".crt", ".key"):
                    if base.endswith(suffix):
                        if suffix in found and base != f"server{suffix}":
                            continue
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            found[suffix] = extracted.read()
    except tarfile.TarError as exc:
        raise ValidationError(f"stdin is not a tar archive with server.crt and server.key ({exc})") from exc
    if ".crt" not in found or ".key" not in found:
        raise ValidationError("the tar archive must hold server.crt and server.key")
    return found[".crt"], found[".key"]


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PEM + 1)
    except OSError as exc:
        raise ValidationError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_PEM:
        raise ValidationError(f"the {what} {path} is too large")
    return data


def current(settings: Settings, app: str) -> tuple[bytes, bytes] | None:
    crt, key = settings.cert_files(app)
    if crt.exists() and key.exists():
        return crt.read_bytes(), key.read_bytes()
    return None


def store(settings: Settings, app: str, pair: tuple[bytes, bytes] | None) -> None:
    """Check and install ``(crt, key)`` for ``app``; ``None`` removes them."""
    crt_path, key_path = settings.cert_files(app)
    if pair is None:
        shutil.rmtree(crt_path.parent, ignore_errors=True)
        return
    crt_data, key_data = pair
    with _private_dir(settings) as tmp:
        _write_private(tmp / "server.crt", crt_data, 0o644)
        _write_private(tmp / "server.key", key_data, 0o600)
        check_pair(tmp / "server.crt", tmp / "server.key")
        crt_path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(crt_path.parent, 0o700)
        os.replace(tmp / "server.key", key_path)
        os.replace(tmp / "server.crt", crt_path)


def generate(settings: Settings, domain: str, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``domain`` (validated): ``(crt, key)`` PEM bytes."""
    names.domain(domain)
    common_name = domain if len(domain) <= 64 else "skiff"
    with _private_dir(settings) as tmp:
        proc = _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            str(days),
            "-keyout",
            str(tmp / "server.key"),
            "-out",
            str(tmp / "server.crt"),
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName=DNS:{domain}",
        )
        if proc.returncode != 0:
            raise SkiffError(f"openssl could not generate a certificate: {proc.stderr.decode(errors='replace')[-300:]}")
        return (tmp / "server.crt").read_bytes(), (tmp / "server.key").read_bytes()


def describe(crt: Path) -> dict[str, Any]:
    """Subject, issuer, validity, names and fingerprint of a stored certificate."""
    proc = _openssl(
        "x509",
        "-in",
        str(crt),
        "-noout",
        "-subject",
        "-issuer",
        "-startdate",
        "-enddate",
        "-fingerprint",
        "-sha256",
        "-ext",
        "subjectAltName",
        "-nameopt",
        "RFC2253",
    )
    if proc.returncode != 0:
        return {"error": "cannot read the certificate"}
    info: dict[str, Any] = {}
    lines = proc.stdout.decode(errors="replace").splitlines()
    for index, line in enumerate(lines):
        key, sep, value = line.partition("=")
        key = key.strip()
        if key == "subject":
            info["subject"] = value.strip()
        elif key == "issuer":
            info["issuer"] = value.strip()
        elif key == "notBefore":
            info["starts"] = value.strip()
        elif key == "notAfter":
            info["expires"] = value.strip()
        elif key.endswith("Fingerprint"):
            info["fingerprint_sha256"] = value.strip()
        elif "Subject Alternative Name" in line and index + 1 < len(lines):
            info["names"] = [part.strip().split(":", 1)[-1] for part in lines[index + 1].split(",")]
    info["self_signed"] = info.get("subject") == info.get("issuer")
    return info
