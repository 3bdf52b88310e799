"""SOAP 1.1 envelope rules: secure parsing, the LogicalAddress header, dispatch element, faults, responses.

Nothing here knows a contract's content or touches the database. It must never resolve an entity, load a
DTD, reach the network, or copy request text into a fault.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from contracts.model import Result
from gateway.errors import (
    InvalidRequestError,
    MissingAddressError,
    MustUnderstandError,
    SoapFault,
    VersionMismatchError,
)
from gateway.redact import pseudonym

__all__ = [
    "LOGICAL_ADDRESS",
    "SOAP_ENV_NS",
    "Envelope",
    "check_document",
    "fault_envelope",
    "parse_envelope",
    "parse_xml",
    "pull_parser",
    "refuse_doctype",
    "response_envelope",
]

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS = "http://www.w3.org/2003/05/soap-envelope"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
LOGICAL_ADDRESS = f"{{{REGISTRY_NS}}}LogicalAddress"
FAULT_DETAIL_NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:gateway:fault:1"
ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"

_ENVELOPE = f"{{{SOAP_ENV_NS}}}Envelope"
_HEADER = f"{{{SOAP_ENV_NS}}}Header"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_MUST_UNDERSTAND = f"{{{SOAP_ENV_NS}}}mustUnderstand"
_ACTOR = f"{{{SOAP_ENV_NS}}}actor"
_UNDERSTOOD = frozenset({LOGICAL_ADDRESS})

_local = threading.local()


def _parser() -> etree.XMLParser:
    # An lxml parser serialises its users with a lock, so each serving thread gets its own.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            # huge_tree lifts libxml2's 10 MB text-node cap so base64 attachments of the configured size
            # parse; only bodies within soap.max_envelope_bytes come here (gateway.soap.reader) and
            # nesting depth is checked explicitly below.
            huge_tree=True,
            # NB: never collect_ids=False: it makes libxml2 load external DTD subsets despite load_dtd=False.
        )
        parser.resolvers.add(_RefuseAll())
    return parser


class _RefuseAll(etree.Resolver):  # type: ignore[misc]
    """Last line of defence: any external resource the parser asks for resolves to nothing."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


@functools.cache
def _too_deep(max_depth: int) -> etree.XPath:
    # True when some element sits deeper than max_depth; evaluated in C, no Python walk over the tree.
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")


_has_pi = etree.XPath("boolean(//processing-instruction())")


@dataclass(frozen=True)
class Envelope:
    logical_address: str
    payload: etree._Element
    header: etree._Element | None


def parse_xml(body: bytes, *, max_depth: int) -> etree._Element:
    """Parse request bytes securely; raise InvalidRequestError for anything that is not plain XML."""
    if not body.strip():
        raise InvalidRequestError("Empty request body")
    refuse_doctype(body)
    try:
        tree = etree.fromstring(body, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise InvalidRequestError(f"Request is not well-formed XML (line {exc.lineno})") from None
    check_document(tree, max_depth=max_depth)
    return tree.getroot()


def pull_parser() -> etree.XMLPullParser:
    """An incremental parser with the same protections as ``parse_xml``'s (one per large request)."""
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # gateway.soap.reader caps text, elements and depth as it feeds
    )
    parser.resolvers.add(_RefuseAll())
    return parser


def refuse_doctype(start: bytes) -> None:
    """Refuse a document whose first bytes declare a DOCTYPE or an entity, before libxml2 sees it."""
    head = start[:4096]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        # Refused before parsing, so no DTD is ever processed (check_document catches the rest, e.g.
        # UTF-16 documents or a DOCTYPE after a long comment).
        raise InvalidRequestError("DOCTYPE declarations are not allowed in SOAP messages")


def check_document(tree: etree._ElementTree, *, max_depth: int) -> None:
    """The checks on a parsed request: no DOCTYPE, no processing instruction, nesting within max_depth."""
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InvalidRequestError("DOCTYPE declarations are not allowed in SOAP messages")
    if _has_pi(tree):
        raise InvalidRequestError("Processing instructions are not allowed in SOAP messages")
    if _too_deep(max_depth)(tree):
        raise InvalidRequestError(f"Element nesting deeper than {max_depth} levels")


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _has_text(el: etree._Element) -> bool:
    if el.text and el.text.strip():
        return True
    return any(c.tail and c.tail.strip() for c in el)


def parse_envelope(root: etree._Element) -> Envelope:
    """Apply the SOAP 1.1 envelope rules and the RIV-TA LogicalAddress rule."""
    if root.tag != _ENVELOPE:
        if root.tag == f"{{{SOAP12_ENV_NS}}}Envelope":
            raise VersionMismatchError("SOAP 1.2 envelopes are not supported; RIV-TA uses SOAP 1.1")
        if etree.QName(root).localname == "Envelope":
            raise VersionMismatchError("Envelope is not in the SOAP 1.1 namespace")
        raise InvalidRequestError("Request is not a SOAP envelope")
    children = _elements(root)
    headers = [c for c in children if c.tag == _HEADER]
    bodies = [c for c in children if c.tag == _BODY]
    if len(headers) > 1:
        raise InvalidRequestError("More than one SOAP Header")
    if len(bodies) != 1:
        raise InvalidRequestError("SOAP Body missing" if not bodies else "More than one SOAP Body")
    others = [c for c in children if c.tag not in (_HEADER, _BODY)]
    if others or (headers and children.index(headers[0]) != 0):
        raise InvalidRequestError("Envelope may contain only an optional Header followed by the Body")
    if _has_text(root):
        raise InvalidRequestError("Text content directly inside the Envelope")
    header = headers[0] if headers else None
    body = bodies[0]

    addresses: list[etree._Element] = []
    if header is not None:
        for block in _elements(header):
            if block.tag == LOGICAL_ADDRESS:
                addresses.append(block)
            actor = block.get(_ACTOR)
            if actor is not None and actor != ACTOR_NEXT:
                continue  # addressed to another SOAP node
            must = block.get(_MUST_UNDERSTAND)
            if must is None or must.strip() in ("0", "false"):
                continue
            if must.strip() not in ("1", "true"):
                raise InvalidRequestError("mustUnderstand must be 0 or 1")
            if block.tag not in _UNDERSTOOD:
                # the header's name is the caller's: only its pseudonym is quoted (gateway.redact)
                raise MustUnderstandError(
                    f"Header {pseudonym(str(block.tag))} is marked mustUnderstand but is not understood"
                )
    if not addresses:
        raise MissingAddressError("LogicalAddress header missing")
    if len(addresses) > 1:
        raise MissingAddressError("More than one LogicalAddress header")
    address_el = addresses[0]
    if _elements(address_el):
        raise MissingAddressError("LogicalAddress must contain text only")
    address = address_el.text or ""
    if not address.strip():
        raise MissingAddressError("LogicalAddress header is empty")
    if address != address.strip():
        raise MissingAddressError("LogicalAddress has leading or trailing whitespace")

    payloads = _elements(body)
    if not payloads:
        raise InvalidRequestError("SOAP Body is empty")
    if len(payloads) > 1:
        raise InvalidRequestError("SOAP Body holds more than one element")
    if _has_text(body):
        raise InvalidRequestError("Text content directly inside the SOAP Body")
    return Envelope(logical_address=address, payload=payloads[0], header=header)


def _envelope() -> tuple[etree._Element, etree._Element]:
    env = etree.Element(_ENVELOPE, nsmap={"soap": SOAP_ENV_NS})
    body = etree.SubElement(env, _BODY)
    return env, body


def response_envelope(payload: etree._Element | bytes) -> bytes:
    """The response envelope around ``payload`` (bytes are an envelope already, see ``OkEnvelope``)."""
    if isinstance(payload, bytes):
        return payload
    env, body = _envelope()
    body.append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


class OkEnvelope:
    """The plain OK answer of one contract as bytes, made once from its real builder.

    Every accepted request gets the same envelope but for its log id: building and serialising the tree
    each time cost about as much as validating the request. The template is the builder's own output, cut
    at a placeholder log id, so it cannot drift from the non-OK answers.
    """

    _PLACEHOLDER = "ffffffff-ffff-4fff-bfff-ffffffffffff"

    def __init__(self, build: Callable[[Result], etree._Element]) -> None:
        whole = response_envelope(build(Result.ok(self._PLACEHOLDER)))
        head, marker, tail = whole.partition(self._PLACEHOLDER.encode())
        if not marker or marker in tail:
            raise ValueError("the placeholder log id must occur exactly once in the OK envelope")
        self._head, self._tail = head, tail

    def __call__(self, log_id: str) -> bytes:
        return self._head + log_id.encode("ascii") + self._tail


def fault_string(fault: SoapFault, log_id: str) -> str:
    return f"{fault.platform_code} {fault.message} (logId {log_id})"


def fault_envelope(fault: SoapFault, log_id: str) -> bytes:
    env, body = _envelope()
    el = etree.SubElement(body, f"{{{SOAP_ENV_NS}}}Fault")
    # faultcode, faultstring and detail are unqualified (SOAP 1.1 section 4.4)
    etree.SubElement(el, "faultcode").text = f"soap:{fault.faultcode}"
    etree.SubElement(el, "faultstring").text = fault_string(fault, log_id)
    detail = etree.SubElement(el, "detail")
    info = etree.SubElement(detail, f"{{{FAULT_DETAIL_NS}}}gatewayFault", nsmap={"gw": FAULT_DETAIL_NS})
    etree.SubElement(info, f"{{{FAULT_DETAIL_NS}}}code").text = fault.platform_code
    etree.SubElement(info, f"{{{FAULT_DETAIL_NS}}}logId").text = log_id
    etree.SubElement(info, f"{{{FAULT_DETAIL_NS}}}retryable").text = "true" if fault.retryable else "false"
    if fault.detail:
        etree.SubElement(info, f"{{{FAULT_DETAIL_NS}}}trace").text = fault.detail
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))
