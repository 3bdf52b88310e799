"""Connections that misbehave on purpose, held open from other loopback addresses, for availability tests.

Each kind is a way a broken client or an attacker holds a connection: ``idle`` (TCP and nothing more),
``hello-cut`` (half a TLS ClientHello), ``tls-idle`` (a finished handshake with a client certificate, then no
request), ``slow-head`` (a request head one byte at a time), ``length-body`` (a Content-Length body that
never ends) and ``chunked-body`` (a chunked body that never ends). ``Horde.open`` opens them from
127.0.0.2 and up (all of 127.0.0.0/8 is loopback), ``Horde.tick`` keeps the slow ones trickling, and
``Horde.closed_by_server`` says how many the server has closed.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("idle", "hello-cut", "tls-idle", "slow-head", "length-body", "chunked-body")
_TLS_KINDS = ("tls-idle", "slow-head", "length-body", "chunked-body")


def client_hello(ca: Path) -> bytes:
    """The first flight of a real TLS client, made in memory."""
    ctx = ssl.create_default_context(cafile=str(ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@dataclass
class Horde:
    kind: str
    port: int
    ca: Path
    cert: Path
    key: Path
    #: peer addresses and how many connections each opens
    peers: dict[str, int] = field(default_factory=dict)
    sockets: list[socket.socket] = field(default_factory=list)
    refused: int = 0
    _head: bytes = b"POST /rc HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\r\n"
    _sent: dict[int, int] = field(default_factory=dict)

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def _one(self, peer: str, hello: bytes, ctx: ssl.SSLContext) -> socket.socket | None:
        raw = socket.socket()
        raw.bind((peer, 0))
        raw.settimeout(10)
        try:
            raw.connect(("127.0.0.1", self.port))
            if self.kind == "idle":
                return raw
            if self.kind == "hello-cut":
                raw.sendall(hello[: len(hello) // 2])
                return raw
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
            if self.kind == "length-body":
                tls.sendall(self._head.replace(b"\r\n\r\n", b"\r\nContent-Length: 100000\r\n\r\n") + b"<a")
            elif self.kind == "chunked-body":
                tls.sendall(
                    self._head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n") + b"5\r\n<a/>x"
                )
            return tls
        except OSError:
            raw.close()
            return None

    def open(self) -> Horde:
        """Open every connection (in parallel: TLS handshakes cost milliseconds each)."""
        hello = client_hello(self.ca)
        ctx = self._context()
        jobs = [peer for peer, count in self.peers.items() for _ in range(count)]
        with ThreadPoolExecutor(16) as pool:
            for sock in pool.map(lambda p: self._one(p, hello, ctx), jobs):
                if sock is None:
                    self.refused += 1
                else:
                    sock.setblocking(False)
                    self.sockets.append(sock)
        return self

    def tick(self) -> None:
        """Send the next byte of the head on every slow-head connection (call every 2 s)."""
        if self.kind != "slow-head":
            return
        for sock in self.sockets:
            sent = self._sent.get(id(sock), 0)
            if sent < len(self._head) - 1:  # never the last byte
                try:
                    sock.send(self._head[sent : sent + 1])
                    self._sent[id(sock)] = sent + 1
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except OSError:
                    pass

    def closed_by_server(self) -> int:
        """How many of the held connections the server has closed (EOF or reset)."""
        closed = 0
        for sock in self.sockets:
            try:
                data = sock.recv(4096)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except ssl.SSLError:
                closed += 1
                continue
            except OSError:
                closed += 1
                continue
            if not data or data.startswith(b"HTTP/1.1 4"):
                closed += 1
        return closed

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.sockets.clear()


def refused_quickly(port: int, peer: str, count: int, timeout: float = 2.0) -> tuple[int, float]:
    """Open ``count`` TCP connections from ``peer``; how many the server closed within ``timeout``."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind((peer, 0))
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            continue
    started = time.monotonic()
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except (TimeoutError, BlockingIOError):
            pass
        except OSError:
            closed += 1
        finally:
            s.close()
    return closed, time.monotonic() - started
