"""moto's S3 server (PyPI's ``moto[server]``) on a loopback port, for the S3 backup tests.

``moto_s3`` yields its endpoint URL (``http://127.0.0.1:PORT``); ``s3_client(url)`` is a boto3
client of it with the test's credentials (:data:`ACCESS_KEY`, :data:`SECRET_KEY`). Both skip the
test when moto or boto3 is not installed (``make venv`` installs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "AKIDTEST"
SECRET_KEY = "s3cr3t"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_s3(tmp_path: Path) -> Iterator[str]:
    """moto's S3 server on a loopback port of this test; its endpoint URL."""
    pytest.importorskip("boto3")
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (make venv installs moto[server])")
    port = _free_port()
    log_path = tmp_path / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError(log_path.read_text()) from None
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def s3_client(url: str) -> Any:
    """A boto3 S3 client of the moto server at ``url`` (boto3 is the services' ``s3`` extra, not skiff's)."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )


__all__ = ["moto_s3", "s3_client", "ACCESS_KEY", "SECRET_KEY", "REGION"]
