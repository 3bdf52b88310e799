"""The outbound SOAP client: posts a stored payload to an endpoint over mutual TLS and classifies the answer.

One ``requests.Session`` per endpoint TLS configuration, kept alive between calls, with ``trust_env = False``
(environment CA bundles and proxies must not change whom we trust) and explicit connect and read timeouts.
The payload bytes are sent exactly as validated and stored; only the envelope around them is built here.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import requests
from lxml import etree
from requests.adapters import HTTPAdapter

from outbox.causes import call_failure
from outbox.policy import Delivery, Kind
from outbox.store import Claimed

__all__ = ["ClientIdentity", "EndpointSpec", "SoapTransport", "classify"]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
IDEMPOTENCY_HEADER = "x-caf-idempotency-key"


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    url: str
    connect_timeout: float = 2.0
    read_timeout: float = 29.0
    client_certificate: str | None = None
    client_key: str | None = None
    trust_store: str | None = None
    verify_hostname: bool = True


@dataclass(frozen=True)
class ClientIdentity:
    """The gateway's own outbound identity, used where an endpoint names none."""

    certificate: Path | None = None
    private_key: Path | None = None
    trust_store: Path | None = None


class _ContextAdapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext, verify_hostname: bool) -> None:
        self._context = context
        self._verify_hostname = verify_hostname
        super().__init__(pool_connections=4, pool_maxsize=32, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        if not self._verify_hostname:
            kwargs["assert_hostname"] = False
        super().init_poolmanager(*args, **kwargs)


def _parse_retry_after(value: str | None) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int((when.timestamp() - time.time()) * 1000))


_parser = threading.local()


def _secure_parse(body: bytes) -> etree._Element | None:
    parser = getattr(_parser, "p", None)
    if parser is None:
        parser = _parser.p = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None


def classify(status: int, body: bytes, retry_after: str | None = None) -> Delivery:
    """Success, transient or permanent, from an HTTP status and a SOAP body."""
    root = _secure_parse(body) if body else None
    fault_code = None
    result_code = error_code = None
    if root is not None:
        fault = root.find(f".//{{{SOAP_NS}}}Fault")
        if fault is not None:
            fault_code = (fault.findtext("faultcode") or "").split(":")[-1]
        result_code = root.findtext(".//{*}result/{*}resultCode")
        error_code = root.findtext(".//{*}result/{*}errorCode")
    if fault_code:
        kind = Kind.PERMANENT if fault_code == "Client" else Kind.TRANSIENT
        return Delivery(kind, f"SOAP fault {fault_code} (HTTP {status})", status)
    if 200 <= status < 300:
        if result_code in ("OK", "INFO"):
            return Delivery(Kind.SUCCESS, f"{result_code} (HTTP {status})", status)
        if result_code == "ERROR":
            return Delivery(Kind.PERMANENT, f"receiver answered ERROR/{error_code or '?'}", status)
        return Delivery(Kind.TRANSIENT, f"HTTP {status} without a valid response", status)
    if status in (429, 503):
        return Delivery(Kind.TRANSIENT, f"HTTP {status}", status, _parse_retry_after(retry_after))
    if status >= 500:
        return Delivery(Kind.TRANSIENT, f"HTTP {status}", status)
    return Delivery(Kind.PERMANENT, f"HTTP {status}", status)


def _os_error(exc: OSError) -> str:
    name = f": {exc.filename}" if exc.filename else ""
    return f"{(exc.strerror or type(exc).__name__).lower()}{name}"


def _tls_reason(exc: ssl.SSLError) -> str:
    return (exc.reason or type(exc).__name__).replace("_", " ").lower()


def envelope(logical_address: str, payload: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
        b'<LogicalAddress xmlns="urn:riv:itintegration:registry:1">'
        + escape(logical_address).encode()
        + b"</LogicalAddress></soap:Header><soap:Body>"
        + payload
        + b"</soap:Body></soap:Envelope>"
    )


class SoapTransport:
    def __init__(self, identity: ClientIdentity, soap_actions: Mapping[str, str]) -> None:
        self.identity = identity
        self.soap_actions = dict(soap_actions)
        self._sessions: dict[tuple[Any, ...], requests.Session] = {}
        self._lock = threading.Lock()

    def _session(self, endpoint: EndpointSpec) -> requests.Session:
        cert = endpoint.client_certificate or (
            str(self.identity.certificate) if self.identity.certificate else None
        )
        key = endpoint.client_key or (str(self.identity.private_key) if self.identity.private_key else None)
        trust = endpoint.trust_store or (
            str(self.identity.trust_store) if self.identity.trust_store else None
        )
        config = (cert, key, trust, endpoint.verify_hostname)
        with self._lock:
            session = self._sessions.get(config)
            if session is None:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=trust)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.check_hostname = endpoint.verify_hostname
                if cert:
                    context.load_cert_chain(cert, key)
                session = requests.Session()
                session.trust_env = False
                session.verify = trust or True
                adapter = _ContextAdapter(context, endpoint.verify_hostname)
                session.mount("https://", adapter)
                session.mount("http://", HTTPAdapter(max_retries=0))
                self._sessions[config] = session
            return session

    def deliver(self, endpoint: EndpointSpec, message: Claimed) -> Delivery:
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{self.soap_actions.get(message.operation, "")}"',
            "x-skltp-correlation-id": message.correlation_id,
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        if message.original_consumer:
            headers["x-rivta-original-serviceconsumer-hsaid"] = message.original_consumer
        try:
            session = self._session(endpoint)
        except (ssl.SSLError, OSError) as exc:  # our own certificate, key or trust store
            cause = _tls_reason(exc) if isinstance(exc, ssl.SSLError) else _os_error(exc)
            return Delivery(Kind.TRANSIENT, f"our TLS files cannot be loaded: {cause}")
        try:
            response = session.post(
                endpoint.url,
                data=envelope(message.logical_address, message.payload),
                headers=headers,
                timeout=(endpoint.connect_timeout, endpoint.read_timeout),
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout:
            return Delivery(Kind.TRANSIENT, "connect timeout")
        except requests.exceptions.ReadTimeout:
            return Delivery(Kind.TRANSIENT, "read timeout after sending (may have arrived)")
        except requests.exceptions.ConnectionError as exc:  # SSLError included
            cause = call_failure(exc) or f"connection failed: {type(exc).__name__}"
            return Delivery(Kind.TRANSIENT, cause)
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            return Delivery(Kind.TRANSIENT, f"call failed: {type(exc).__name__}")
        return classify(response.status_code, response.content, response.headers.get("Retry-After"))

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
