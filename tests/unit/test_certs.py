"""The demo PKI from gateway.certs: files, permissions, certificate contents, idempotence and real TLS."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.certs import ExamplePki, generate_example_pki, hsa_id_from_certificate, load_example_pki

EXPECTED_HSA_IDS: dict[str, str | None] = {
    "1177": "SE5565594230-1177",
    "deviation-a": "SE2321000016-DEV1",
    "deviation-b": "SE2321000016-DEV2",
    "operator": "SE2321000016-OPS1",
    "handler": "SE2321000016-HND1",
    "handler-2": "SE2321000016-HND2",
    "reader": "SE2321000016-RDR1",
    "gateway": "SE2321000016-GW01",
    "revoked": "SE2321000016-RVK1",
    "expired": "SE2321000016-EXP1",
    "no-serial": None,
    "foreign": "SE2321000016-FRN1",
}
DEMO_CA_CLIENTS = [name for name in EXPECTED_HSA_IDS if name != "foreign"]
GOOD_CLIENTS = [name for name in DEMO_CA_CLIENTS if name not in ("revoked", "expired")]
FIXED_FILES = [
    "ca.pem",
    "ca.key",
    "crl.pem",
    "foreign-ca.pem",
    "foreign-ca.key",
    "server.pem",
    "server.key",
    "hsa-ids.json",
]
PERSONS = ["operator", "handler", "handler-2", "reader"]
ALL_FILES = (
    FIXED_FILES
    + [f"{name}{ext}" for name in EXPECTED_HSA_IDS for ext in (".pem", ".key")]
    + [f"{name}.p12" for name in PERSONS]
)
TIMEOUT = 10.0


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ExamplePki:
    return generate_example_pki(tmp_path_factory.mktemp("certs") / "out")


@pytest.fixture(scope="module")
def ca(pki: ExamplePki) -> x509.Certificate:
    return _cert(pki.ca_cert)


# --- files ---------------------------------------------------------------------------------------------


def test_writes_exactly_the_expected_files(pki: ExamplePki) -> None:
    assert sorted(p.name for p in pki.directory.iterdir()) == sorted(ALL_FILES)  # no temp files left over
    assert pki.ca_cert == pki.directory / "ca.pem"
    assert pki.crl == pki.directory / "crl.pem"
    assert pki.foreign_ca_cert == pki.directory / "foreign-ca.pem"
    assert (pki.server.cert, pki.server.key) == (pki.directory / "server.pem", pki.directory / "server.key")
    assert set(pki.clients) == set(EXPECTED_HSA_IDS)
    for name, ident in pki.clients.items():
        assert ident.name == name
        assert (ident.cert, ident.key) == (pki.directory / f"{name}.pem", pki.directory / f"{name}.key")
        assert ident.cert.is_file()
        assert ident.key.is_file()


def test_keys_are_private_and_directory_is_0700(pki: ExamplePki) -> None:
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    for path in pki.directory.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert len(list(pki.directory.glob("*.key"))) == 2 + 1 + len(EXPECTED_HSA_IDS)


def test_keys_are_unencrypted_pkcs8_matching_their_certificates(pki: ExamplePki) -> None:
    for ident in [pki.server, *pki.clients.values()]:
        data = ident.key.read_bytes()
        # the marker is assembled so that no committed file carries a literal private-key header
        assert data.startswith(b"-----BEGIN " + b"PRIVATE" + b" KEY-----")
        key = serialization.load_pem_private_key(data, password=None)
        assert key.public_key() == _cert(ident.cert).public_key(), ident.name


def test_hsa_ids_json(pki: ExamplePki) -> None:
    assert json.loads((pki.directory / "hsa-ids.json").read_text()) == EXPECTED_HSA_IDS


# --- certificate contents ------------------------------------------------------------------------------


def test_demo_ca(ca: x509.Certificate) -> None:
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CAF Gateway Demo CA"
    assert ca.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3700)
    ca.verify_directly_issued_by(ca)


def test_server_certificate_verifies_against_ca_for_both_names(pki: ExamplePki, ca: x509.Certificate) -> None:
    cert = _cert(pki.server.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=700)
    cert.verify_directly_issued_by(ca)
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        chain = PolicyBuilder().store(Store([ca])).build_server_verifier(name).verify(cert, [])
        assert chain[-1] == ca


@pytest.mark.parametrize("name", PERSONS)
def test_person_certificates_also_as_pkcs12_with_the_demo_password(pki: ExamplePki, name: str) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    from gateway.certs import PKCS12_PASSWORD

    ident = pki.clients[name]
    assert ident.p12 == pki.directory / f"{name}.p12"
    assert stat.S_IMODE(ident.p12.stat().st_mode) == 0o600  # it holds the private key
    with pytest.raises(ValueError, match="password"):
        pkcs12.load_pkcs12(ident.p12.read_bytes(), b"wrong")
    bundle = pkcs12.load_pkcs12(ident.p12.read_bytes(), PKCS12_PASSWORD.encode())
    assert bundle.cert is not None and bundle.key is not None  # noqa: PT018
    assert bundle.cert.certificate == _cert(ident.cert)
    assert (
        hsa_id_from_certificate(bundle.cert.certificate.public_bytes(serialization.Encoding.DER))
        == (EXPECTED_HSA_IDS[name])
    )
    key = serialization.load_pem_private_key(ident.key.read_bytes(), password=None)
    assert bundle.key.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert [c.certificate for c in bundle.additional_certs] == [_cert(pki.ca_cert)]


def test_key_and_trust_stores_for_java_clients(pki: ExamplePki) -> None:
    """Any client's certificate and key as a PKCS#12 key store, and the CA as a PKCS#12 trust store whose
    entry carries Java's trusted-certificate attribute (tests/integration/test_jaxws_client.py uses both)."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    from gateway.certs import pkcs12_key_store, pkcs12_trust_store

    ident = pki.clients["1177"]
    bundle = pkcs12.load_pkcs12(pkcs12_key_store(ident, pki.ca_cert, "secret"), b"secret")
    assert bundle.cert is not None and bundle.key is not None  # noqa: PT018
    assert bundle.cert.certificate == _cert(ident.cert)
    key = serialization.load_pem_private_key(ident.key.read_bytes(), password=None)
    assert bundle.key.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    trust = pkcs12.load_pkcs12(pkcs12_trust_store(pki.ca_cert, "secret"), b"secret")
    assert trust.key is None and trust.cert is None  # noqa: PT018
    assert [c.certificate for c in trust.additional_certs] == [_cert(pki.ca_cert)]
    with pytest.raises(ValueError, match="password"):
        pkcs12.load_pkcs12(pkcs12_trust_store(pki.ca_cert), b"wrong")


def test_only_person_certificates_have_pkcs12(pki: ExamplePki) -> None:
    assert {name for name, ident in pki.clients.items() if ident.p12 is not None} == set(PERSONS)


@pytest.mark.parametrize("name", list(EXPECTED_HSA_IDS))
def test_client_hsa_id_from_der_and_pem(pki: ExamplePki, name: str) -> None:
    pem = pki.clients[name].cert.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert hsa_id_from_certificate(pem) == EXPECTED_HSA_IDS[name]
    assert hsa_id_from_certificate(der) == EXPECTED_HSA_IDS[name]
    assert hsa_id_from_certificate(b"\n  " + pem) == EXPECTED_HSA_IDS[name]
    assert pki.clients[name].hsa_id == EXPECTED_HSA_IDS[name]


def test_no_serial_client_has_no_serial_number_attribute(pki: ExamplePki) -> None:
    cert = _cert(pki.clients["no-serial"].cert)
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) == []
    assert hsa_id_from_certificate(cert.public_bytes(serialization.Encoding.DER)) is None


def test_hsa_id_from_certificate_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="asn1"):
        hsa_id_from_certificate(b"not a certificate")
    with pytest.raises(ValueError, match="PEM"):
        hsa_id_from_certificate(b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("name", DEMO_CA_CLIENTS)
def test_client_certificates_profile(pki: ExamplePki, ca: x509.Certificate, name: str) -> None:
    cert = _cert(pki.clients[name].cert)
    cert.verify_directly_issued_by(ca)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "SE"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


@pytest.mark.parametrize("name", [*GOOD_CLIENTS, "revoked"])
def test_valid_clients_pass_rfc5280_client_verification(
    pki: ExamplePki, ca: x509.Certificate, name: str
) -> None:
    # The same verifier gateway.soap.identity uses for certificates forwarded by a trusted proxy (CRL aside).
    verifier = PolicyBuilder().store(Store([ca])).time(datetime.now(UTC)).build_client_verifier()
    verifier.verify(_cert(pki.clients[name].cert), [])
    lifetime = _cert(pki.clients[name].cert).not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=700) < lifetime <= timedelta(days=731)


def test_crl_revokes_only_the_revoked_client(pki: ExamplePki, ca: x509.Certificate) -> None:
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert crl.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.next_update_utc is not None
    assert timedelta(days=364) < crl.next_update_utc - datetime.now(UTC) <= timedelta(days=366)
    assert len(crl) == 1
    revoked = _cert(pki.clients["revoked"].cert)
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    for name in [n for n in EXPECTED_HSA_IDS if n != "revoked"]:
        serial = _cert(pki.clients[name].cert).serial_number
        assert crl.get_revoked_certificate_by_serial_number(serial) is None, name
    assert crl.get_revoked_certificate_by_serial_number(_cert(pki.server.cert).serial_number) is None


def test_expired_client_is_expired(pki: ExamplePki, ca: x509.Certificate) -> None:
    cert = _cert(pki.clients["expired"].cert)
    now = datetime.now(UTC)
    assert cert.not_valid_after_utc < now
    assert now - cert.not_valid_before_utc >= timedelta(days=30)
    cert.verify_directly_issued_by(ca)
    verifier = PolicyBuilder().store(Store([ca])).time(now).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(cert, [])


def test_foreign_client_chains_to_foreign_ca_only(pki: ExamplePki, ca: x509.Certificate) -> None:
    foreign_ca = _cert(pki.foreign_ca_cert)
    cert = _cert(pki.clients["foreign"].cert)
    assert foreign_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Foreign Demo CA"
    cert.verify_directly_issued_by(foreign_ca)
    with pytest.raises(ValueError, match=r"[Ii]ssuer"):
        cert.verify_directly_issued_by(ca)
    now = datetime.now(UTC)
    PolicyBuilder().store(Store([foreign_ca])).time(now).build_client_verifier().verify(cert, [])
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca])).time(now).build_client_verifier().verify(cert, [])


def test_fixed_now_and_custom_hostnames(tmp_path: Path) -> None:
    now = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    pki = generate_example_pki(
        tmp_path / "pki", hostnames=("gateway.example.org", "::1", "10.0.0.1"), now=now
    )
    server = _cert(pki.server.cert)
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gateway.example.org"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gateway.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.0.0.1"),
    ]
    assert server.not_valid_before_utc <= now < server.not_valid_after_utc
    expired = _cert(pki.clients["expired"].cert)
    assert expired.not_valid_before_utc == now - timedelta(days=30)
    assert expired.not_valid_after_utc == now - timedelta(days=1)


def test_rejects_naive_now_and_no_hostnames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        generate_example_pki(tmp_path / "a", now=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="hostname"):
        generate_example_pki(tmp_path / "b", hostnames=())


# --- idempotence and loading ---------------------------------------------------------------------------


def test_second_call_without_force_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = generate_example_pki(out)
    before = _snapshot(out)
    second = generate_example_pki(out)
    assert _snapshot(out) == before
    assert second == first
    assert load_example_pki(out) == first


def test_force_regenerates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_example_pki(out)
    before = _snapshot(out)
    generate_example_pki(out, force=True)
    after = _snapshot(out)
    assert after.keys() == before.keys()
    for name in ALL_FILES:
        if name != "hsa-ids.json":
            assert after[name][0] != before[name][0], name
    for path in out.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_incomplete_directory_raises_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_example_pki(out)
    (out / "expired.key").unlink()
    with pytest.raises(FileNotFoundError, match=r"expired\.key") as info:
        load_example_pki(out)
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"expired\.key"):
        generate_example_pki(out)  # ca.pem is there, so it describes rather than regenerates
    generate_example_pki(out, force=True)
    assert (out / "expired.key").is_file()
    with pytest.raises(FileNotFoundError, match=r"ca\.pem"):
        load_example_pki(tmp_path / "empty")


# --- real TLS handshakes -------------------------------------------------------------------------------


@dataclass
class _Outcome:
    server_peer_der: bytes | None = None
    server_error: OSError | None = None
    client_received: bytes | None = None
    client_error: OSError | None = None


def _server_context(pki: ExamplePki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=pki.server.cert, keyfile=pki.server.key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    ctx.load_verify_locations(cafile=pki.crl)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def _handshake(pki: ExamplePki, client: str, server_hostname: str, version: ssl.TLSVersion) -> _Outcome:
    server_ctx = _server_context(pki)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki.ca_cert)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.maximum_version = version
    client_ctx.load_cert_chain(certfile=pki.clients[client].cert, keyfile=pki.clients[client].key)
    outcome = _Outcome()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    with server_ctx.wrap_socket(conn, server_side=True) as tls:
                        outcome.server_peer_der = tls.getpeercert(binary_form=True)
                        tls.sendall(b"ok")
            except OSError as exc:  # ssl.SSLError and timeouts are OSErrors
                outcome.server_error = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw,
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                outcome.client_received = tls.recv(2)
        except OSError as exc:
            outcome.client_error = exc
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "TLS server thread did not finish"
    return outcome


TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3"),
]


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_tls_1177_client_is_accepted_and_identified(
    pki: ExamplePki, server_hostname: str, version: ssl.TLSVersion
) -> None:
    outcome = _handshake(pki, "1177", server_hostname, version)
    assert outcome.server_error is None
    assert outcome.client_error is None
    assert outcome.client_received == b"ok"
    assert outcome.server_peer_der is not None
    assert hsa_id_from_certificate(outcome.server_peer_der) == "SE5565594230-1177"


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize(
    ("client", "verify_code"),
    [
        ("revoked", 23),  # X509_V_ERR_CERT_REVOKED
        ("expired", 10),  # X509_V_ERR_CERT_HAS_EXPIRED
        ("foreign", 20),  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    ],
)
def test_tls_rejects_bad_clients(
    pki: ExamplePki, client: str, verify_code: int, version: ssl.TLSVersion
) -> None:
    outcome = _handshake(pki, client, "localhost", version)
    assert outcome.server_peer_der is None
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError), outcome.server_error
    assert outcome.server_error.verify_code == verify_code
    assert outcome.client_received is None
    assert isinstance(outcome.client_error, ssl.SSLError)
