"""A local certificate authority, so LocalStack serves HTTPS that clients verify (no `curl -k`).

    ensure(tls_dir) -> LocalTls(ca=<tls_dir>/ca.pem, server=<tls_dir>/server.pem)

Made once under the state dir (``.state/tls``) and kept: the CA (``ca.pem`` + ``ca-key.pem``, CA:true,
10 years) and a server certificate signed by it for ``localhost``, 127.0.0.1 and the execute-api host
names LocalStack answers to. ``server.pem`` is what LocalStack's CUSTOM_SSL_CERT_PATH wants: one PEM
with the key, the certificate and the CA (the chain). The server certificate is made again when it is
missing, expires within 30 days, names other hosts than :data:`SERVER_NAMES`, or was not signed by
the current CA; the CA only when it is missing or expiring. Trust ``ca.pem`` and nothing else changes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE, CA_KEY_FILE, SERVER_FILE = "ca.pem", "ca-key.pem", "server.pem"
# localhost, and what LocalStack's URLs use: <api id>.execute-api.localhost.localstack.cloud (CDK's
# API URL output), <bucket>.s3.localhost.localstack.cloud, localhost.localstack.cloud itself.
SERVER_NAMES = ("localhost", "localhost.localstack.cloud", "*.localhost.localstack.cloud",
                "*.execute-api.localhost.localstack.cloud", "*.s3.localhost.localstack.cloud")
SERVER_IPS = ("127.0.0.1", "::1")
CA_DAYS, SERVER_DAYS = 3650, 365
RENEW_BEFORE = dt.timedelta(days=30)
CA_NAME = "driftstack local CA"


@dataclass(frozen=True)
class LocalTls:
    ca: Path       # what clients trust (requests verify=, curl --cacert)
    server: Path   # key + certificate + CA, for LocalStack (CUSTOM_SSL_CERT_PATH)


def ensure(tls_dir: Path | str, now: dt.datetime | None = None) -> LocalTls:
    """The CA and the server certificate under ``tls_dir``, made or renewed as needed (idempotent,
    safe when several processes call it at once)."""
    tls_dir = Path(tls_dir)
    tls_dir.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    paths = LocalTls(tls_dir / CA_FILE, tls_dir / SERVER_FILE)
    with _locked(tls_dir / ".lock"):
        ca_cert, ca_key = _load_ca(tls_dir, now)
        if ca_cert is None:
            ca_cert, ca_key = _new_ca(now)
            _write(tls_dir / CA_KEY_FILE, _key_pem(ca_key), mode=0o600)
            _write(paths.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
        if not _server_current(paths.server, ca_cert, now):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _new_server_cert(key, ca_cert, ca_key, now)
            pem = _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM) \
                + ca_cert.public_bytes(serialization.Encoding.PEM)
            _write(paths.server, pem, mode=0o600)
    return paths


def subject_alt_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)) | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def covers(host: str) -> bool:
    """The server certificate names ``host`` (a wildcard stands for one label, as in TLS)."""
    host = host.strip("[]").lower()
    if host in wanted_names():
        return True
    first, _, rest = host.partition(".")
    return bool(first) and f"*.{rest}" in SERVER_NAMES


def wanted_names() -> set[str]:
    return set(SERVER_NAMES) | {str(ipaddress.ip_address(ip)) for ip in SERVER_IPS}


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Atomically: LocalStack or a client never reads half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _expiring(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_after_utc - RENEW_BEFORE < now or cert.not_valid_before_utc > now


def _load_ca(tls_dir: Path, now: dt.datetime):
    try:
        cert = x509.load_pem_x509_certificate((tls_dir / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key((tls_dir / CA_KEY_FILE).read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    if _expiring(cert, now) or cert.public_key() != key.public_key():
        return None, None
    return cert, key


def _server_current(path: Path, ca_cert: x509.Certificate, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())  # the first certificate: the server's
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):  # missing, unreadable, or another CA's
        return False
    return not _expiring(cert, now) and subject_alt_names(cert) == wanted_names()


def _builder(subject: str, issuer: x509.Name | None, public_key, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))


def _new_ca(now: dt.datetime):
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_builder(CA_NAME, None, key.public_key(), now, CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _new_server_cert(key, ca_cert: x509.Certificate, ca_key, now: dt.datetime) -> x509.Certificate:
    sans = [x509.DNSName(n) for n in SERVER_NAMES] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (_builder("localhost", ca_cert.subject, key.public_key(), now, SERVER_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
