"""Where one HTTP/1.1 request ends in a stream of bytes, found without a thread and without trusting the peer.

The serving worker (``gateway.httpworker``) reads a connection's bytes in its event loop and hands the
connection to a serving thread only once a whole request has arrived. ``RequestFramer`` is fed those bytes as
they come and says how many of them belong to the request, when its head is complete, how its body is framed
(``Content-Length`` or ``chunked``) and when it ends, so that pipelined bytes after it stay for the next
one. It keeps the head (to read the framing headers) and a few bytes of chunk framing, never the body: the
caller stores the bytes. It does not interpret the request beyond framing: gunicorn's parser reads the
complete request again in the serving thread, with its own limits. Anything ambiguous about framing (both
``Content-Length`` and ``Transfer-Encoding``, two different lengths, a transfer coding other than
``chunked``, a malformed chunk size) is refused here, because two parsers that disagree on where a request
ends are a request-smuggling hole.

Nothing here reads a clock or a socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Framing", "RequestFramer", "Verdict"]

_HEAD_END = b"\r\n\r\n"
_MAX_LINE = 1024  # a chunk-size or trailer line
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Framing(enum.Enum):
    NONE = "none"  # no body
    LENGTH = "length"
    CHUNKED = "chunked"


@dataclass(frozen=True)
class Verdict:
    """A refusal: the HTTP status to answer, a short reason (a label for the counters) and, for a body
    announced too large, its announced length."""

    status: int
    reason: str
    length: int | None = None


class _State(enum.Enum):
    HEAD = "head"
    LENGTH = "length"  # body bytes left: _left
    CHUNK_SIZE = "chunk-size"  # a chunk-size line in _line
    CHUNK_DATA = "chunk-data"  # chunk bytes left: _left
    CHUNK_END = "chunk-end"  # the CRLF after chunk data, in _line
    TRAILER = "trailer"  # trailer lines after the last chunk, until an empty one
    DONE = "done"


class RequestFramer:
    """Incremental framing of one request: ``feed`` each received piece until ``complete``.

    ``max_head`` caps the request line and headers, ``max_body`` the body (announced or received).
    """

    def __init__(self, *, max_head: int, max_body: int) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.head = bytearray()
        self.framing = Framing.NONE
        self.expects_continue = False
        self.received = 0  # bytes of this request so far, head included
        self.body_received = 0  # bytes after the head (chunk framing included)
        self._state = _State.HEAD
        self._left = 0
        self._line = bytearray()

    @property
    def head_complete(self) -> bool:
        return self._state is not _State.HEAD

    @property
    def complete(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes) -> tuple[int, Verdict | None]:
        """How many bytes of ``data`` belong to the request (the rest follows it), and a refusal if any."""
        used = 0
        view = memoryview(data)
        while used < len(view) and self._state is not _State.DONE:
            step, verdict = self._step(view[used:])
            used += step
            self.received += step
            if self._state is not _State.HEAD:
                self.body_received = self.received - len(self.head)
            if verdict is not None:
                return used, verdict
        if self._state is _State.HEAD and len(self.head) > self.max_head:
            return used, Verdict(431, "head-too-large")
        return used, None

    # -- one step: consume from the start of ``data`` within the current state -----------------------------
    def _step(self, data: memoryview) -> tuple[int, Verdict | None]:
        state = self._state
        if state is _State.HEAD:
            return self._step_head(data)
        if state in (_State.LENGTH, _State.CHUNK_DATA):
            take = min(self._left, len(data))
            self._left -= take
            if not self._left:
                self._state = _State.DONE if state is _State.LENGTH else _State.CHUNK_END
            return take, None
        return self._step_line(data)

    def _step_head(self, data: memoryview) -> tuple[int, Verdict | None]:
        before = len(self.head)
        self.head += data
        at = self.head.find(_HEAD_END, max(0, before - 3))
        if at < 0:
            return len(data), None
        end = at + 4
        del self.head[end:]
        if end > self.max_head:
            return end - before, Verdict(431, "head-too-large")
        return end - before, self._read_framing(bytes(self.head[:at]))

    def _read_framing(self, head: bytes) -> Verdict | None:
        lines = head.lstrip(b"\r\n").split(b"\r\n")  # blank lines before a request are tolerated
        request_line = lines[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            return Verdict(400, "bad-request-line")
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                return Verdict(400, "bad-header")
            key = name.lower()
            value = value.strip()
            if key == b"content-length":
                lengths.update(v.strip() for v in value.split(b","))
            elif key == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
            elif key == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = True
        if codings:
            if lengths:
                return Verdict(400, "length-and-chunked")
            if codings != [b"chunked"]:
                return Verdict(501, "transfer-coding")
            self.framing = Framing.CHUNKED
            self._state = _State.CHUNK_SIZE
            return None
        if len(lengths) > 1:
            return Verdict(400, "conflicting-lengths")
        length = 0
        if lengths:
            value = next(iter(lengths))
            if not value.isdigit() or len(value) > 15:
                return Verdict(400, "bad-length")
            length = int(value)
        if length > self.max_body:
            return Verdict(413, "body-too-large", length)
        if length:
            self.framing, self._left, self._state = Framing.LENGTH, length, _State.LENGTH
        else:
            self._state = _State.DONE
        return None

    def _step_line(self, data: memoryview) -> tuple[int, Verdict | None]:
        """Collect one CRLF-ended line (a chunk size, the CRLF after chunk data, a trailer); act on it."""
        before = len(self._line)
        self._line += data[: _MAX_LINE + 2]
        at = self._line.find(b"\r\n", max(0, before - 1))
        if at < 0:
            if len(self._line) > _MAX_LINE:
                return len(data), Verdict(400, "bad-chunk")
            return len(data), None
        used = at + 2 - before
        line = bytes(self._line[:at])
        self._line.clear()
        state = self._state
        if state is _State.CHUNK_END:
            if line:
                return used, Verdict(400, "bad-chunk")
            self._state = _State.CHUNK_SIZE
            return used, None
        if state is _State.TRAILER:
            if not line:
                self._state = _State.DONE
            return used, None
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 15 or not _HEX.issuperset(size_text):
            return used, Verdict(400, "bad-chunk")
        size = int(size_text, 16)
        if size == 0:
            self._state = _State.TRAILER
            return used, None
        if self.body_received + used + size > self.max_body:
            return used, Verdict(413, "body-too-large")
        self._left, self._state = size, _State.CHUNK_DATA
        return used, None
