"""A SOAP receiver that plays a deviation system or 1177's case service (``gateway receive``).

For demos and fault drills, never production: it stores nothing and answers every valid request OK. What
arrives passes the gateway's own checks (content type, secure parse, SOAP 1.1 envelope and LogicalAddress,
dispatch on the Body element, SOAPAction, the contract's XSD), over mutual TLS with the client certificate
required and chained to the trust store (and the CRL, if one is configured). An invalid request is
answered with a SOAP fault; a share of valid ones can be failed on purpose (HTTP 503 or 500, seeded) or
delayed, to watch the outbox retry.

``ReceiverCore`` judges one request and makes its answer and its ``Arrival`` (the one line printed for it);
``serve_receivers`` runs one threaded HTTPS listener per port around it. An arrival names identifiers only:
never a personal identity number, a name, free text or a payload. A value from the request is shown only
once it has passed its format check, otherwise as a short hash.
"""

from __future__ import annotations

import binascii
import random
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contracts import ping, registercase, updatecase
from contracts.model import Result
from contracts.registry import ContractRegistry
from contracts.validation import SchemaValidator
from gateway.errors import (
    IdentityError,
    InvalidRequestError,
    ListenError,
    ServerFault,
    SoapFault,
    VersionMismatchError,
)
from gateway.redact import safe_hsa_id, safe_id
from gateway.soap.envelope import fault_envelope, parse_envelope, parse_xml, response_envelope
from gateway.soap.identity import hsa_id_from_certificate

__all__ = ["Answer", "Arrival", "Listener", "ReceiverCore", "serve_receivers"]

_XML = "text/xml; charset=utf-8"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HANDSHAKE_SECONDS = 10.0
_IDLE_SECONDS = 75.0
#: an oversize body up to this size is read and thrown away, so its caller gets the fault
_DISCARD_BYTES = 1 << 30


@dataclass(frozen=True)
class Arrival:
    """What one request was and how it was answered: identifiers, counts and outcomes only."""

    time: str
    endpoint: str
    port: int
    caller: str | None
    status: int
    answer: str  # OK | fault | HTTP 503 | HTTP 500
    log_id: str
    operation: str | None = None
    case_id: str | None = None
    message_id: str | None = None
    update_type: str | None = None
    logical_address: str | None = None
    attachments: int = 0
    attachment_bytes: int = 0
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        names = {
            "log_id": "logId",
            "case_id": "caseId",
            "message_id": "messageId",
            "update_type": "updateType",
            "logical_address": "logicalAddress",
            "attachment_bytes": "attachmentBytes",
        }
        return {names.get(k, k): v for k, v in asdict(self).items()}

    def line(self) -> str:
        head = f"{self.time} {self.endpoint}"
        who = f"from {self.caller or 'unknown caller'}"
        if self.answer == "fault":
            what = f" {self.operation}" if self.operation else ""
            return f"{head} refused{what} {who}: {self.reason} (logId {self.log_id})"
        parts = [head, self.operation or "?"]
        if self.case_id is not None:
            parts.append(f"case {self.case_id}")
        if self.message_id is not None:
            parts.append(f"message {self.message_id}")
        if self.update_type is not None:
            parts.append(self.update_type)
        parts.append(f"to {self.logical_address} {who},")
        noun = "attachment" if self.attachments == 1 else "attachments"
        parts.append(f"{self.attachments} {noun} ({self.attachment_bytes} bytes):")
        parts.append(self.answer + (f" ({self.reason})" if self.reason else ""))
        parts.append(f"logId {self.log_id}")
        return " ".join(parts)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    arrival: Arrival


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class ReceiverCore:
    """Judges one request and answers it as a producer of the contract would (no I/O, no state)."""

    def __init__(
        self,
        registry: ContractRegistry,
        *,
        max_body_bytes: int,
        max_depth: int,
        validator: SchemaValidator | None = None,
        fail_rate: float = 0.0,
        fail_statuses: tuple[int, ...] = (503, 500),
        seed: int = 0,
        delay_ms: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], str] = _now,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.validator = validator or SchemaValidator()
        self.fail_rate = fail_rate
        self.fail_statuses = fail_statuses
        self.delay_ms = delay_ms
        self._sleep = sleep
        self._clock = clock
        # one generator for every thread, so a seed gives the same sequence of failures in arrival order
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _failure(self) -> int | None:
        if not self.fail_rate:
            return None
        with self._rng_lock:
            if self._rng.random() >= self.fail_rate:
                return None
            return self._rng.choice(self.fail_statuses)

    def refuse(
        self, fault: SoapFault, *, endpoint: str, port: int, caller: str | None, **known: Any
    ) -> Answer:
        """The SOAP fault for ``fault``, and its arrival."""
        log_id = str(uuid.uuid4())
        reason = f"{fault.platform_code} {fault.message}"
        arrival = Arrival(self._clock(), endpoint, port, caller, 500, "fault", log_id, reason=reason, **known)
        return Answer(500, (("Content-Type", _XML),), fault_envelope(fault, log_id), arrival)

    def handle(
        self,
        body: bytes,
        *,
        endpoint: str,
        port: int,
        caller: str | None,
        content_type: str | None,
        soap_action: str | None,
    ) -> Answer:
        known: dict[str, Any] = {}
        try:
            if caller is None:
                raise IdentityError("Client certificate has no serialNumber (HSA-id) in its subject")
            if len(body) > self.max_body_bytes:
                raise InvalidRequestError(f"Request body exceeds the limit of {self.max_body_bytes} bytes")
            _check_content_type(content_type)
            envelope = parse_envelope(parse_xml(body, max_depth=self.max_depth))
            known["logical_address"] = safe_hsa_id(envelope.logical_address)
            contract = self.registry.get(envelope.payload.tag)
            if contract is None or contract.operation not in _READERS:
                raise InvalidRequestError("The Body element is not a request this receiver answers")
            known["operation"] = contract.operation
            _check_soap_action(soap_action, contract.soap_action)
            errors = self.validator.errors(contract, envelope.payload)
            if errors:
                shown = "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
                raise InvalidRequestError(f"Request does not validate against {contract.operation}: {shown}")
            facts = _READERS[contract.operation](envelope.payload)
        except SoapFault as fault:
            return self.refuse(fault, endpoint=endpoint, port=port, caller=caller, **known)
        except Exception:  # noqa: BLE001 - the caller gets a fault, never a dropped connection or a traceback
            internal = ServerFault("Internal error in the receiver")
            return self.refuse(internal, endpoint=endpoint, port=port, caller=caller, **known)
        known.update(facts)
        log_id = str(uuid.uuid4())
        failed = self._failure()
        if self.delay_ms:
            self._sleep(self.delay_ms / 1000)
        if failed is not None:
            arrival = Arrival(
                self._clock(),
                endpoint,
                port,
                caller,
                failed,
                f"HTTP {failed}",
                log_id,
                **known,
                reason="--fail-rate",
            )
            if failed == 503:
                return Answer(503, (("Content-Type", "text/plain"), ("Retry-After", "1")), b"busy\n", arrival)
            return Answer(
                failed, (("Content-Type", "text/plain"),), b"internal error (--fail-rate)\n", arrival
            )
        response = response_envelope(_RESPONSES[contract.operation](log_id))
        arrival = Arrival(self._clock(), endpoint, port, caller, 200, "OK", log_id, **known)
        return Answer(200, (("Content-Type", _XML),), response, arrival)


def _check_content_type(value: str | None) -> None:
    media = (value or "").split(";")[0].strip().lower()
    if media == "application/soap+xml":
        raise VersionMismatchError("SOAP 1.2 (application/soap+xml) is not supported; RIV-TA uses SOAP 1.1")
    if media != "text/xml":
        raise InvalidRequestError("Content-Type must be text/xml (SOAP 1.1)")


def _check_soap_action(raw: str | None, expected: str) -> None:
    if raw is None:
        return
    action = raw.strip()
    if len(action) >= 2 and action[0] == action[-1] == '"':
        action = action[1:-1]
    if action and action != expected:
        raise InvalidRequestError(f"SOAPAction contradicts the Body element (expected {expected!r})")


def _attachments(items: tuple[Any, ...]) -> dict[str, int]:
    size = 0
    for index, attachment in enumerate(items, start=1):
        # libxml2 skips characters outside the base64 alphabet when it checks xs:base64Binary
        try:
            text = "".join((attachment.data_element.text or "").split())
            size += len(binascii.a2b_base64(text, strict_mode=True))
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f"attachment {index}: data is not valid base64") from None
    return {"attachments": len(items), "attachment_bytes": size}


def _register_facts(payload: Any) -> dict[str, Any]:
    request = registercase.parse(payload)
    return {"case_id": safe_id(request.case_id), **_attachments(request.attachments)}


def _update_facts(payload: Any) -> dict[str, Any]:
    request = updatecase.parse(payload)
    return {
        "case_id": safe_id(request.case_id),
        "message_id": request.message_id if _UUID.match(request.message_id) else None,
        "update_type": request.update_type,  # an enumeration value, checked by the schema
        **_attachments(request.attachments),
    }


_READERS: Mapping[str, Callable[[Any], dict[str, Any]]] = {
    "RegisterCase": _register_facts,
    "UpdateCase": _update_facts,
    "PingForConfiguration": lambda _payload: {},
}
_RESPONSES: Mapping[str, Callable[[str], Any]] = {
    "RegisterCase": lambda log_id: registercase.build_response(Result.ok(log_id)),
    "UpdateCase": lambda log_id: updatecase.build_response(Result.ok(log_id)),
    "PingForConfiguration": lambda log_id: ping.build_response(
        "gateway receive", datetime.now().strftime("%Y%m%d%H%M%S"), [("logId", log_id)]
    ),
}


# -- the HTTPS listeners ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listener:
    """One port to listen on, and the catalogue endpoint names it plays (by URL path, "" for any path)."""

    port: int
    names: Mapping[str, str]
    host: str = "127.0.0.1"

    def name_for(self, path: str) -> str:
        """The endpoint whose URL path this is; on another path the port's only endpoint (callers route on
        the Body, not the path), else the port."""
        found = self.names.get(path.split("?", 1)[0].rstrip("/"))
        if found is None and len(set(self.names.values())) == 1:
            found = next(iter(self.names.values()))
        return found or f"port {self.port}"

    @property
    def label(self) -> str:
        return ", ".join(sorted(set(self.names.values()))) or f"port {self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # every request is reported as one arrival line instead

    def handle(self) -> None:
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        try:
            conn.settimeout(_HANDSHAKE_SECONDS)
            conn.do_handshake()
            conn.settimeout(_IDLE_SECONDS)
        except ssl.SSLError as exc:
            why = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
            self.server.note(f"TLS handshake on {self.server.listener.label} refused: {why}")
            return
        except OSError:
            return  # the caller went away (or sent nothing) before the handshake ended
        super().handle()

    def _send(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def do_GET(self) -> None:
        self._send(405, (("Content-Type", "text/plain"), ("Allow", "POST")), b"POST a SOAP 1.1 envelope\n")

    def do_POST(self) -> None:
        core = self.server.core
        endpoint = self.server.listener.name_for(self.path)
        port = self.server.listener.port
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        der = conn.getpeercert(binary_form=True)
        caller = safe_hsa_id(hsa_id_from_certificate(der)) if der else None
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > core.max_body_bytes:
            if length is not None and length.isdigit() and int(length) <= _DISCARD_BYTES:
                self._discard(int(length))  # so the caller reads the fault instead of a reset connection
            else:
                self.close_connection = True  # the body is not read: the connection cannot be reused
            problem = (
                "Content-Length is required"
                if length is None or not length.isdigit()
                else f"Request body of {length} bytes exceeds the limit of {core.max_body_bytes}"
            )
            answer = core.refuse(InvalidRequestError(problem), endpoint=endpoint, port=port, caller=caller)
        else:
            body = self.rfile.read(int(length))
            answer = core.handle(
                body,
                endpoint=endpoint,
                port=port,
                caller=caller,
                content_type=self.headers.get("Content-Type"),
                soap_action=self.headers.get("SOAPAction"),
            )
        self.server.report(answer.arrival)
        self._send(answer.status, answer.headers, answer.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # on Linux this still refuses a port another socket listens on

    def __init__(
        self,
        listener: Listener,
        core: ReceiverCore,
        context: Callable[[], ssl.SSLContext],
        report: Callable[[Arrival], None],
        note: Callable[[str], None],
    ) -> None:
        self.listener = listener
        self.core = core
        self.context = context
        self.report = report
        self.note = note
        super().__init__((listener.host, listener.port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # the handshake runs in the connection's own thread (see _Handler.handle), never in the accept loop
        return self.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # one line, never a traceback (it could quote request data)
        kind = sys.exc_info()[0]
        self.note(f"connection on {self.listener.label} ended: {kind.__name__ if kind else 'error'}")


def serve_receivers(
    listeners: list[Listener],
    core: ReceiverCore,
    context: Callable[[], ssl.SSLContext],
    report: Callable[[Arrival], None],
    note: Callable[[str], None],
    stop: threading.Event,
    ready: Callable[[list[Listener]], None] | None = None,
) -> None:
    """Listen on every port of ``listeners`` until ``stop`` is set; ListenError when one cannot be bound.

    ``context`` gives the TLS context for each new connection (a changed CRL applies without a restart).
    """
    servers: list[_Server] = []
    threads: list[threading.Thread] = []
    try:
        for listener in listeners:
            try:
                servers.append(_Server(listener, core, context, report, note))
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                raise ListenError(
                    f"cannot listen on {listener.host}:{listener.port} for {listener.label}: {why.lower()}; "
                    "stop what holds the port, or choose others with --endpoint or --port"
                ) from None
        for server in servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"receive:{server.listener.port}",
            )
            thread.start()
            threads.append(thread)
        if ready is not None:
            ready(listeners)
        stop.wait()
    finally:
        for server, _thread in zip(servers, threads, strict=False):
            server.shutdown()
        for server in servers:
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
