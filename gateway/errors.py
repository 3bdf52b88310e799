"""The gateway's exception tree. Every error knows how it looks on the wire and on the command line.

    GatewayError                      root; never escapes as a foreign exception (exit code 1)
    ├── ConfigError                   invalid configuration or command line (exit code 2)
    ├── NothingMatchedError           the command's target does not exist or matched nothing (exit code 3)
    ├── DatabaseError                 database unreachable, or its schema is not current (exit code 4)
    ├── ListenError                   a port cannot be bound (in use, no permission) (exit code 5)
    ├── TlsMaterialError              a certificate, key, trust store or CRL is unusable (exit code 6)
    ├── SoapFault                     answered as a SOAP 1.1 Fault with HTTP 500
    │   ├── ClientFault               soap:Client, the caller must fix something
    │   │   ├── IdentityError         VP002 certificate or caller identity
    │   │   ├── MissingAddressError   VP003 no usable LogicalAddress header
    │   │   ├── NoRouteError          VP004 no route for (contract, logical address)
    │   │   ├── AmbiguousRouteError   VP006 more than one route
    │   │   ├── NotAuthorisedError    VP007 consumer may not call this contract at this address
    │   │   └── InvalidRequestError   VP015 unreadable or invalid request (XML, SOAP, schema)
    │   │       ├── VersionMismatchError   not a SOAP 1.1 envelope (faultcode VersionMismatch)
    │   │       └── MustUnderstandError    unknown mustUnderstand header (faultcode MustUnderstand)
    │   └── ServerFault               soap:Server, the gateway's own trouble (VP009 / internal)
    │       └── DatabaseBusyError     VP009 no database write lock within database.lock_timeout_ms
    ├── ClientError                   a CLI client call failed (exit code 1)
    └── DeskError                     the case desk refused (gateway/desk/errors.py): Forbidden (exit 7),
                                      CaseNotFound / NoSuchGrant (3), Conflict (8), Refused (1)

Exit codes of the ``gateway`` command (docs/errors.md lists them for operators): 0 success, 1 the operation
failed, 2 usage or configuration, 3 nothing matched, 4 database, 5 cannot listen, 6 TLS material,
7 not permitted (the desk: the person has no role for that case or unit), 8 the case changed since the
version given (the desk's optimistic lock: read it again), 130 interrupted, 141 the reader of the output
went away (a closed pipe).

Faults carry their platform code (the national platform's VP00x codes, which operators recognise), the
log id they were reported with, and whether a retry can succeed. They never carry a stack trace or payload
text onto the wire.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRouteError",
    "ClientError",
    "ClientFault",
    "ConfigError",
    "DatabaseBusyError",
    "DatabaseError",
    "GatewayError",
    "IdentityError",
    "InvalidRequestError",
    "ListenError",
    "MissingAddressError",
    "MustUnderstandError",
    "NoRouteError",
    "NotAuthorisedError",
    "NothingMatchedError",
    "ServerFault",
    "SoapFault",
    "TlsMaterialError",
    "VersionMismatchError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    exit_code: int = 1


class ConfigError(GatewayError):
    """The configuration cannot be used; the message is one line naming the key."""

    exit_code = 2


class NothingMatchedError(GatewayError):
    """The message, case, version or entry a command names does not exist, or its filter matched nothing."""

    exit_code = 3


class DatabaseError(GatewayError):
    """The database cannot be reached, or its schema is older than this version (``gateway db upgrade``)."""

    exit_code = 4


class ListenError(GatewayError):
    """A listening socket cannot be opened: the port is in use, or binding it is not permitted."""

    exit_code = 5


class TlsMaterialError(GatewayError):
    """A configured certificate, key, trust store or CRL cannot be used (unreadable, mismatched, expired)."""

    exit_code = 6


class ClientError(GatewayError):
    """A call made by the CLI clients failed (transport, TLS, or a fault answered by the server)."""


class SoapFault(GatewayError):
    """An error answered as a SOAP 1.1 Fault."""

    faultcode: str = "Server"
    platform_code: str = "VP009"
    retryable: bool = False
    http_status: int = 500

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra, non-sensitive information for the fault detail (e.g. a routing trace).
        self.detail = detail


class ClientFault(SoapFault):
    faultcode = "Client"
    platform_code = "VP015"


class IdentityError(ClientFault):
    platform_code = "VP002"


class MissingAddressError(ClientFault):
    platform_code = "VP003"


class NoRouteError(ClientFault):
    platform_code = "VP004"


class AmbiguousRouteError(ClientFault):
    platform_code = "VP006"


class NotAuthorisedError(ClientFault):
    platform_code = "VP007"


class InvalidRequestError(ClientFault):
    platform_code = "VP015"


class ServerFault(SoapFault):
    faultcode = "Server"
    platform_code = "VP009"
    retryable = True


class DatabaseBusyError(ServerFault):
    """A write lock of the database was not free within the configured bound; nothing was stored."""


class VersionMismatchError(InvalidRequestError):
    """The envelope is not SOAP 1.1 (SOAP 1.1 section 4.4.1 names this fault code)."""

    faultcode = "VersionMismatch"


class MustUnderstandError(InvalidRequestError):
    """A header block marked mustUnderstand="1" that this gateway does not process."""

    faultcode = "MustUnderstand"
