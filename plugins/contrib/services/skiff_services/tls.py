"""Per-service certificates: a kind with ``ServiceKind.tls`` serves TLS by default.

Each service gets its own self-signed certificate (it is its own CA: a client may pin it with
``sslrootcert``) for its hostname ``skiff-KIND-NAME``, made on the host with ``cryptography``
(imported lazily) when the container is created and none is there yet. The key is written 0600
and then given, with the certificate, to the server's user of the image by a one-off container
(only the image knows that uid); the folder ``SKIFF_ROOT/services/KIND/NAME/tls`` is mounted
read-only at ``TLS.mount`` (the folder stays the host's: it can remove them).
``KIND:set NAME tls false`` turns it off for one service.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING

from skiff.context import Context
from skiff.errors import SkiffError

from .kind import ServiceKind
from .record import Service, Store

if TYPE_CHECKING:  # pragma: no cover
    import docker

CERT, KEY = "server.crt", "server.key"
GIVEN = "given-to"  # the image whose server's user they were given to
LABEL = "skiff.service.tls"  # "on" on a container created with TLS
VALID_DAYS = 3650


def folder(context: Context, kind: ServiceKind, name: str) -> Path:
    return Store(kind).data_dir(context, name) / "tls"


def wanted(kind: ServiceKind, service: Service) -> bool:
    return kind.tls is not None and kind.tls.enabled(service)


def certificate(hostname: str) -> tuple[bytes, bytes]:
    """A new self-signed certificate for ``hostname`` and its key, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure(context: Context, c: docker.DockerClient, kind: ServiceKind, service: Service, labels: dict) -> Path:
    """The service's certificate folder: the certificate made if it is not there, and given to the
    server's user of ``service.image`` (again when the image changed: another image, another uid)."""
    assert kind.tls is not None
    path = folder(context, kind, service.name)
    made = not ((path / CERT).is_file() and (path / KEY).is_file())
    if made:
        context.output.info(f"Making a TLS certificate for {kind.name} {service.name}")
        cert, key = certificate(kind.hostname(service.name))
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)  # the server's user goes through it; its key is 0600, the service's folder 0700
        (path / GIVEN).unlink(missing_ok=True)
        for name, data, mode in ((KEY, key, 0o600), (CERT, cert, 0o644)):
            part = path / (name + ".part")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(part, path / name)
    elif (path / GIVEN).is_file() and (path / GIVEN).read_text() == service.image:
        return path
    try:
        give(c, kind, service, path, labels)
    except SkiffError:
        if made:  # nothing half made; a certificate that was there stays
            for name in (KEY, CERT):
                (path / name).unlink(missing_ok=True)
        raise
    return path


def give(c: docker.DockerClient, kind: ServiceKind, service: Service, path: Path, labels: dict) -> None:
    """Give the certificate and key in ``path`` to the server's user of ``service.image`` (a new
    image may run its server as another uid: ``KIND:upgrade`` gives them to it first)."""
    assert kind.tls is not None
    try:
        c.containers.run(
            service.image,
            entrypoint=["chown", f"{kind.tls.owner}:", f"/tls/{CERT}", f"/tls/{KEY}"],
            volumes={str(path): {"bind": "/tls", "mode": "rw"}},
            remove=True,
            user="0",
            network_mode="none",
            labels=labels,
        )
    except Exception as exc:
        raise SkiffError(f"cannot give the TLS certificate of {kind.name} {service.name} to its server: {exc}") from exc
    (path / GIVEN).write_text(service.image)
