"""The SOAP WSGI application: identity → content type → size limits and secure parse (``reader``) → envelope →
contract → validation → handler, answering a response or a SOAP 1.1 Fault with a log id.

It also serves the contract files at ``?wsdl`` and ``?xsd=`` on each contract's path, with ``soap:address``
set to the configured public URL and schema imports rewritten to relative ``?xsd=`` links. A request that
fails any check is never stored. No exception from lxml, the database or a handler reaches the wire.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from lxml import etree

from contracts.registry import XS_NS, ContractRegistry
from contracts.validation import SchemaValidator
from gateway.config import Config
from gateway.errors import InvalidRequestError, ServerFault, SoapFault, VersionMismatchError
from gateway.redact import pseudonym, safe_hsa_id, safe_id
from gateway.soap.envelope import fault_envelope, parse_envelope, response_envelope
from gateway.soap.handlers import Handlers, RequestContext
from gateway.soap.identity import CallerIdentity
from gateway.soap.limits import Admission, BodyLimits, LargeRequestSlots
from gateway.soap.reader import RequestReader

__all__ = ["SoapApp"]

log = logging.getLogger("gateway.soap")
StartResponse = Callable[..., Any]
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
_XML = "text/xml; charset=utf-8"


class ContractDocuments:
    """The WSDL of each contract and every schema it reaches, rewritten for serving."""

    def __init__(self, registry: ContractRegistry, public_url: str) -> None:
        self.root = registry.root
        self.wsdl: dict[str, bytes] = {}
        self.xsd: dict[str, bytes] = {}
        base = public_url.rstrip("/")
        for contract in registry.contracts():
            tree = etree.parse(str(contract.wsdl_file), _file_parser())
            for address in tree.getroot().iterfind(f".//{{{_SOAP_BINDING_NS}}}address"):
                address.set("location", base + contract.url_path)
            self._rewrite_imports(tree, contract.wsdl_file)
            self.wsdl[contract.url_path] = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")

    def _rewrite_imports(self, tree: etree._ElementTree, source: Path) -> None:
        for tag in ("import", "include"):
            for el in tree.getroot().iterfind(f".//{{{XS_NS}}}{tag}"):
                location = el.get("schemaLocation")
                if not location:
                    continue
                target = (source.parent / location).resolve()
                relative = target.relative_to(self.root).as_posix()
                el.set("schemaLocation", f"?xsd={relative}")
                if relative not in self.xsd:
                    self.xsd[relative] = b""  # reserve, prevents cycles
                    schema = etree.parse(str(target), _file_parser())
                    self._rewrite_imports(schema, target)
                    self.xsd[relative] = etree.tostring(schema, xml_declaration=True, encoding="UTF-8")


def _file_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class SoapApp:
    def __init__(
        self,
        config: Config,
        registry: ContractRegistry,
        handlers: Handlers,
        identity: CallerIdentity,
        validator: SchemaValidator | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.handlers = handlers
        self.identity = identity
        self.validator = validator or SchemaValidator()
        self.documents = ContractDocuments(registry, config.server.public_url)
        self.actions = frozenset(c.soap_action for c in registry.contracts())
        self.limits = BodyLimits.from_config(config.soap, registry)
        self.reader = RequestReader(
            self.limits, LargeRequestSlots(config.soap.max_large_requests, config.soap.large_request_wait_ms)
        )

    def close(self) -> None:
        """Release the database connections (tests and tools that build an app in-process)."""
        self.handlers.inbox.close()
        self.handlers.inbox.engine.dispose()
        self.handlers.routing.store.engine.dispose()  # the catalogue's own read engine

    # -- WSGI entry -----------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD"):
            return self._get(environ, start_response)
        if method != "POST":
            return _plain(
                start_response,
                "405 Method Not Allowed",
                "POST a SOAP 1.1 envelope\n",
                [("Allow", "GET, POST")],
            )
        # a large body holds one of the process's large-request slots until its answer is made
        with self.reader.admission() as admission:
            return self._post(environ, start_response, admission)

    def _post(
        self, environ: dict[str, Any], start_response: StartResponse, admission: Admission
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        log_id = str(uuid.uuid4())
        fields: dict[str, Any] = {"logId": log_id, "outcome": None}
        level, error = logging.INFO, None  # OK at INFO, refusals and ERROR results at WARNING
        try:
            fields["consumer"] = consumer = self.identity.caller(environ)
            self._check_content_type(environ)
            root = self.reader.read(environ, admission)
            envelope = parse_envelope(root)
            fields["logicalAddress"] = envelope.logical_address
            payload = envelope.payload
            contract = self.registry.get(payload.tag)
            if contract is None:
                raise InvalidRequestError(
                    f"Unknown request element {pseudonym(str(payload.tag))}: no such service contract here"
                )
            fields["operation"] = contract.operation
            self._check_soap_action(environ, contract.soap_action)
            errors = self.validator.errors(contract, payload)
            if errors:
                shown = "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
                raise InvalidRequestError(f"Request does not validate against {contract.operation}: {shown}")
            original = environ.get("HTTP_X_RIVTA_ORIGINAL_SERVICECONSUMER_HSAID")
            ctx = RequestContext(
                log_id=log_id,
                consumer=consumer,
                logical_address=envelope.logical_address,
                contract=contract,
                payload=payload,
                correlation_id=(environ.get("HTTP_X_SKLTP_CORRELATION_ID") or log_id)[:64],
                original_consumer=original[:64] if original else None,
            )
            response = self.handlers.by_operation[contract.operation](ctx)
            fields.update(ctx.facts)
            fields["outcome"] = ctx.facts.get("resultCode", "OK")
            if fields["outcome"] == "ERROR":
                level = logging.WARNING
            status, data = "200 OK", response_envelope(response)
        except SoapFault as fault:
            fields.update(faultCode=fault.faultcode, platformCode=fault.platform_code, reason=fault.message)
            fields["outcome"] = fault.platform_code
            if isinstance(fault, ServerFault):  # the gateway's own trouble: at ERROR, with what caused it
                level, error = logging.ERROR, fault.__cause__ or fault.__context__
            else:  # a refusal: the caller must fix something
                level = logging.WARNING
            status, data = "500 Internal Server Error", fault_envelope(fault, log_id)
        except Exception as exc:  # noqa: BLE001 - answered as a server fault, logged with its cause
            internal = ServerFault("Internal error in the gateway; try again later")
            fields.update(faultCode=internal.faultcode, platformCode=internal.platform_code)
            fields["outcome"] = internal.platform_code
            level, error = logging.ERROR, exc
            status, data = "500 Internal Server Error", fault_envelope(internal, log_id)
        fields["ms"] = round((time.perf_counter() - started) * 1000, 2)
        fields = _loggable(fields, environ, self.actions)
        log.log(level, "soap request", extra={"fields": fields}, exc_info=error)
        start_response(status, [("Content-Type", _XML), ("Content-Length", str(len(data)))])
        return [data]

    # -- checks ---------------------------------------------------------------------------------------------
    @staticmethod
    def _check_content_type(environ: dict[str, Any]) -> None:
        media = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if media == "application/soap+xml":
            raise VersionMismatchError(
                "SOAP 1.2 (application/soap+xml) is not supported; RIV-TA uses SOAP 1.1"
            )
        if media != "text/xml":
            raise InvalidRequestError("Content-Type must be text/xml (SOAP 1.1)")

    @staticmethod
    def _check_soap_action(environ: dict[str, Any], expected: str) -> None:
        raw = environ.get("HTTP_SOAPACTION")
        if raw is None:
            return
        action = raw.strip()
        if len(action) >= 2 and action[0] == action[-1] == '"':
            action = action[1:-1]
        if action and action != expected:
            raise InvalidRequestError(
                f"SOAPAction {action!r} contradicts the Body element (expected {expected!r})"
            )

    # -- contract documents ---------------------------------------------------------------------------------
    def _get(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/").rstrip("/")
        query = parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True)
        if path in self.documents.wsdl:
            if "wsdl" in query or "WSDL" in query:
                return _document(start_response, self.documents.wsdl[path])
            if "xsd" in query:
                document = self.documents.xsd.get(query["xsd"][0])
                if document:
                    return _document(start_response, document)
                return _plain(start_response, "404 Not Found", "No such schema\n")
            return _plain(start_response, "200 OK", f"{path}: append ?wsdl for the service description\n")
        return _plain(start_response, "404 Not Found", "Not found\n")


#: values from the request and the rule each must pass before the request line shows it
_CHECKED = (("consumer", safe_hsa_id), ("logicalAddress", safe_hsa_id))
_HEADERS = (
    ("correlationId", "HTTP_X_SKLTP_CORRELATION_ID", safe_id),
    ("originalConsumer", "HTTP_X_RIVTA_ORIGINAL_SERVICECONSUMER_HSAID", safe_hsa_id),
)
_FROM_PAYLOAD = (("caseId", safe_id), ("messageId", safe_id))


def _loggable(fields: dict[str, Any], environ: dict[str, Any], actions: frozenset[str]) -> dict[str, Any]:
    """The request line's fields with every value from the request checked (``gateway.redact``).

    A value that fails its format check is shown as its pseudonym, here and wherever a fault reason or a
    routing trace quotes it (the fault on the wire may echo a caller's own value back; the log keeps none).
    """
    failed: dict[str, str] = {}

    def check(key: str, value: Any, rule: Callable[[str | None], str | None]) -> None:
        if not isinstance(value, str):
            return
        fields[key] = shown = rule(value)
        if shown != value and len(value) >= 4:  # shorter values cannot hold personal data
            failed[value] = str(shown)

    for key, rule in _CHECKED + _FROM_PAYLOAD:
        check(key, fields.get(key), rule)
    for key, header, rule in _HEADERS:
        check(key, environ.get(header), rule)
    action = (environ.get("HTTP_SOAPACTION") or "").strip().strip('"')
    if len(action) >= 4 and action not in actions:
        failed[action] = pseudonym(action)
    if failed:
        for key in ("reason", "trace"):
            text = fields.get(key)
            if isinstance(text, str):
                for value in sorted(failed, key=len, reverse=True):
                    text = text.replace(value, failed[value])
                fields[key] = text
    return fields


def _document(start_response: StartResponse, data: bytes) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", _XML), ("Content-Length", str(len(data)))])
    return [data]


def _plain(
    start_response: StartResponse, status: str, text: str, headers: list[tuple[str, str]] | None = None
) -> Iterable[bytes]:
    data = text.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))] + (headers or []),
    )
    return [data]


def create_app(config: Config, *, start_routing: bool = True) -> SoapApp:
    """Build the SOAP application and everything it needs from configuration (one call per process).

    ``start_routing`` starts the thread that follows newly published routing versions; tests that publish
    and then build an app in-process may leave it off (the active version is loaded either way).
    """
    from contracts import load_code_lists, load_registry
    from gateway import __version__
    from gateway.cases.inbox import Inbox
    from gateway.catalogue import routing_holder
    from gateway.db import make_engine

    registry = load_registry()
    lock_timeout_ms = config.database.lock_timeout_ms
    engine = make_engine(
        config.database.url,
        echo=config.database.echo,
        pool_size=config.server.threads,
        lock_timeout_ms=lock_timeout_ms,
    )
    routing = routing_holder(config)  # on a read-only engine of its own (gateway.catalogue)
    if start_routing:
        routing.start()
    else:
        routing.load()
    code_lists = load_code_lists(config.gateway.code_lists)
    inbox = Inbox(engine, lock_timeout_ms=lock_timeout_ms)
    handlers = Handlers(config, registry, inbox, code_lists, __version__, routing)
    identity = CallerIdentity(config.tls, config.proxy)
    return SoapApp(config, registry, handlers, identity)
