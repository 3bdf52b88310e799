"""Request size limits derived from the contracts, and the slots that bound how many large requests one
process handles at once. ``gateway.soap.reader`` enforces them while it reads a body.

The contracts say how many attachments a request may carry (``maxOccurs`` of the element whose type holds an
``xs:base64Binary``, read from the XSD files, so official contract files with other counts need no code
change); ``soap.max_attachment_bytes`` says how large one may be once decoded, so its base64 text is known
(4/3 of it, plus a line break every 64 characters). Everything else in a request (envelope, header, every
other element and extension, markup) is capped by ``soap.max_envelope_bytes``, and the number of elements
by ``soap.max_elements``. So each contract has a largest legal body::

    max_envelope_bytes + maxOccurs(attachment) x base64_text_cap(max_attachment_bytes)

A request larger than ``max_envelope_bytes`` takes one of ``soap.max_large_requests`` slots of its process
for as long as it is read and handled; one that gets no slot within ``soap.large_request_wait_ms`` is
answered VP009 (retryable). See docs/request-size.md for the figures.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lxml import etree

from contracts.registry import XS_NS, Contract, ContractFileError, ContractRegistry
from gateway.config import SoapConfig
from gateway.errors import ServerFault

__all__ = [
    "Admission",
    "BinarySlot",
    "BodyLimits",
    "ContractSize",
    "LargeRequestSlots",
    "base64_text_cap",
    "binary_slots",
]


def base64_text_cap(decoded_bytes: int) -> int:
    """Characters of the base64 text of ``decoded_bytes``, with a line break (CRLF) every 64 characters.

    MIME wraps at 76 and PEM at 64 characters, so either wrapping, with CRLF or LF, fits; an attachment
    whose text is longer than this is larger than ``decoded_bytes`` or padded with whitespace.
    """
    text = 4 * -(-decoded_bytes // 3)
    return text + 2 * -(-text // 64)


# -- what the contracts allow ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BinarySlot:
    """A repeatable request element whose type carries base64 data (an attachment)."""

    element: str  # Clark name of the repeated element, e.g. {...RegisterCaseResponder:1}attachment
    data: str  # Clark name of its base64Binary child, e.g. {...complaintsandfeedback:1}data
    max_count: int  # maxOccurs in the contract


class _Schemas:
    """The schema documents reachable from one responder schema, by target namespace."""

    def __init__(self, first: Path) -> None:
        self.by_namespace: dict[str, list[etree._Element]] = {}
        self._load(first.resolve(), set())

    def _load(self, path: Path, seen: set[Path]) -> None:
        if path in seen:
            return
        seen.add(path)
        root = _parse_schema(path)
        self.by_namespace.setdefault(root.get("targetNamespace", ""), []).append(root)
        for tag in ("import", "include"):
            for ref in root.iterfind(f"{{{XS_NS}}}{tag}"):
                location = ref.get("schemaLocation")
                if location:
                    self._load((path.parent / location).resolve(), seen)

    def find(self, kind: str, namespace: str, name: str) -> etree._Element | None:
        for root in self.by_namespace.get(namespace, []):
            found = root.find(f"{{{XS_NS}}}{kind}[@name='{name}']")
            if found is not None:
                return found
        return None


@functools.cache
def _parse_schema(path: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return etree.parse(str(path), parser).getroot()


def _resolve(el: etree._Element, value: str) -> tuple[str, str]:
    prefix, _, local = value.rpartition(":")
    namespace = el.nsmap.get(prefix or None)
    if namespace is None:
        raise ContractFileError(f"unknown namespace prefix in {value!r}")
    return namespace, local


def _schema_root(el: etree._Element) -> etree._Element:
    return el.getroottree().getroot()


def _local_name(decl: etree._Element) -> str:
    """Clark name of a local element declaration, following the schema's elementFormDefault."""
    root = _schema_root(decl)
    form = decl.get("form") or root.get("elementFormDefault", "unqualified")
    name = decl.get("name", "")
    return f"{{{root.get('targetNamespace', '')}}}{name}" if form == "qualified" else name


def _complex_type(schemas: _Schemas, decl: etree._Element) -> etree._Element | None:
    inline = decl.find(f"{{{XS_NS}}}complexType")
    if inline is not None:
        return inline
    type_name = decl.get("type")
    if not type_name:
        return None
    namespace, local = _resolve(decl, type_name)
    return None if namespace == XS_NS else schemas.find("complexType", namespace, local)


def binary_slots(contract: Contract) -> tuple[BinarySlot, ...]:
    """The attachment-like elements of a contract's request, read from its schema files."""
    schemas = _Schemas(contract.schema_file)
    request = schemas.find("element", str(contract.request.namespace), contract.request.localname)
    if request is None:
        raise ContractFileError(f"{contract.schema_file.name}: no element {contract.request.localname}")
    request_type = _complex_type(schemas, request)
    if request_type is None:
        return ()
    slots = []
    for decl in request_type.iter(f"{{{XS_NS}}}element"):
        child_type = _complex_type(schemas, decl) if decl.get("name") else None
        if child_type is None:
            continue
        data = [
            d
            for d in child_type.iter(f"{{{XS_NS}}}element")
            if d.get("type") and _resolve(d, d.get("type", "")) == (XS_NS, "base64Binary")
        ]
        if not data:
            continue
        occurs = decl.get("maxOccurs", "1")
        if not occurs.isdigit():
            raise ContractFileError(
                f"{contract.schema_file.name}: {decl.get('name')} has maxOccurs={occurs!r}; the body limit "
                "can only be derived from a bounded count"
            )
        slots.append(BinarySlot(_local_name(decl), _local_name(data[0]), int(occurs)))
    return tuple(slots)


@dataclass(frozen=True)
class ContractSize:
    """The largest legal request of one contract."""

    operation: str
    slots: tuple[BinarySlot, ...]
    largest_body: int

    @property
    def attachments(self) -> int:
        return sum(s.max_count for s in self.slots)


@dataclass(frozen=True)
class BodyLimits:
    envelope_bytes: int
    attachment_bytes: int
    attachment_text: int
    max_elements: int
    max_depth: int
    by_request: dict[str, ContractSize]
    #: the largest legal body of any contract: a Content-Length above it is refused unread
    largest_body: int

    @classmethod
    def from_config(cls, soap: SoapConfig, registry: ContractRegistry) -> BodyLimits:
        text = base64_text_cap(soap.max_attachment_bytes)
        sizes = {}
        for contract in registry.contracts():
            slots = binary_slots(contract)
            largest = soap.max_envelope_bytes + sum(s.max_count for s in slots) * text
            sizes[contract.request.text] = ContractSize(contract.operation, slots, largest)
        return cls(
            envelope_bytes=soap.max_envelope_bytes,
            attachment_bytes=soap.max_attachment_bytes,
            attachment_text=text,
            max_elements=soap.max_elements,
            max_depth=soap.max_depth,
            by_request=sizes,
            largest_body=max([soap.max_envelope_bytes, *(s.largest_body for s in sizes.values())]),
        )

    def describe(self) -> dict[str, int]:
        """The derived largest body per operation (for logs, status and the bench)."""
        return {size.operation: size.largest_body for size in self.by_request.values()}


# -- how many large bodies at once ---------------------------------------------------------------------
class LargeRequestSlots:
    """Bounds how many requests above the envelope cap one process reads and handles at once."""

    def __init__(self, count: int, wait_ms: int) -> None:
        self.count = count
        self.wait_s = wait_ms / 1000
        self._semaphore = threading.BoundedSemaphore(count)

    def admission(self) -> Admission:
        return Admission(self)

    def _acquire(self) -> bool:
        return self._semaphore.acquire(timeout=self.wait_s)

    def _release(self) -> None:
        self._semaphore.release()


class Admission:
    """One request's claim on a large-request slot: taken when the body turns out large, released at exit."""

    def __init__(self, slots: LargeRequestSlots) -> None:
        self._slots = slots
        self.held = False

    def take(self) -> None:
        if self.held:
            return
        if not self._slots._acquire():
            raise ServerFault(
                f"The gateway is busy with other large requests ({self._slots.count} per process, "
                f"waited {self._slots.wait_s:g} s); try again shortly"
            )
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._slots._release()

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
