"""Demo and test PKI for the gateway's mutual TLS: a throw-away CA, server and client certificates.

This is for demos, local development (``make run``) and tests only, NEVER for production. Every key is
generated on the spot, stored unencrypted on disk and signed by a CA that nobody else trusts; production
certificates come from SITHS (or another real CA) and are configured in ``[tls]``.

``generate_example_pki`` writes into one directory:

* ``ca.pem`` / ``ca.key``: "CAF Gateway Demo CA", the trust store for the gateway and its clients;
* ``crl.pem``: a CRL from that CA that revokes the ``revoked`` client;
* ``foreign-ca.pem`` / ``foreign-ca.key``: "Foreign Demo CA", which the gateway must NOT trust;
* ``server.pem`` / ``server.key``: the gateway's server certificate (``localhost`` and ``127.0.0.1``);
* ``<name>.pem`` / ``<name>.key`` for each demo client (``1177``, ``revoked``...; see
  ``certs-example/README.md``), with the caller's HSA-id as the subject
  ``serialNumber`` (OID 2.5.4.5), which is what the gateway uses to identify callers;
* ``<name>.p12`` for each person's certificate (``handler``, ``handler-2``, ``reader``, ``operator``): the
  certificate, its key and the demo CA as PKCS#12, protected with the password ``demo``
  (``PKCS12_PASSWORD``), to import in a browser for the web app;
* ``hsa-ids.json``: client name -> HSA-id (``null`` for the client without one).

Keys are PKCS#8 PEM, unencrypted, created with mode 0600 inside a 0700 directory; every file is written
atomically (temporary file + ``os.replace``). ``ca.pem`` is removed first (on ``force``) and written last, so
an interrupted run never leaves a directory that later calls would take for a complete set.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.soap.identity import hsa_id_from_certificate

__all__ = [
    "PKCS12_PASSWORD",
    "ExamplePki",
    "Identity",
    "generate_example_pki",
    "hsa_id_from_certificate",
    "load_example_pki",
    "pkcs12_key_store",
    "pkcs12_trust_store",
]

_CA_NAME = "CAF Gateway Demo CA"
_FOREIGN_CA_NAME = "Foreign Demo CA"
_ORG = "CAF Gateway Demo"
_REGION = "Demo Region"
_FOREIGN_ORG = "Foreign Demo Org"
# Client certificates carry a (never resolvable) dNSName because RFC 5280 path validation as done by
# cryptography's client verifier, used by gateway.soap.identity in trusted-proxy mode, requires a SAN.
_CLIENT_DNS_SUFFIX = ".demo-client.invalid"

_CA_LIFETIME = timedelta(days=3650)
_LEAF_LIFETIME = timedelta(days=730)
_CRL_LIFETIME = timedelta(days=365)
# CAs are backdated past the start of the deliberately expired client, so that certificate lies inside
# its issuer's validity period; leaves are backdated a little for clock skew between machines.
_CA_BACKDATE = timedelta(days=31)
_LEAF_BACKDATE = timedelta(minutes=5)
_EXPIRED_FROM = timedelta(days=30)
_EXPIRED_UNTIL = timedelta(days=1)

_KEY_MODE = 0o600
_PUBLIC_MODE = 0o644
_DIR_MODE = 0o700

_CA_CERT = "ca.pem"
_CA_KEY = "ca.key"
_CRL = "crl.pem"
_FOREIGN_CA_CERT = "foreign-ca.pem"
_FOREIGN_CA_KEY = "foreign-ca.key"
_SERVER = "server"
_HSA_IDS = "hsa-ids.json"
#: the password of every demo ``.p12`` file (demo material only: it is printed in certs-example/README.md)
PKCS12_PASSWORD = "demo"  # noqa: S105 - a demo password, published on purpose


@dataclass(frozen=True)
class _ClientSpec:
    name: str
    hsa_id: str | None
    common_name: str
    organization: str
    issuer: str = "demo"  # "demo" or "foreign"
    kind: str = "valid"  # "valid", "revoked" or "expired"
    #: a person's certificate (for the web app): also written as PKCS#12 for a browser
    person: bool = False


_CLIENTS: tuple[_ClientSpec, ...] = (
    _ClientSpec("1177", "SE5565594230-1177", "1177 case service", "Inera AB"),
    _ClientSpec("deviation-a", "SE2321000016-DEV1", "Deviation system for care units", _REGION),
    _ClientSpec("deviation-b", "SE2321000016-DEV2", "Patient board system", _REGION),
    _ClientSpec("operator", "SE2321000016-OPS1", "Gateway operator", _REGION, person=True),
    _ClientSpec("handler", "SE2321000016-HND1", "Case handler", _REGION, person=True),
    _ClientSpec("handler-2", "SE2321000016-HND2", "Case handler of another unit", _REGION, person=True),
    _ClientSpec("reader", "SE2321000016-RDR1", "Case reader", _REGION, person=True),
    _ClientSpec("gateway", "SE2321000016-GW01", "Integration gateway (outbound deliveries)", _REGION),
    _ClientSpec("revoked", "SE2321000016-RVK1", "Revoked demo client", _REGION, kind="revoked"),
    _ClientSpec("expired", "SE2321000016-EXP1", "Expired demo client", _REGION, kind="expired"),
    _ClientSpec("no-serial", None, "Demo client without HSA-id", _REGION),
    _ClientSpec("foreign", "SE2321000016-FRN1", "Client of a foreign CA", _FOREIGN_ORG, issuer="foreign"),
)


@dataclass(frozen=True)
class Identity:
    """One certificate and its key as written to disk; ``hsa_id`` is the subject serialNumber, if any."""

    name: str
    hsa_id: str | None
    cert: Path
    key: Path
    #: the same as PKCS#12 (password ``PKCS12_PASSWORD``), for a person's certificate
    p12: Path | None = None


@dataclass(frozen=True)
class ExamplePki:
    """The files of a generated demo PKI; ``clients`` is keyed by short name (``"1177"``, ``"revoked"``)."""

    directory: Path
    ca_cert: Path
    crl: Path
    foreign_ca_cert: Path
    server: Identity
    clients: dict[str, Identity]


def _expected_files() -> list[str]:
    names = [_CA_CERT, _CA_KEY, _CRL, _FOREIGN_CA_CERT, _FOREIGN_CA_KEY, f"{_SERVER}.pem", f"{_SERVER}.key"]
    for spec in _CLIENTS:
        names += [f"{spec.name}.pem", f"{spec.name}.key"] + ([f"{spec.name}.p12"] if spec.person else [])
    return [*names, _HSA_IDS]


def _identity(directory: Path, name: str, person: bool = False) -> Identity:
    cert = directory / f"{name}.pem"
    p12 = directory / f"{name}.p12" if person else None
    return Identity(name, hsa_id_from_certificate(cert.read_bytes()), cert, directory / f"{name}.key", p12)


def load_example_pki(out_dir: Path) -> ExamplePki:
    """Describes a demo PKI already in ``out_dir``; FileNotFoundError if any of its files is missing."""
    directory = Path(out_dir)
    missing = [name for name in _expected_files() if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"incomplete example PKI in {directory}: missing {', '.join(missing)}; "
            "regenerate it with 'gateway certs example --force'"
        )
    return ExamplePki(
        directory=directory,
        ca_cert=directory / _CA_CERT,
        crl=directory / _CRL,
        foreign_ca_cert=directory / _FOREIGN_CA_CERT,
        server=_identity(directory, _SERVER),
        clients={spec.name: _identity(directory, spec.name, spec.person) for spec in _CLIENTS},
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Writes a fresh temporary file created with ``mode`` (never wider), then renames it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exact mode whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pkcs12_protection(password: str) -> serialization.KeySerializationEncryption:
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )


def _pkcs12(
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    password: str = PKCS12_PASSWORD,
) -> bytes:
    """Certificate, key and CA as PKCS#12 with AES-256 and SHA-256, which browsers (and Java) import."""
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca], _pkcs12_protection(password))


def pkcs12_key_store(identity: Identity, ca_cert: Path, password: str = PKCS12_PASSWORD) -> bytes:
    """``identity``'s certificate and key, with the CA, as a PKCS#12 key store (e.g. a Java client's
    ``javax.net.ssl.keyStore``)."""
    key = serialization.load_pem_private_key(identity.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{identity.key} is not an EC private key of the example PKI")
    cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    return _pkcs12(identity.name, cert, key, ca, password)


def pkcs12_trust_store(ca_cert: Path, password: str = PKCS12_PASSWORD) -> bytes:
    """The CA as a PKCS#12 trust store that Java reads as a trusted certificate entry
    (``javax.net.ssl.trustStore``)."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    entry = pkcs12.PKCS12Certificate(ca, b"ca")
    return pkcs12.serialize_java_truststore([entry], _pkcs12_protection(password))


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organization: str, serial_number: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if serial_number is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    return x509.Name(attributes)


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _make_ca(common_name: str, organization: str, now: datetime) -> _Issuer:
    key = _new_key()
    name = _name(common_name, organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CA_BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(cert, key)


def _make_leaf(
    issuer: _Issuer,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    not_before: datetime,
    not_after: datetime,
    san: Sequence[x509.GeneralName] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(issuer.key, hashes.SHA256()), key


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _make_crl(
    issuer: _Issuer, revoked: Sequence[x509.Certificate], now: datetime
) -> x509.CertificateRevocationList:
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - _LEAF_BACKDATE)
        .next_update(now + _CRL_LIFETIME)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - _LEAF_BACKDATE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


def generate_example_pki(
    out_dir: Path,
    *,
    force: bool = False,
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
    now: datetime | None = None,
) -> ExamplePki:
    """Generates the demo PKI into ``out_dir`` (created 0700); see the module docstring for the files.

    If ``out_dir`` already has ``ca.pem`` and ``force`` is false nothing is generated and the existing set is
    described instead (``load_example_pki``), so this can run before every ``make run``. ``hostnames`` go
    into the server certificate (IP addresses as iPAddress, the rest as dNSName; the first is also the CN).
    ``now`` (timezone-aware, default the current time) is the reference time for all validity periods.
    """
    directory = Path(out_dir)
    if not force and (directory / _CA_CERT).exists():
        return load_example_pki(directory)
    hosts = list(dict.fromkeys(hostnames))
    if not hosts:
        raise ValueError("at least one hostname is needed for the server certificate")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC).replace(microsecond=0)

    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    (directory / _CA_CERT).unlink(missing_ok=True)  # see the module docstring: ca.pem marks a complete set
    demo_ca = _make_ca(_CA_NAME, _ORG, now)
    foreign_ca = _make_ca(_FOREIGN_CA_NAME, _FOREIGN_ORG, now)
    issuers = {"demo": demo_ca, "foreign": foreign_ca}

    def write_pair(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        _write_atomic(directory / f"{name}.key", _key_pem(key), _KEY_MODE)
        _write_atomic(directory / f"{name}.pem", _cert_pem(cert), _PUBLIC_MODE)

    server_cert, server_key = _make_leaf(
        demo_ca,
        _name(hosts[0], _ORG),
        ExtendedKeyUsageOID.SERVER_AUTH,
        now - _LEAF_BACKDATE,
        now + _LEAF_LIFETIME,
        san=[_general_name(host) for host in hosts],
    )
    write_pair(_SERVER, server_cert, server_key)

    revoked: list[x509.Certificate] = []
    for spec in _CLIENTS:
        if spec.kind == "expired":
            not_before, not_after = now - _EXPIRED_FROM, now - _EXPIRED_UNTIL
        else:
            not_before, not_after = now - _LEAF_BACKDATE, now + _LEAF_LIFETIME
        cert, key = _make_leaf(
            issuers[spec.issuer],
            _name(spec.common_name, spec.organization, spec.hsa_id),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            not_before,
            not_after,
            san=[x509.DNSName(f"{spec.name}{_CLIENT_DNS_SUFFIX}")],
        )
        if spec.kind == "revoked":
            revoked.append(cert)
        write_pair(spec.name, cert, key)
        if spec.person:
            _write_atomic(
                directory / f"{spec.name}.p12", _pkcs12(spec.name, cert, key, demo_ca.cert), _KEY_MODE
            )

    crl = _make_crl(demo_ca, revoked, now)
    _write_atomic(directory / _CRL, crl.public_bytes(serialization.Encoding.PEM), _PUBLIC_MODE)
    hsa_ids = {spec.name: spec.hsa_id for spec in _CLIENTS}
    _write_atomic(directory / _HSA_IDS, (json.dumps(hsa_ids, indent=2) + "\n").encode(), _PUBLIC_MODE)
    _write_atomic(directory / _FOREIGN_CA_KEY, _key_pem(foreign_ca.key), _KEY_MODE)
    _write_atomic(directory / _FOREIGN_CA_CERT, _cert_pem(foreign_ca.cert), _PUBLIC_MODE)
    _write_atomic(directory / _CA_KEY, _key_pem(demo_ca.key), _KEY_MODE)
    _write_atomic(directory / _CA_CERT, _cert_pem(demo_ca.cert), _PUBLIC_MODE)  # last: marks a complete set
    return load_example_pki(directory)
