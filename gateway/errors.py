"""The gateway's exception tree. Every error knows how it looks on the wire and on the command line.

    GatewayError                      root; never escapes as a foreign exception
    ├── ConfigError                   invalid configuration (exit code 2)
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
    └── ClientError                   a CLI client call failed (exit code 1)

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
    "GatewayError",
    "IdentityError",
    "InvalidRequestError",
    "MissingAddressError",
    "MustUnderstandError",
    "NoRouteError",
    "NotAuthorisedError",
    "ServerFault",
    "SoapFault",
    "VersionMismatchError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    exit_code: int = 1


class ConfigError(GatewayError):
    """The configuration cannot be used; the message is one line naming the key."""

    exit_code = 2


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


class VersionMismatchError(InvalidRequestError):
    """The envelope is not SOAP 1.1 (SOAP 1.1 section 4.4.1 names this fault code)."""

    faultcode = "VersionMismatch"


class MustUnderstandError(InvalidRequestError):
    """A header block marked mustUnderstand="1" that this gateway does not process."""

    faultcode = "MustUnderstand"
