"""TLS files for tests, made on the spot under the example PKI's CAs: certificates with any validity period
and CRLs that are expired, foreign or not CRLs at all. Keys are written to the test's temporary directory
only (never committed)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.certs import ExamplePki

__all__ = ["issue", "write_crl"]


def _ca(pki: ExamplePki, issuer: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    stem = {"demo": "ca", "foreign": "foreign-ca"}[issuer]
    cert = x509.load_pem_x509_certificate((pki.directory / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((pki.directory / f"{stem}.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue(
    pki: ExamplePki,
    directory: Path,
    name: str,
    *,
    valid_from: timedelta = timedelta(days=-1),
    valid_until: timedelta = timedelta(days=365),
    issuer: str = "demo",
    server: bool = True,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    hsa_id: str | None = None,
) -> tuple[Path, Path]:
    """A certificate and key ``name``.pem / ``name``.key valid from now + ``valid_from`` to now +
    ``valid_until``, signed by the demo CA (or the ``foreign`` one)."""
    ca_cert, ca_key = _ca(pki, issuer)
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, f"test {name}")]
    if hsa_id:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, hsa_id))
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def write_crl(
    pki: ExamplePki,
    path: Path,
    *,
    issuer: str = "demo",
    last_update: timedelta = timedelta(minutes=-5),
    next_update: timedelta = timedelta(days=30),
    revoked: tuple[Path, ...] = (),
) -> Path:
    """A CRL from the demo (or ``foreign``) CA, valid from now + ``last_update`` to now + ``next_update``,
    revoking the certificates in ``revoked``. Written next to ``path`` and moved over it in one step, as an
    operator's CRL update would (a server reading it never sees half a file)."""
    ca_cert, ca_key = _ca(pki, issuer)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now + last_update)
        .next_update(now + next_update)
    )
    for cert_path in revoked:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)
    return path
