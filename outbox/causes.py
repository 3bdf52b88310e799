"""The cause of a failed outbound call, in words an operator can act on.

``requests`` reports every failed TLS handshake as ``SSLError`` and every refused or reset connection as
``ConnectionError``; the cause is several exceptions deep (urllib3's ``MaxRetryError`` wraps OpenSSL's
error). ``call_failure`` finds it and names it: the server's certificate not trusted (unknown CA), expired
or not matching the host name; our client certificate refused by the server (its alert: unknown CA,
revoked, expired, certificate required); no common protocol version; connection refused, reset or timed
out. The text comes from OpenSSL and the socket layer only, never from a payload; it goes into the
outbox's ``last_error``, its attempt log and the CLI's one-line errors.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

__all__ = ["call_failure"]

TLS = "TLS handshake failed"
_REFUSED_OURS = f"{TLS}: the server refused our client certificate"

# X509_V_ERR_* codes for the server's certificate, as our side verified it
_VERIFY = {
    2: "server certificate not trusted (unknown CA)",
    9: "server certificate not yet valid",
    10: "server certificate expired",
    18: "server certificate not trusted (unknown CA)",
    19: "server certificate not trusted (unknown CA)",
    20: "server certificate not trusted (unknown CA)",
    21: "server certificate not trusted (unknown CA)",
    23: "server certificate revoked",
    26: "server certificate not for server authentication (extended key usage)",
    62: "server certificate does not match the host name",
    64: "server certificate does not match the IP address",
}
# alerts the server sent, and OpenSSL's reasons of our own side
_REASONS = {
    "TLSV1_ALERT_UNKNOWN_CA": f"{_REFUSED_OURS} (alert: unknown CA)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": f"{_REFUSED_OURS} (alert: revoked)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": f"{_REFUSED_OURS} (alert: expired)",
    "SSLV3_ALERT_BAD_CERTIFICATE": f"{_REFUSED_OURS} (alert: bad certificate)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": f"{_REFUSED_OURS} (alert: unsupported certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": f"{_REFUSED_OURS} (alert: certificate unknown)",
    "TLSV1_ALERT_ACCESS_DENIED": f"{_REFUSED_OURS} (alert: access denied)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        f"{TLS}: the server requires a client certificate and none was sent (alert: certificate required)"
    ),
    "SSLV3_ALERT_HANDSHAKE_FAILURE": (
        f"{TLS}: the server refused the handshake (alert: handshake failure; no client certificate, "
        "or no cipher in common)"
    ),
    "TLSV1_ALERT_PROTOCOL_VERSION": (
        f"{TLS}: no TLS version in common with the server (alert: protocol version)"
    ),
    "UNSUPPORTED_PROTOCOL": f"{TLS}: the server offers only TLS versions below 1.2",
    "NO_PROTOCOLS_AVAILABLE": f"{TLS}: no TLS version in common with the server",
    "WRONG_VERSION_NUMBER": f"{TLS}: the server does not speak TLS on this port (wrong version number)",
    "TLSV1_ALERT_INTERNAL_ERROR": f"{TLS}: the server reported an internal TLS error",
    "CA_MD_TOO_WEAK": f"{TLS}: a certificate is signed with a digest too weak for this OpenSSL",
    "EE_KEY_TOO_SMALL": f"{TLS}: a certificate's key is too small for this OpenSSL",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, and exceptions carried in args or ``reason``."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested += list(getattr(current, "args", ()))
        stack += [n for n in nested if isinstance(n, BaseException)]


def _tls_cause(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or "certificate verify failed"
        known = _VERIFY.get(exc.verify_code)
        if known:
            return f"{TLS}: {known} (OpenSSL: {message})"
        return f"{TLS}: server certificate refused (OpenSSL: {message})"
    if isinstance(exc, ssl.SSLEOFError):
        return (
            f"{TLS}: the server closed the connection during the handshake "
            "(it may have refused our client certificate without saying why)"
        )
    reason = exc.reason or ""
    if reason in _REASONS:
        return _REASONS[reason]
    if reason:
        return f"{TLS}: {reason.replace('_', ' ').lower()}"
    return f"{TLS}: {exc.__class__.__name__}"


def call_failure(exc: BaseException) -> str | None:
    """The cause of a failed call, or None when nothing in ``exc`` is a TLS, socket or timeout error."""
    found = list(_chain(exc))
    # the most specific first: a verification error before the SSLError around it
    for kind in (ssl.SSLCertVerificationError, ssl.SSLError):
        for item in found:
            if isinstance(item, kind):
                return _tls_cause(item)
    for item in found:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused (nothing listens at that address and port)"
        if isinstance(item, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(item, BrokenPipeError | ConnectionAbortedError):
            return "connection closed by the server"
        if isinstance(item, socket.gaierror):
            return "host name not found"
        if isinstance(item, TimeoutError):
            return "timed out"
    return None
