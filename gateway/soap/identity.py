"""Who is calling: the HSA-id in the client certificate's subject ``serialNumber`` (OID 2.5.4.5).

Directly, the certificate is the one gunicorn verified in the TLS handshake. Behind a TLS-terminating proxy
(trusted-proxy mode) it arrives PEM-encoded in a configured header, which is believed only when the
connection comes from a configured network, and is then verified here against the same trust store, validity
period and CRL. ``x-rivta-original-serviceconsumer-hsaid`` is recorded by callers of this module but never
used to decide access.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.config import ProxyConfig, TlsConfig
from gateway.errors import IdentityError

__all__ = ["CallerIdentity", "hsa_id_from_certificate"]


@functools.lru_cache(maxsize=1024)
def _hsa_id_from_der(der: bytes) -> str | None:
    cert = x509.load_der_x509_certificate(der)
    return _serial_number(cert)


def _serial_number(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1:
        return None
    value = values[0].value
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text if text and text == text.strip() else None


def hsa_id_from_certificate(data: bytes) -> str | None:
    """The subject serialNumber of a DER or PEM certificate, or None if it has none."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return _serial_number(x509.load_pem_x509_certificate(data))
    return _hsa_id_from_der(data)


class _ForwardedCertificateVerifier:
    """Verifies certificates forwarded by a trusted proxy against our own trust store and CRL."""

    def __init__(self, tls: TlsConfig) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._stamp: tuple[float, float] | None = None
        self._store: Store | None = None
        self._crl: x509.CertificateRevocationList | None = None

    @staticmethod
    def _mtime(path: Path | None) -> float:
        return path.stat().st_mtime if path is not None and path.exists() else 0.0

    def _load(self) -> tuple[Store, x509.CertificateRevocationList | None]:
        stamp = (self._mtime(self._tls.trust_store), self._mtime(self._tls.crl))
        with self._lock:
            if self._store is None or stamp != self._stamp:
                self._store = Store(x509.load_pem_x509_certificates(self._tls.trust_store.read_bytes()))
                self._crl = (
                    x509.load_pem_x509_crl(self._tls.crl.read_bytes()) if self._tls.crl is not None else None
                )
                self._stamp = stamp
            return self._store, self._crl

    def verify(self, cert: x509.Certificate) -> None:
        store, crl = self._load()
        verifier = PolicyBuilder().store(store).time(datetime.now(UTC)).build_client_verifier()
        try:
            verifier.verify(cert, [])
        except VerificationError as exc:
            raise IdentityError("Forwarded client certificate is not trusted") from exc
        if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise IdentityError("Forwarded client certificate is revoked")


class CallerIdentity:
    def __init__(self, tls: TlsConfig, proxy: ProxyConfig) -> None:
        self._proxy = proxy
        self._networks = [ipaddress.ip_network(c, strict=False) for c in proxy.trusted_cidrs]
        self._environ_key = "HTTP_" + proxy.header.upper().replace("-", "_")
        self._verifier = _ForwardedCertificateVerifier(tls) if proxy.enabled else None

    def _from_trusted_proxy(self, remote: str) -> bool:
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def caller(self, environ: Mapping[str, Any]) -> str:
        """The caller's HSA-id; raises IdentityError (VP002) when it cannot be established."""
        forwarded = environ.get(self._environ_key)
        if forwarded is not None:
            if not self._proxy.enabled or self._verifier is None:
                raise IdentityError(f"Header {self._proxy.header} is not accepted: trusted-proxy mode is off")
            if not self._from_trusted_proxy(str(environ.get("REMOTE_ADDR", ""))):
                raise IdentityError(f"Header {self._proxy.header} is not accepted from this address")
            pem = unquote(forwarded) if "%" in forwarded else forwarded
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                raise IdentityError("Forwarded client certificate is not a PEM certificate") from None
            self._verifier.verify(cert)
            hsa_id = _serial_number(cert)
        else:
            sock = environ.get("gunicorn.socket")
            getpeercert = getattr(sock, "getpeercert", None)
            der = getpeercert(binary_form=True) if getpeercert is not None else None
            if not der:
                raise IdentityError("No client certificate")
            hsa_id = _hsa_id_from_der(der)
        if not hsa_id:
            raise IdentityError("Client certificate has no serialNumber (HSA-id) in its subject")
        return hsa_id
