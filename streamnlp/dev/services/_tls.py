"""A private CA and a server certificate for 127.0.0.1, for the local services' TLS listeners."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..._errors import ServiceError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path
    keystore: Path  # PKCS#12 of cert + key, for the JVM
    keystore_password: str


def _run(*args: str) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"{args[0]} {args[1]} failed: {result.stderr.strip()[-800:]}")


def ensure_tls(folder: Path) -> TlsFiles:
    """Create (once) a CA and a certificate for localhost/127.0.0.1 signed by it."""
    if shutil.which("openssl") is None:
        raise ServiceError("openssl is needed for the TLS listeners: apt-get install -y openssl")
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "keystore.password"
    files = TlsFiles(
        folder / "ca.crt", folder / "server.crt", folder / "server.key", folder / "server.p12",
        password_file.read_text().strip() if password_file.exists() else secrets.token_hex(16),
    )  # fmt: skip
    if files.keystore.exists():
        return files
    ca_key = folder / "ca.key"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
         "/CN=streamnlp local CA", "-keyout", str(ca_key), "-out", str(files.ca_cert))  # fmt: skip
    csr = folder / "server.csr"
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(files.key), "-out", str(csr))  # fmt: skip
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(files.cert))  # fmt: skip
    _run("openssl", "pkcs12", "-export", "-in", str(files.cert), "-inkey", str(files.key),
         "-out", str(files.keystore), "-passout", f"pass:{files.keystore_password}")  # fmt: skip
    password_file.write_text(files.keystore_password + "\n")
    for path in (ca_key, files.key, password_file):
        path.chmod(0o600)
    return files
