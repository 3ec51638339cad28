"""A throw-away certificate for the simulated CSMS's wss (security profile 2), made with the
``openssl`` command (no Python crypto dependency): self-signed, EC P-256, for ``127.0.0.1`` and
``localhost``, valid one day."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_test_cert(directory: Path) -> tuple[Path, Path]:
    """Write ``csms-cert.pem`` and ``csms-key.pem`` into ``directory``; (cert, key). The cert is
    its own CA: give it to the client as ``ca_file``."""
    if not openssl_available():
        raise RuntimeError("the openssl command is needed to make a test certificate")
    cert, key = directory / "csms-cert.pem", directory / "csms-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or newer, as security profile 2 requires."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A client context that trusts ``ca_file`` (the test cert) only."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
