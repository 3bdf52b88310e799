"""Reading a request body within the limits of ``gateway.soap.limits``: small bodies as before, large ones
incrementally, refused as soon as a limit is passed.

- a body within ``max_envelope_bytes`` is read whole and parsed by ``envelope.parse_xml`` (one of at least 4
  bytes per allowed element also has its ``<`` counted, and goes the incremental way if it holds too many);
- a Content-Length above the largest legal body of any contract is refused before a byte is read;
- any other body takes a large-request slot (``LargeRequestSlots``) and is fed chunk by chunk to lxml's pull
  parser (``IncrementalParser``), which counts elements, depth, attachments, each attachment's text and the
  bytes outside attachment data.

Every refusal is an ``InvalidRequestError`` (VP015) that names the limit; nothing is stored, since the
handler never runs. Before a refusal of a large body is answered, what the client still sends of it is read
and dropped (one chunk in memory; until 25 s after the reading began at most, and only while the client
keeps sending), since most HTTP clients send the whole body before they read an answer and would otherwise
see a reset connection instead of the fault. A Content-Length above every contract's largest body is
answered at once. This module never keeps the raw body once it is parsed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from lxml import etree

from gateway.errors import InvalidRequestError, ServerFault
from gateway.soap.envelope import SOAP_ENV_NS, check_document, parse_xml, pull_parser, refuse_doctype
from gateway.soap.limits import Admission, BinarySlot, BodyLimits, ContractSize, LargeRequestSlots

__all__ = ["CHUNK", "IncrementalParser", "RequestReader"]

#: bytes read from the request stream and fed to the incremental parser at a time
CHUNK = 256 * 1024
#: after a refusal, the rest of the body is read and dropped until this long after the reading began
#: (the national platform waits 29 s for an answer) ...
ANSWER_WITHIN_SECONDS = 25.0
#: ... and only while the client sends something at least this often
DISCARD_IDLE_SECONDS = 1.0
#: the smallest element, ``<a/>``: a body of n bytes holds at most n / 4 elements
_MIN_ELEMENT_BYTES = 4
#: bytes of an end tag that libxml2 may hold before it reports the element's end
_END_TAG_SLACK = 1024
_BODY = f"{{{SOAP_ENV_NS}}}Body"


# -- reading -------------------------------------------------------------------------------------------
def _content_length(environ: dict[str, Any]) -> int | None:
    header = environ.get("CONTENT_LENGTH") or ""
    if not header:
        return None
    try:
        length = int(header)
    except ValueError:
        raise InvalidRequestError("Invalid Content-Length") from None
    if length < 0:
        raise InvalidRequestError("Invalid Content-Length")
    return length


def _chunks(stream: Any, length: int | None) -> Iterator[bytes]:
    """The rest of the body in chunks (up to ``length`` bytes, or to its end when the length is unknown)."""
    left = length
    while left is None or left > 0:
        chunk: bytes = stream.read(CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


class _Counted:
    """The request stream, counting what was read from it."""

    def __init__(self, stream: Any, already: int = 0) -> None:
        self._stream = stream
        self.read_bytes = already

    def read(self, size: int) -> bytes:
        data = _read(self._stream, size)
        self.read_bytes += len(data)
        return data


def _read(stream: Any, size: int) -> bytes:
    try:
        data: bytes = stream.read(size)
    except OSError:  # the client went away, or (gunicorn) the chunked encoding is broken
        raise InvalidRequestError("Request body could not be read to its end") from None
    return data


def _slices(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


class RequestReader:
    """Reads and parses a request body within the limits; see the module docstring for the rules."""

    def __init__(self, limits: BodyLimits, slots: LargeRequestSlots) -> None:
        self.limits = limits
        self.slots = slots

    def admission(self) -> Admission:
        return self.slots.admission()

    def read(self, environ: dict[str, Any], admission: Admission) -> etree._Element:
        """The parsed document root; large bodies first take a slot through ``admission``."""
        limits = self.limits
        started = time.monotonic()
        stream = environ["wsgi.input"]
        length = _content_length(environ)
        if length is not None:
            if length <= limits.envelope_bytes:
                return self._small(_read(stream, length))
            if length > limits.largest_body:
                largest = max(limits.by_request.values(), key=lambda s: s.largest_body)
                raise InvalidRequestError(
                    f"Request body of {length} bytes exceeds the largest request the contracts allow: "
                    f"{limits.largest_body} bytes ({largest.operation} with {largest.attachments} "
                    f"attachments of {limits.attachment_bytes} bytes and {limits.envelope_bytes} bytes "
                    "besides)"
                )
            counted = _Counted(stream)
            try:
                admission.take()
                return IncrementalParser(limits, length).parse(_chunks(counted, length))
            except (InvalidRequestError, ServerFault):
                self._discard(environ, counted, length - counted.read_bytes, started)
                raise
        head = _read(stream, limits.envelope_bytes + 1)
        if len(head) <= limits.envelope_bytes:
            return self._small(head)
        counted = _Counted(stream, len(head))
        try:
            admission.take()
            return IncrementalParser(limits, None).parse(_chain(head, _chunks(counted, None)))
        except (InvalidRequestError, ServerFault):
            self._discard(environ, counted, None, started)
            raise

    def _discard(self, environ: dict[str, Any], stream: _Counted, left: int | None, started: float) -> None:
        """Read and drop what the client still sends of a refused body, within bounds, so that a client
        that sends its whole body before it reads the answer gets the fault instead of a reset connection.

        Bounded by the largest legal body in all, by ``ANSWER_WITHIN_SECONDS`` after the reading began
        (at least one more second) and by ``DISCARD_IDLE_SECONDS`` without data (a client that waits for
        the answer first); one chunk in memory at a time.
        """
        budget = self.limits.largest_body - stream.read_bytes
        left = budget if left is None else min(left, budget)
        sock = environ.get("gunicorn.socket")
        timeout = getattr(sock, "gettimeout", lambda: None)()
        deadline = max(started + ANSWER_WITHIN_SECONDS, time.monotonic() + DISCARD_IDLE_SECONDS)
        try:
            if sock is not None:
                sock.settimeout(DISCARD_IDLE_SECONDS)
            while left > 0 and time.monotonic() < deadline:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
        except InvalidRequestError:  # timed out, reset, or a malformed chunked body: answer now
            pass
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(timeout)

    def _small(self, body: bytes) -> etree._Element:
        limits = self.limits
        # Only a body of at least 4 bytes per allowed element can hold too many; count its tags first.
        if len(body) >= _MIN_ELEMENT_BYTES * limits.max_elements and body.count(b"<") > limits.max_elements:
            return IncrementalParser(limits, len(body)).parse(_slices(body))
        return parse_xml(body, max_depth=limits.max_depth)


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


class IncrementalParser:
    """Feeds a body to lxml's pull parser chunk by chunk and refuses it as soon as a limit is passed.

    Bytes are attributed while they are fed: the text of an attachment's data element (one of the first
    ``maxOccurs`` attachments of the contract named by the Body's first element) counts against that
    attachment, everything else against ``envelope_bytes``. A CRLF counts as one byte everywhere, as XML
    parsers turn it into one line feed (so a text's length, in characters, is comparable with the bytes
    fed). While a data element is open, everything fed since the chunk in which it started is taken as its
    text (the envelope count may then trail by less than one chunk); when it ends, its exact text length
    replaces that estimate, so the final count is exact whatever the chunking.
    """

    def __init__(self, limits: BodyLimits, length: int | None) -> None:
        self.limits = limits
        self.length = length
        self.parser = pull_parser()
        self.fed = 0  # bytes fed so far
        self.units = 0  # bytes fed so far, a CRLF counted as one
        self._cr_last = False  # the last chunk ended with CR (a CRLF may straddle two chunks)
        self.elements = 0
        #: roles of the open elements, outermost first: "", "body", "payload", "slot", "data"
        self.stack: list[str] = []
        self.size: ContractSize | None = None
        self.slot_of: dict[str, BinarySlot] = {}
        self.counts: dict[str, int] = {}
        self.slot: BinarySlot | None = None  # the attachment element now open
        self.slot_has_data = False
        self.attachments = 0
        self.data_done = 0  # exact text length of the closed data elements
        self.data_from = -1  # units fed before the chunk in which the open data element started
        self.data_after = 0  # units fed up to the end of that chunk

    def parse(self, chunks: Iterable[bytes]) -> etree._Element:
        try:
            for chunk in chunks:
                if not self.fed:
                    refuse_doctype(chunk)
                before = self.units
                self._count(chunk)
                self.parser.feed(chunk)
                self._events(before)
                self._check_envelope()
            root = self.parser.close()
            self._events(self.units)
        except etree.XMLSyntaxError as exc:
            raise InvalidRequestError(f"Request is not well-formed XML (line {exc.lineno})") from None
        if self.fed == 0:
            raise InvalidRequestError("Empty request body")
        self._check_envelope()
        check_document(root.getroottree(), max_depth=self.limits.max_depth)
        return root

    def _count(self, chunk: bytes) -> None:
        pairs = 1 if self._cr_last and chunk[:1] == b"\n" else 0
        if b"\r" in chunk:  # a quick scan; counting pairs takes longer and is only needed with CRs
            pairs += chunk.count(b"\r\n")
        self._cr_last = chunk[-1:] == b"\r"
        self.fed += len(chunk)
        self.units += len(chunk) - pairs

    def _events(self, chunk_start: int) -> None:
        limits = self.limits
        for event, el in self.parser.read_events():
            if event == "start":
                self.elements += 1
                if self.elements > limits.max_elements:
                    raise InvalidRequestError(
                        f"Request has more than {limits.max_elements} elements (soap.max_elements)"
                    )
                if len(self.stack) >= limits.max_depth:
                    raise InvalidRequestError(f"Element nesting deeper than {limits.max_depth} levels")
                self.stack.append(self._role(el.tag, chunk_start))
                continue
            role = self.stack.pop()
            if role == "data":
                self._data_end(el)
            elif role == "slot":
                self.slot = None

    def _role(self, tag: object, chunk_start: int) -> str:
        """What a starting element is to the accounting, from its parent's role."""
        if not self.stack or not isinstance(tag, str):
            return ""  # the root element, or a comment or processing instruction
        parent = self.stack[-1]
        if parent == "" and len(self.stack) == 1:
            return "body" if tag == _BODY else ""
        if parent == "body":
            return self._payload(tag) if self.size is None else ""
        if parent == "payload":
            slot = self.slot_of.get(tag)
            if slot is None:
                return ""
            self.counts[tag] = count = self.counts.get(tag, 0) + 1
            if count > slot.max_count:
                operation = self.size.operation if self.size else ""
                raise InvalidRequestError(
                    f"{operation} allows at most {slot.max_count} {_local(tag)} elements"
                )
            self.slot, self.slot_has_data = slot, False
            return "slot"
        if parent == "slot" and self.slot is not None and tag == self.slot.data and not self.slot_has_data:
            self.slot_has_data = True
            self.attachments += 1
            self.data_from, self.data_after = chunk_start, self.units
            return "data"
        if parent == "data":
            raise InvalidRequestError(f"attachment {self.attachments}: data must be text only")
        return ""

    def _payload(self, tag: str) -> str:
        limits = self.limits
        self.size = size = limits.by_request.get(tag) or ContractSize("", (), limits.envelope_bytes)
        self.slot_of = {s.element: s for s in size.slots}
        if self.length is not None and self.length > size.largest_body:
            what = (
                f"the largest {size.operation} request: {size.largest_body} bytes ({size.attachments} "
                f"attachments of {limits.attachment_bytes} bytes and {limits.envelope_bytes} bytes besides)"
                if size.slots
                else f"{limits.envelope_bytes} bytes (soap.max_envelope_bytes) for a request without "
                "attachments"
            )
            raise InvalidRequestError(f"Request body of {self.length} bytes exceeds {what}")
        return "payload"

    def _data_end(self, el: etree._Element) -> None:
        text = len(el.text or "")
        self.data_done += text
        self.data_from = -1
        self._check_attachment(text)

    def _check_attachment(self, text: int) -> None:
        limits = self.limits
        if text > limits.attachment_text:
            raise InvalidRequestError(
                f"attachment {self.attachments}: data of more than {limits.attachment_text} characters, "
                f"larger than the {limits.attachment_bytes} bytes an attachment may have "
                "(soap.max_attachment_bytes)"
            )

    def _check_envelope(self) -> None:
        limits = self.limits
        open_data = 0
        if self.data_from >= 0:
            open_data = self.units - self.data_from
            # what is surely text by now: fed after the chunk in which it started, but for its end tag
            self._check_attachment(self.units - self.data_after - _END_TAG_SLACK)
        if self.units - self.data_done - open_data > limits.envelope_bytes:
            raise InvalidRequestError(
                f"Request has more than {limits.envelope_bytes} bytes outside attachment data "
                "(soap.max_envelope_bytes)"
            )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
