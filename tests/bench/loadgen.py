"""A lean keep-alive load generator over mutual TLS: processes × threads, one persistent connection each.

Each request is pre-rendered bytes (only the caseId changes), each response is read by Content-Length, so
the generator spends little CPU per call; its own CPU time is measured and reported, with the concurrency
it really achieved (connections that completed at least one request).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    ca: str
    cert: str
    key: str


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    generator_cpu_s: float
    connections_used: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _context(t: Target) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(t.ca)
    ctx.load_cert_chain(t.cert, t.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _read_response(sock: ssl.SSLSocket, buffer: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer.extend(chunk)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        body.extend(chunk)
    buffer[:] = body[length:]
    return status, bytes(body[:length])


def _thread(
    t: Target, template: tuple[bytes, bytes], ident: str, stop_at: float, start_at: float, out: list[Any]
) -> None:
    ctx = _context(t)
    latencies: list[float] = []
    errors = 0
    n = 0
    try:
        raw = socket.create_connection((t.host, t.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
    except OSError:
        out.append((0, 1, []))
        return
    buffer = bytearray()
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        body = template[0] + f"{ident}-{n}".encode() + template[1]
        n += 1
        request = (
            f"POST {t.path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        try:
            sock.sendall(request)
            status, answer = _read_response(sock, buffer)
        except OSError:
            errors += 1
            break
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200 or b">OK<" not in answer:
            errors += 1
    sock.close()
    out.append((len(latencies), errors, latencies))


def _process(
    t: Target,
    template: tuple[bytes, bytes],
    prefix: str,
    threads: int,
    stop_at: float,
    start_at: float,
    queue: Any,
) -> None:
    out: list[Any] = []
    workers = [
        threading.Thread(target=_thread, args=(t, template, f"{prefix}{i}", stop_at, start_at, out))
        for i in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu = os.times()
    queue.put((out, cpu.user + cpu.system))


def run_load(
    t: Target, template: tuple[bytes, bytes], concurrency: int, seconds: float, tag: str
) -> LoadResult:
    """``template`` is the request body split where the unique caseId goes."""
    processes = min(concurrency, 4)
    per = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 1.0
    stop_at = start_at + seconds
    procs = [
        ctx.Process(target=_process, args=(t, template, f"{tag}-{i}-", n, stop_at, start_at, queue))
        for i, n in enumerate(per)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    latencies: list[float] = []
    requests = errors = used = 0
    cpu = 0.0
    for out, proc_cpu in results:
        cpu += proc_cpu
        for count, errs, lats in out:
            requests += count
            errors += errs
            used += 1 if count else 0
            latencies.extend(lats)
    return LoadResult(requests, errors, seconds, latencies, cpu, used)
