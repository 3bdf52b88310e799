"""TLS contexts built from configuration: TLS 1.2 or newer, client certificate required, optional CRL.

The server context is cached and rebuilt only when one of its files changes, so a replaced CRL or trust store
takes effect on the next connection without a restart (gunicorn asks for a context per connection). If the
files cannot be loaded any more (a broken or missing CRL, a replaced certificate that does not parse), every
caller is refused by a failed handshake, never by an answer in plain HTTP, and the cause is logged once per
change of the files, not once per connection.

Every failed handshake at the SOAP port is logged at WARNING with the peer's address and its cause (no
client certificate, unknown CA, expired, revoked, the client refused our certificate...); the same cause
again is counted and reported every ``log.repeat_seconds``, not logged each time (``gateway.logs``). A
client that just connects and goes away (a port probe) is not worth a line. After a failed handshake the
server closes its side and reads what the client still sends for a moment (``LINGER_S``; the serving
worker does it in its event loop): closing a socket with unread data resets the connection, and the reset
would destroy the TLS alert that tells the client why it was refused (under TLS 1.3 a client sends its
request before it learns that).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from gateway.config import TlsConfig

__all__ = ["ServerContextFactory", "client_context", "log_refusal", "server_cause", "server_context"]

log = logging.getLogger("gateway.tls")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
#: how long a refused client is given to read the alert and close before the server closes
LINGER_S = 0.5

# OpenSSL's X509_V_ERR_* codes, as reported for a client certificate the server refused
_VERIFY_CAUSES = {
    2: "client certificate from an unknown CA",
    3: "no CRL of the client certificate's CA in tls.crl (unable to get certificate CRL)",
    7: "client certificate signature does not verify",
    8: "tls.crl signature does not verify",
    9: "client certificate not yet valid",
    10: "client certificate expired",
    11: "tls.crl is not yet valid",
    12: "tls.crl has expired (its nextUpdate has passed)",
    18: "client certificate from an unknown CA (self-signed)",
    19: "client certificate from an unknown CA (self-signed CA in its chain)",
    20: "client certificate from an unknown CA",
    21: "client certificate from an unknown CA",
    23: "client certificate revoked",
    26: "client certificate not for client authentication (extended key usage)",
}
# OpenSSL reasons of a failed server-side handshake that are not a verification of the client's certificate
_REASON_CAUSES = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust our server certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused our server certificate (bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client finds our server certificate expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the client finds our server certificate revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the client refused our server certificate (certificate unknown, e.g. a host name mismatch)"
    ),
    "HTTP_REQUEST": "plain HTTP sent to the TLS port",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions below the minimum (tls.minimum_version)",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the client",
    "WRONG_VERSION_NUMBER": "not a TLS handshake (wrong version number)",
    "NO_SHARED_CIPHER": "no cipher in common with the client",
}
# reasons that only say the client went away: a port probe (readiness, load balancer), not worth a warning
_GONE = {"UNEXPECTED_EOF_WHILE_READING", "EOF occurred in violation of protocol"}


def server_cause(exc: BaseException) -> str | None:
    """What a failed server-side handshake says about its cause; None when the client just went away."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        return _VERIFY_CAUSES.get(code, f"client certificate refused: {exc.verify_message}")
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return None
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _GONE or exc.args[:1] == (ssl.SSL_ERROR_EOF,):
            return None
        if reason in _REASON_CAUSES:
            return _REASON_CAUSES[reason]
        return reason.replace("_", " ").lower() if reason else str(exc)
    return None  # a reset or broken connection: the client went away


def log_refusal(peer: str, cause: str) -> None:
    """A refused handshake at WARNING; the same cause again is counted (``gateway.logs.RepeatFilter``)."""
    log.warning(
        "TLS handshake refused: %s",
        cause,
        extra={"fields": {"peer": peer, "cause": cause}, "repeat": f"tls-handshake {cause}"},
    )


class _ServerSocket(ssl.SSLSocket):
    """An SSLSocket that reports its failed handshake (and, when blocking, lets the client read the alert
    before the connection closes; the serving worker does that in its event loop)."""

    #: set on the contexts that refuse everyone because the configured material cannot be loaded
    refusal: str | None = None
    #: log refused handshakes (``gateway receive`` reports them in its own words)
    report = True

    def do_handshake(self, block: bool = False) -> None:
        peer = self._peer()  # before: a client that refused us may be gone by the time we know
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except OSError as exc:
            cause = server_cause(exc)
            if cause is not None:
                if self.refusal is not None:
                    cause = f"refused while the TLS material is unusable: {self.refusal}"
                if self.report:
                    log_refusal(peer, cause)
                if self.gettimeout() != 0.0:
                    self._linger()
            raise

    def _peer(self) -> str:
        try:
            return str(self.getpeername()[0])
        except (OSError, IndexError):
            return "unknown"

    def _linger(self) -> None:
        # Underneath the TLS layer: the handshake failed, the alert is already written.
        try:
            socket.socket.shutdown(self, socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                self.settimeout(left)
                if not socket.socket.recv(self, 65536):
                    break
        except OSError:
            pass


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


def _refusing_context(tls: TlsConfig) -> tuple[ssl.SSLContext, str]:
    """A context that fails every handshake with an alert, and what in the files made it necessary."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.minimum_version]
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.private_key))
    except (ssl.SSLError, OSError) as exc:
        # no certificate: the handshake fails at its start (handshake failure alert)
        return ctx, f"tls.certificate/tls.private_key cannot be loaded: {_reason(exc)}"
    try:
        ctx.load_verify_locations(cafile=str(tls.trust_store))
    except (ssl.SSLError, OSError) as exc:
        problem = f"tls.trust_store {tls.trust_store} cannot be loaded: {_reason(exc)}"
        return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), problem
    # CRL checking without a CRL: every client certificate fails its revocation check (fail closed)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    try:
        if tls.crl is not None:
            ctx.load_verify_locations(cafile=str(tls.crl))
    except (ssl.SSLError, OSError) as exc:
        return ctx, f"tls.crl {tls.crl} cannot be loaded: {_reason(exc)}"
    return ctx, "the TLS files changed while they were read"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return exc.__class__.__name__


class ServerContextFactory:
    """The current server context, rebuilt when a certificate, key, trust store or CRL file changes."""

    def __init__(self, tls: TlsConfig, *, report: bool = True) -> None:
        """``report``: log each refused handshake (off for tools that say it themselves)."""
        self._tls = tls
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._ctx: ssl.SSLContext | None = None
        self._refusing = False
        self._socket: type[_ServerSocket] = (
            _ServerSocket if report else type("QuietServerSocket", (_ServerSocket,), {"report": False})
        )

    def _files(self) -> list[Path]:
        files = [self._tls.certificate, self._tls.private_key, self._tls.trust_store]
        return files + ([self._tls.crl] if self._tls.crl is not None else [])

    def _stamp_now(self) -> tuple[Any, ...]:
        stamp: list[Any] = []
        for path in self._files():
            try:
                stat = path.stat()
                stamp.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
            except OSError as exc:  # a missing file is a state of its own, reported by the build
                stamp.append(exc.errno)
        return tuple(stamp)

    def _build(self) -> ssl.SSLContext:
        try:
            ctx = server_context(self._tls)
        except (ssl.SSLError, OSError, ValueError):
            ctx, problem = _refusing_context(self._tls)
            ctx.sslsocket_class = type("RefusingServerSocket", (self._socket,), {"refusal": problem})
            log.error(
                "TLS material unusable: %s: every connection is refused until it is fixed",
                problem,
                extra={"fields": {"problem": problem}},
            )
            self._refusing = True
            return ctx
        if self._refusing:
            log.info("TLS material usable again: connections are accepted")
            self._refusing = False
        ctx.sslsocket_class = self._socket
        return ctx

    def __call__(self) -> ssl.SSLContext:
        stamp = self._stamp_now()
        with self._lock:
            if self._ctx is None or stamp != self._stamp:
                self._ctx = self._build()
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
