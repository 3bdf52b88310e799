"""TLS contexts built from configuration: TLS 1.2 or newer, client certificate required, optional CRL.

The server context is cached and rebuilt only when one of its files changes, so a replaced CRL or trust store
takes effect on the next connection without a restart (gunicorn asks for a context per connection).
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

from gateway.config import TlsConfig

__all__ = ["ServerContextFactory", "client_context", "server_context"]

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.minimum_version]
    ctx.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.private_key))
    ctx.load_verify_locations(cafile=str(tls.trust_store))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.crl is not None:
        ctx.load_verify_locations(cafile=str(tls.crl))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


class ServerContextFactory:
    """The current server context, rebuilt when a certificate, key, trust store or CRL file changes."""

    def __init__(self, tls: TlsConfig) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._stamp: tuple[float, ...] | None = None
        self._ctx: ssl.SSLContext | None = None

    def _files(self) -> list[Path]:
        files = [self._tls.certificate, self._tls.private_key, self._tls.trust_store]
        return files + ([self._tls.crl] if self._tls.crl is not None else [])

    def __call__(self) -> ssl.SSLContext:
        stamp = tuple(p.stat().st_mtime_ns for p in self._files())
        with self._lock:
            if self._ctx is None or stamp != self._stamp:
                self._ctx = server_context(self._tls)
                self._stamp = stamp
            return self._ctx


def client_context(
    trust_store: Path,
    certificate: Path | None = None,
    private_key: Path | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(trust_store))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if certificate is not None:
        ctx.load_cert_chain(certfile=str(certificate), keyfile=str(private_key) if private_key else None)
    return ctx
