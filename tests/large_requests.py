"""Large requests made on the fly for the size-limit tests and the memory bench (never committed as files).

A request is a list of byte parts, so one attachment's base64 text (28 MB for 20 MiB) is made once and
shared by every attachment and every copy of the request; ``PartsStream`` serves them as ``wsgi.input``
and ``chunks`` as a streamed HTTP body, neither joining them into one buffer.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "tests" / "data" / "hostile" / "setup"
MiB = 1024 * 1024
EXTENSION_NS = b"urn:example:size-tests:1"


def pdf_content(size: int) -> bytes:
    """``size`` bytes that start like a PDF and do not compress (so PostgreSQL stores them whole)."""
    head = b"%PDF-1.7\n"
    blocks = -(-(size - len(head)) // 32)
    noise = b"".join(hashlib.sha256(n.to_bytes(8, "big")).digest() for n in range(blocks))
    return (head + noise)[:size]


def base64_text(content: bytes, *, width: int = 76, newline: bytes = b"\n") -> bytes:
    """base64 of ``content`` wrapped at ``width`` characters (76: MIME, 64 with CRLF: PEM-like)."""
    flat = base64.b64encode(content)
    return newline.join(flat[i : i + width] for i in range(0, len(flat), width)) + newline


@dataclass
class Request:
    parts: list[bytes]

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.parts)

    def stream(self, available: int | None = None) -> PartsStream:
        return PartsStream(self.parts, available)

    def chunks(self, size: int = MiB) -> Iterator[bytes]:
        for part in self.parts:
            for start in range(0, len(part), size):
                yield part[start : start + size]

    def join(self) -> bytes:
        return b"".join(self.parts)


class PartsStream:
    """A ``wsgi.input`` over byte parts that counts what was read.

    With ``available``, it plays a client that sends only that much of the body and then waits for the
    answer: a read beyond it times out (as the server's socket does), so a gateway that needs more of
    the body to decide fails instead of answering.
    """

    def __init__(self, parts: list[bytes], available: int | None = None) -> None:
        self._parts = parts
        self._index = 0
        self._offset = 0
        self.consumed = 0
        self.available = available

    def read(self, size: int = -1) -> bytes:
        if self.available is not None:
            left = self.available - self.consumed
            if left <= 0 and self._index < len(self._parts):
                raise TimeoutError("the client waits for the answer before it sends more")
            size = left if size < 0 else min(size, left)
        out: list[bytes] = []
        want = size if size >= 0 else None
        while self._index < len(self._parts) and (want is None or want > 0):
            part = self._parts[self._index]
            end = len(part) if want is None else min(len(part), self._offset + want)
            piece = part[self._offset : end]
            out.append(piece)
            if want is not None:
                want -= len(piece)
            self._offset = end
            if self._offset >= len(part):
                self._index, self._offset = self._index + 1, 0
        data = b"".join(out)
        self.consumed += len(data)
        return data


def _attachment(number: int, text: bytes, mime: bytes = b"application/pdf") -> list[bytes]:
    head = (
        b"<attachment><core:attachmentId>att-%d</core:attachmentId><core:fileName>bilaga-%d.pdf"
        b"</core:fileName><core:mimeType>%s</core:mimeType><core:data>" % (number, number, mime)
    )
    return [head, text, b"</core:data></attachment>"]


def _split(template: bytes, closing: bytes) -> tuple[bytes, bytes]:
    before, found, after = template.partition(closing)
    assert found, f"{closing!r} not in the template"
    return before, found + after


def register_case(
    *,
    attachments: int = 0,
    text: bytes = b"",
    extension: list[bytes] | None = None,
    case_id: str | None = None,
    unit: str = "SE2321000016-7Q6X",
) -> Request:
    """A RegisterCase envelope (the hostile corpus' setup case) with attachments and extension parts."""
    template = (SETUP / "register-case.xml").read_bytes()
    template = template.replace(b"HOSTILE-SETUP-0001", (case_id or f"SIZE-{uuid.uuid4().hex[:12]}").encode())
    template = template.replace(b"SE2321000016-7Q6X", unit.encode())
    before, after = _split(template, b"</RegisterCase>")
    return Request([before, *_attachments(attachments, text), *_extension(extension), after])


def update_case(
    case_id: str,
    *,
    attachments: int = 0,
    text: bytes = b"",
    extension: list[bytes] | None = None,
    sequence: int = 3,
) -> Request:
    """An UpdateCase (ANSWER) of ``case_id`` with attachments, addressed to 1177's case service."""
    template = (SETUP / "update-case-seq3.xml").read_bytes()
    template = template.replace(b"HOSTILE-SETUP-0001", case_id.encode())
    template = template.replace(b"3f6f8a4e-1c2b-4d5e-8f90-a1b2c3d4e5f6", str(uuid.uuid4()).encode())
    template = template.replace(b"<sequenceNumber>3<", b"<sequenceNumber>%d<" % sequence)
    before, after = _split(template, b"</UpdateCase>")
    return Request([before, *_attachments(attachments, text), *_extension(extension), after])


def _attachments(count: int, text: bytes) -> list[bytes]:
    return [part for n in range(1, count + 1) for part in _attachment(n, text)]


def _extension(parts: list[bytes] | None) -> list[bytes]:
    if not parts:
        return []
    return [b'<ext:junk xmlns:ext="' + EXTENSION_NS + b'">', *parts, b"</ext:junk>"]


def junk_text(size: int) -> list[bytes]:
    """``size`` bytes of text for an extension element, as shared 1 MiB parts."""
    block = b"A" * MiB
    return [block] * (size // MiB) + [b"A" * (size % MiB)]


def empty_elements(count: int) -> list[bytes]:
    """``count`` empty extension elements, as shared parts of 100 000 each."""
    block = b"<ext:e/>" * 100_000
    return [block] * (count // 100_000) + [b"<ext:e/>" * (count % 100_000)]
