"""Request size limits over real gunicorn and mutual TLS: the largest legal cases arrive, oversize bodies are
refused before they are read whole, and large bodies beyond the process's slots are answered VP009 in time.

The bodies are generated here (tests/large_requests.py). Refusals are sent on a raw TLS socket that sends
only the start of the body and then waits for the answer, which proves the gateway answered without reading
the rest. The unit table in tests/unit/test_request_limits.py covers every limit in process.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.certs import ExamplePki
from tests.integration.conftest import inbox_count, session_for
from tests.integration.harness import GatewayProcess
from tests.large_requests import (
    MiB,
    Request,
    base64_text,
    empty_elements,
    junk_text,
    pdf_content,
    register_case,
    update_case,
)

pytestmark = pytest.mark.slow
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
FAULT_DETAIL = "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:gateway:fault:1}"
NO_DELIVERY = {"outbox": {"run_in_serve": False}}


class _Sized:
    """A streamed body with a known length, so requests sends Content-Length rather than chunks."""

    def __init__(self, request: Request) -> None:
        self._stream = request.stream()
        self._length = request.length

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)


def _fault(content: bytes) -> tuple[str, str, str]:
    """(faultstring, platform code, retryable) of a fault answer."""
    root = etree.fromstring(content)
    return (
        root.findtext(".//faultstring") or "",
        root.findtext(f".//{FAULT_DETAIL}code") or "",
        root.findtext(f".//{FAULT_DETAIL}retryable") or "",
    )


def test_the_largest_legal_requests_arrive(
    db_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    """RegisterCase with 5 attachments of 20 MiB (Content-Length), then UpdateCase of that case with 10
    (chunked, CRLF-wrapped base64), both answered OK over mutual TLS."""
    gateway = start_gateway(db_url, **NO_DELIVERY)
    text = base64_text(pdf_content(20 * MiB))
    register = register_case(attachments=5, text=text, case_id="SIZE-WIRE-0001")
    with session_for(pki, "1177") as session:
        response = session.post(
            gateway.url + PATH, data=_Sized(register), headers={"Content-Type": "text/xml"}, timeout=240
        )
    assert response.status_code == 200, response.text[-800:]
    assert b"<core:resultCode>OK</core:resultCode>" in response.content

    crlf = base64_text(pdf_content(20 * MiB), width=64, newline=b"\r\n")
    update = update_case("SIZE-WIRE-0001", attachments=10, text=crlf)
    with session_for(pki, "deviation-a") as session:
        response = session.post(
            gateway.url + PATH, data=update.chunks(), headers={"Content-Type": "text/xml"}, timeout=240
        )
    assert response.status_code == 200, response.text[-800:]
    assert b"<core:resultCode>OK</core:resultCode>" in response.content
    assert inbox_count(db_url) == 2


class _RawClient:
    """One TLS connection that sends a request head and part of a body, then reads the answer."""

    def __init__(self, pki: ExamplePki, port: int, who: str = "1177") -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.clients[who].cert), str(pki.clients[who].key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")

    def send_head(self, *, length: int | None) -> None:
        framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"{framing}\r\n\r\n"
        )
        self.sock.sendall(head.encode())

    def send(self, data: bytes, *, chunked: bool = False) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

    def answer(self) -> tuple[int, bytes]:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = self.sock.recv(65536)
            assert data, "connection closed before an answer"
            buffer += data
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(body) < length:
            data = self.sock.recv(65536)
            assert data, "connection closed in the middle of the answer"
            body += data
        return int(lines[0].split()[1]), body[:length]

    def close(self) -> None:
        self.sock.close()


def _start_of(request: Request, size: int) -> Iterator[bytes]:
    sent = 0
    for chunk in request.chunks(256 * 1024):
        if sent >= size:
            return
        yield chunk
        sent += len(chunk)


# (name, request, declared Content-Length (None: chunked; -1: the true length), bytes sent before the
#  answer is read (None: all of it), part of the faultstring). The serving worker reads a whole request
#  before a thread serves it (docs/adr/0004), spooling a large body to a private temporary file, so a body
#  within the largest legal size is refused once it has arrived (still before a tree is built or anything is
#  stored); only one announced larger than any contract allows is refused at its head, unread.
REFUSALS = [
    (
        "a Content-Length above the largest legal body, no body sent",
        register_case(),
        289_406_997,
        0,
        "exceeds the largest request the contracts allow: 289406996 bytes",
    ),
    (
        "32 MiB in an extension element",
        register_case(extension=junk_text(32 * MiB)),
        -1,
        None,
        "more than 1048576 bytes outside attachment data",
    ),
    (
        "32 MiB in an extension element, chunked",
        register_case(extension=junk_text(32 * MiB)),
        None,
        None,
        "more than 1048576 bytes outside attachment data",
    ),
    (
        "8 million empty elements",
        register_case(extension=empty_elements(8_000_000)),
        -1,
        None,
        "more than 10000 elements",
    ),
]


def test_oversize_requests_are_refused_before_anything_is_stored(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url, **NO_DELIVERY)
    for name, request, declared, sent, reason in REFUSALS:
        client = _RawClient(pki, gateway.port)
        try:
            chunked = declared is None
            client.send_head(length=None if chunked else (request.length if declared == -1 else declared))
            for chunk in _start_of(request, request.length if sent is None else sent):
                client.send(chunk, chunked=chunked)
            if chunked and sent is None:
                client.sock.sendall(b"0\r\n\r\n")
            status, content = client.answer()
        finally:
            client.close()
        faultstring, code, _ = _fault(content)
        assert (status, code) == (500, "VP015"), name
        assert reason in faultstring, (name, faultstring)
        assert "(logId " in faultstring, name
    # A client that sends the whole body before it reads (as most do) gets the fault too, not a reset:
    # the gateway reads and drops the rest of a refused body for a few seconds at most.
    junk = register_case(extension=junk_text(32 * MiB))
    with session_for(pki, "1177") as session:
        response = session.post(
            gateway.url + PATH, data=_Sized(junk), headers={"Content-Type": "text/xml"}, timeout=60
        )
    faultstring, code, _ = _fault(response.content)
    assert (response.status_code, code) == (500, "VP015")
    assert "more than 1048576 bytes outside attachment data" in faultstring
    assert inbox_count(sqlite_url) == 0


def test_large_requests_beyond_the_slots_are_answered_vp009_in_time(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    """One worker with one large-request slot: while a large request holds it (here: waiting for a
    database write lock that the test holds), another large request is answered VP009 (retryable) after
    the configured wait, and gets through once the slot is free. (A slow upload holds no slot: the serving
    worker reads the whole body before a thread serves it.)"""
    workdir = tmp_path / "gw"
    workdir.mkdir()
    extra = {**NO_DELIVERY, "soap": {"max_large_requests": 1, "large_request_wait_ms": 1500}}
    gateway = GatewayProcess(pki, sqlite_url, workdir, workers=1, extra=extra).start()
    try:
        text = base64_text(pdf_content(3 * MiB))
        first = register_case(attachments=1, text=text, case_id="SIZE-SLOW-0001")
        answers: list[int] = []
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the first request takes the slot, then waits for this lock

        def send_first() -> None:
            with session_for(pki, "1177") as session:
                answers.append(
                    session.post(
                        gateway.url + PATH,
                        data=_Sized(first),
                        headers={"Content-Type": "text/xml"},
                        timeout=60,
                    ).status_code
                )

        sender = threading.Thread(target=send_first, daemon=True)
        sender.start()
        time.sleep(2)

        other = register_case(attachments=1, text=text, case_id="SIZE-OTHER-0001")
        with session_for(pki, "1177") as session:
            started = time.monotonic()
            busy = session.post(
                gateway.url + PATH, data=_Sized(other), headers={"Content-Type": "text/xml"}, timeout=60
            )
            waited = time.monotonic() - started
        holder.execute("ROLLBACK")
        holder.close()
        faultstring, code, retryable = _fault(busy.content)
        assert (busy.status_code, code, retryable) == (500, "VP009", "true"), faultstring
        assert "busy with other large requests (1 per process" in faultstring
        assert waited < 25  # well under the platform's 29 s (the configured wait is 1.5 s)

        sender.join(timeout=60)
        assert answers == [200]
        with session_for(pki, "1177") as session:
            again = session.post(
                gateway.url + PATH, data=_Sized(other), headers={"Content-Type": "text/xml"}, timeout=60
            )
        assert again.status_code == 200, again.text[-500:]
        assert inbox_count(sqlite_url) == 2
    finally:
        gateway.stop()
