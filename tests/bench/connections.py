"""``python -m tests.bench.connections``: which component serves our sockets (docs/adr/0004, issue 13).

Starts each candidate of ``tests.bench.connservers`` with the same trivial WSGI app on loopback and measures:

1. ``load``: throughput, p50/p99 and server CPU per 1 000 requests with 1 and 16 keep-alive mTLS clients
   (``tests.bench.loadgen``); every candidate runs between two runs of stock gthread in the same round, and
   the rounds alternate the order, so the VM's drift and other load fall on both sides;
2. ``attack``: for each way of misbehaving in ``tests.integration.attackers`` (1 000 connections from
   127.0.0.2-21, 50 each), a well-behaved client (127.0.0.1, a new connection every 5 requests, 50
   requests/s at most) is timed while they are held, and the server's closing of them is followed;
   then one address opening 400 connections (per-peer limit) and 100 connections/s without a client
   certificate for 10 s;
3. ``checks``: mutual TLS (revoked, expired, foreign CA, no certificate refused), the caller's HSA-id read
   from the verified certificate, a forged certificate header, keep-alive, a 1 MiB body.

Candidates (``--candidates``): ``gthread`` (stock, the baseline), ``guarded`` (the gateway's server with
``gateway.httpworker``), ``twisted``, ``nginx`` and ``haproxy`` (in front of stock gthread), and, when named,
``nginx-verify`` / ``haproxy-verify`` (the forwarded certificate verified on every request, as trusted-proxy
mode does; the plain front names verify each certificate once). Candidates whose parts are missing are
skipped with a message: ``guarded`` needs ``gateway.httpworker``, ``twisted`` an interpreter with Twisted
and pyOpenSSL (``--twisted-python`` or ``BENCH_TWISTED_PYTHON``, default this one), the fronts their
binaries (Debian ``nginx-light``, ``haproxy``). ``BENCH_SWITCH_INTERVAL`` sets every server's GIL switch
interval (an experiment). Writes tests/bench/results/connections-<time>.json and prints the tables. Not
part of ``make test`` or ``make bench``: the load phase takes about 6 minutes (2 rounds), the attack phase
about 12 (stock gthread alone needs 5 of them: it cannot even complete the held handshakes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import select
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.certs import ExamplePki, generate_example_pki
from tests.bench import connservers
from tests.bench.loadgen import Target, _read_response, run_load
from tests.bench.proc import tree_cpu
from tests.integration.attackers import KINDS, Horde, client_hello
from tests.integration.harness import ROOT, free_port

#: ``nginx-verify`` and ``haproxy-verify`` (not run unless named) verify the forwarded certificate on every
#: request, as trusted-proxy mode does today; ``nginx`` and ``haproxy`` verify each certificate once
CANDIDATES = ("gthread", "guarded", "twisted", "nginx", "haproxy")
RESULTS = Path(__file__).resolve().parent / "results"
TEMPLATE = (b"<RegisterCase><caseId>", b"</caseId><text>" + b"x" * 1900 + b"</text></RegisterCase>")
HORDE_PEERS = {f"127.0.0.{i}": 50 for i in range(2, 22)}
#: seconds to go on opening a horde (stock gthread completes one handshake per free thread, each attempt
#: waits 5 s, so opening 1 000 would take minutes)
OPEN_BUDGET = 30.0


def log(message: str) -> None:
    print(f"[connections {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- servers ------------------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cpu(self) -> float:
        return sum(tree_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def available(name: str, twisted_python: str) -> str | None:
    """None when ``name`` can run here, else why not."""
    if name == "guarded" and importlib.util.find_spec("gateway.httpworker") is None:
        return "gateway.httpworker is not in this tree"
    if name == "twisted":
        probe = [twisted_python, "-c", "import twisted.web.wsgi, OpenSSL, cryptography"]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            return f"{twisted_python} lacks twisted, pyOpenSSL or cryptography (--twisted-python)"
    binary = name.removesuffix("-verify")
    if binary in ("nginx", "haproxy") and shutil.which(binary) is None:
        return f"no {binary} binary (Debian package nginx-light / haproxy)"
    return None


def start(name: str, pki: ExamplePki, workdir: Path, twisted_python: str) -> Server:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    out = (work / "server.log").open("wb")
    server = Server(name, port)

    def spawn(argv: list[str]) -> None:
        server.procs.append(subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))

    serve = ["-m", "tests.bench.connservers"]
    common = ["--pki", str(pki.directory), "--workdir", str(work)]
    if name in ("gthread", "guarded"):
        spawn([sys.executable, *serve, name, "--port", str(port), *common])
    elif name == "twisted":
        spawn([twisted_python, *serve, "twisted", "--port", str(port), *common])
    else:
        upstream = free_port()
        backend = "backend-verify" if name.endswith("-verify") else "backend"
        spawn([sys.executable, *serve, backend, "--port", str(upstream), *common])
        if name.startswith("nginx"):
            conf = connservers.nginx_conf(work, port, upstream, pki.directory)
            spawn(
                [
                    "nginx",
                    "-p",
                    str(work),
                    "-c",
                    str(conf),
                    "-e",
                    str(work / "nginx-error.log"),
                    "-g",
                    "daemon off;",
                ]
            )
        else:
            spawn(
                ["haproxy", "-f", str(connservers.haproxy_conf(work, port, upstream, pki.directory)), "-db"]
            )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if request(port, pki, "1177", timeout=2)[0] == 200:
            return server
        if any(p.poll() is not None for p in server.procs):
            break
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} did not start; see {work / 'server.log'}")


# -- a well-behaved client ----------------------------------------------------------------------------------
def client_context(pki: ExamplePki, client: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca_cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        identity = pki.clients[client]
        ctx.load_cert_chain(str(identity.cert), str(identity.key))
    return ctx


def _request_bytes(body: bytes, extra: str = "") -> bytes:
    head = f"POST /rc HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n{extra}"
    head += f"Content-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


def request(
    port: int,
    pki: ExamplePki,
    client: str | None,
    *,
    count: int = 1,
    body: bytes = b"<a/>",
    extra: str = "",
    timeout: float = 10,
) -> tuple[int, bytes]:
    """``count`` requests on one connection: (last status, last answer), or (0, error) when refused."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            client_context(pki, client).wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            buffer = bytearray()
            status, answer = 0, b""
            for _ in range(count):
                tls.sendall(_request_bytes(body, extra))
                status, answer = _read_response(tls, buffer)
            return status, answer
    except (OSError, ValueError, IndexError) as exc:
        return 0, type(exc).__name__.encode()


def _good_client(port: int, pki: ExamplePki, seconds: float, queue: Any) -> None:
    ctx = client_context(pki, "1177")
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    body = TEMPLATE[0] + b"good" + TEMPLATE[1]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
        except OSError as exc:
            failures[type(exc).__name__] += 1
            time.sleep(0.1)
            continue
        buffer = bytearray()
        try:
            for _ in range(5):
                tls.sendall(_request_bytes(body))
                status, _answer = _read_response(tls, buffer)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures[f"HTTP {status}"] += 1
                time.sleep(max(0.0, 0.02 - (time.perf_counter() - started)))
                started = time.perf_counter()
        except (OSError, ValueError) as exc:
            failures[type(exc).__name__] += 1
        finally:
            tls.close()
    queue.put((latencies, dict(failures)))


class GoodClient:
    """The well-behaved 1177 client, in its own process so that the attackers' work does not slow it."""

    def __init__(self, port: int, pki: ExamplePki, seconds: float) -> None:
        self.queue = mp.get_context("fork").Queue()
        self.proc = mp.get_context("fork").Process(target=_good_client, args=(port, pki, seconds, self.queue))
        self.seconds = seconds
        self.proc.start()

    def result(self) -> dict[str, Any]:
        latencies, failures = self.queue.get(timeout=self.seconds + 60)
        self.proc.join()
        ordered = sorted(latencies)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1) if ordered else -1.0

        return {
            "n": len(ordered),
            "failures": sum(failures.values()),
            "why": failures,
            "p50_ms": pct(0.5),
            "p95_ms": pct(0.95),
            "max_ms": pct(1.0),
        }


# -- measurements -------------------------------------------------------------------------------------------
def measure_load(server: Server, pki: ExamplePki, clients: int, seconds: float) -> dict[str, Any]:
    target = Target(
        "127.0.0.1",
        server.port,
        "/rc",
        str(pki.ca_cert),
        str(pki.clients["1177"].cert),
        str(pki.clients["1177"].key),
    )
    before = server.cpu()
    result = run_load(target, TEMPLATE, clients, seconds, f"{server.name}{clients}")
    cpu = server.cpu() - before
    return {
        "load_average": round(os.getloadavg()[0], 1),
        "rps": round(result.rps, 1),
        "p50_ms": round(result.percentile(50), 2),
        "p99_ms": round(result.percentile(99), 2),
        "errors": result.errors,
        "cpu_s_per_1000": round(cpu / result.requests * 1000, 3) if result.requests else None,
    }


def _open_one(
    kind: str, port: int, peer: str, hello: bytes, ctx: ssl.SSLContext, head: bytes
) -> socket.socket | None:
    raw = socket.socket()
    raw.bind((peer, 0))
    raw.settimeout(5)
    try:
        raw.connect(("127.0.0.1", port))
        if kind == "idle":
            return raw
        if kind == "hello-cut":
            raw.sendall(hello[: len(hello) // 2])
            return raw
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        if kind == "length-body":
            tls.sendall(head.replace(b"\r\n\r\n", b"\r\nContent-Length: 100000\r\n\r\n") + b"<a")
        elif kind == "chunked-body":
            tls.sendall(head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n") + b"5\r\n<a/>x")
        return tls
    except OSError:
        raw.close()
        return None


class Held:
    """Misbehaving connections of one kind (``attackers.KINDS``), opened with short timeouts and more
    parallelism than ``attackers.Horde`` (a server that serves each handshake in a thread would otherwise
    keep the opening going for minutes), and followed by one thread that keeps the slow ones trickling (a byte
    every 2 s) and notes when the server closes each one."""

    def __init__(self, kind: str, port: int, pki: ExamplePki) -> None:
        self.kind, self.port, self.pki = kind, port, pki
        self.head = Horde(kind, port, pki.ca_cert, pki.clients["1177"].cert, pki.clients["1177"].key)._head
        self.opened: dict[socket.socket, float] = {}
        self.closed: dict[socket.socket, float] = {}
        self.sent: Counter[socket.socket] = Counter()
        self.not_opened = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)

    def open(self, peers: dict[str, int]) -> None:
        hello, ctx = client_hello(self.pki.ca_cert), client_context(self.pki, "1177")
        self.watcher.start()
        jobs = [peer for peer, count in peers.items() for _ in range(count)]
        give_up = time.monotonic() + OPEN_BUDGET
        with ThreadPoolExecutor(64) as pool:
            for done in pool.map(lambda p: self._open_one(p, hello, ctx, give_up), jobs):
                self.not_opened += not done

    def _open_one(self, peer: str, hello: bytes, ctx: ssl.SSLContext, give_up: float) -> bool:
        if time.monotonic() > give_up:
            return False
        raw = socket.socket()
        raw.bind((peer, 0))
        raw.settimeout(5)
        sock: socket.socket = raw
        try:
            raw.connect(("127.0.0.1", self.port))
            if self.kind == "hello-cut":
                raw.sendall(hello[: len(hello) // 2])
            elif self.kind != "idle":
                sock = ctx.wrap_socket(raw, server_hostname="localhost")
                if self.kind == "length-body":
                    sock.sendall(
                        self.head.replace(b"\r\n\r\n", b"\r\nContent-Length: 100000\r\n\r\n") + b"<a"
                    )
                elif self.kind == "chunked-body":
                    head = self.head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
                    sock.sendall(head + b"5\r\n<a/>x")
        except OSError:
            raw.close()
            return False
        sock.setblocking(False)
        with self.lock:
            self.opened[sock] = time.monotonic()
        return True

    def _is_closed(self, sock: socket.socket) -> bool:
        try:
            data = sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True
        return not data or data.startswith(b"HTTP/1.1 4")

    def _watch(self) -> None:
        last_tick = 0.0
        while not self.stopping.wait(0.25):
            with self.lock:
                open_now = [s for s in self.opened if s not in self.closed]
            tick = self.kind == "slow-head" and time.monotonic() - last_tick >= 2
            last_tick = time.monotonic() if tick else last_tick
            for sock in open_now:
                if self._is_closed(sock):
                    self.closed[sock] = time.monotonic()
                elif tick and self.sent[sock] < len(self.head) - 1:  # never the last byte
                    try:
                        sock.send(self.head[self.sent[sock] : self.sent[sock] + 1])
                        self.sent[sock] += 1
                    except (ssl.SSLWantWriteError, BlockingIOError):
                        pass
                    except OSError:
                        self.closed[sock] = time.monotonic()

    def close(self) -> None:
        self.stopping.set()
        self.watcher.join()
        for sock in self.opened:
            sock.close()

    def ages(self) -> list[float]:
        """Seconds from opening to the server's closing, for each closed connection."""
        return sorted(self.closed[s] - self.opened[s] for s in self.closed)


def measure_attack(server: Server, pki: ExamplePki, kind: str, hold: float) -> dict[str, Any]:
    """Hold 1 000 connections of ``kind`` while the good client runs for ``hold`` s after they are open."""
    started = time.monotonic()
    held = Held(kind, server.port, pki)
    held.open(HORDE_PEERS)
    open_s = time.monotonic() - started
    result = GoodClient(server.port, pki, hold).result()
    held.close()
    ages = held.ages()
    return {
        **result,
        "opened": len(held.opened),
        "not_opened": held.not_opened,
        "open_s": round(open_s, 1),
        "closed": len(ages),
        "closed_after_s": [round(ages[int(q * (len(ages) - 1))], 1) for q in (0, 0.5, 1)] if ages else None,
    }


def measure_peer_limit(server: Server, pki: ExamplePki, count: int = 400) -> dict[str, Any]:
    """One address opens ``count`` idle TCP connections: how many does the server close within 2 s?"""
    good = GoodClient(server.port, pki, 6)
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.99", 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", server.port))
            socks.append(s)
        except OSError:
            s.close()
    connect_failed = count - len(socks)
    time.sleep(2)
    closed = 0
    for s in socks:
        readable, _, _ = select.select([s], [], [], 0)
        if readable:
            try:
                closed += s.recv(1, socket.MSG_DONTWAIT) == b""
            except OSError:
                closed += 1
        s.close()
    return {**good.result(), "attempted": count, "refused": closed + connect_failed}


def _no_cert_attempt(port: int, ctx: ssl.SSLContext) -> str:
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(_request_bytes(b"<a/>"))
            data = tls.recv(64)
            return f"answered {data[9:12].decode(errors='replace')}" if data else "refused"
    except TimeoutError:
        return "hung"
    except OSError:
        return "refused"


def measure_no_cert_flood(
    server: Server, pki: ExamplePki, rate: int = 100, seconds: int = 10
) -> dict[str, Any]:
    good = GoodClient(server.port, pki, seconds + 2)
    ctx = client_context(pki, None)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        outcome = _no_cert_attempt(server.port, ctx)
        with lock:
            outcomes[outcome] += 1

    begin = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        for i in range(rate * seconds):
            time.sleep(max(0.0, begin + i / rate - time.monotonic()))
            pool.submit(one)
    return {
        **good.result(),
        "attempts": rate * seconds,
        "outcomes": dict(outcomes),
        "took_s": round(time.monotonic() - begin, 1),
    }


def checks(server: Server, pki: ExamplePki) -> dict[str, str]:
    port, own = server.port, pki.clients["1177"].hsa_id or ""

    def outcome(status: int, answer: bytes) -> str:
        if not status:
            return "refused in TLS"
        text = answer.decode(errors="replace")
        detail = text.split("<title>")[1].split("<")[0] if "<title>" in text else text.split("<")[0]
        return f"{status} {detail.removeprefix(str(status))}".replace("  ", " ").strip()

    forged = "".join(pki.clients["operator"].cert.read_text().split("\n")[1:-2])
    pem = f"-----BEGIN CERTIFICATE-----{forged}-----END CERTIFICATE-----"
    found = {name: outcome(*request(port, pki, name)) for name in ("1177", "revoked", "expired", "foreign")}
    found["no certificate"] = outcome(*request(port, pki, None))
    found["caller read"] = "yes" if own.encode() in request(port, pki, "1177")[1] else "NO"
    found["1177"] = found["1177"].split(" ")[0]
    status, answer = request(port, pki, "1177", extra=f"{connservers.PROXY_HEADER}: {pem}\r\n")
    found["forged header"] = (
        "impersonated"
        if (pki.clients["operator"].hsa_id or "?").encode() in answer
        else (outcome(status, answer))
    )
    found["keep-alive x3"] = outcome(*request(port, pki, "1177", count=3))
    big = request(port, pki, "1177", body=b"x" * 2**20, timeout=30)
    found["1 MiB body"] = "ok" if big[0] == 200 and b"<n>1048576</n>" in big[1] else outcome(*big)
    return found


# -- phases -------------------------------------------------------------------------------------------------
def phase_load(
    names: list[str], pki: ExamplePki, work: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rows = []
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        sequence = ["gthread"]
        for name in order:
            sequence += [name, "gthread"]
        for position, name in enumerate(sequence):
            server = start(name, pki, work, args.twisted_python)
            try:
                request(server.port, pki, "1177", count=50)
                for clients in (1, 16):
                    figures = measure_load(server, pki, clients, args.seconds)
                    rows.append(
                        {"round": rnd, "position": position, "candidate": name, "clients": clients, **figures}
                    )
                    log(f"load r{rnd} {name:8} c={clients:2} {figures}")
            finally:
                server.stop()
    return rows


def phase_attack(names: list[str], pki: ExamplePki, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in names:
        server = start(name, pki, work, args.twisted_python)
        try:
            entry: dict[str, Any] = {"checks": checks(server, pki)}
            log(f"checks {name}: {entry['checks']}")
            for kind in args.kinds:
                entry[kind] = measure_attack(server, pki, kind, args.hold)
                log(f"attack {name} {kind}: " + json.dumps(entry[kind]))
                recovered = time.monotonic()
                while (
                    request(server.port, pki, "1177", timeout=5)[0] != 200
                    and time.monotonic() - recovered < 60
                ):
                    time.sleep(0.5)
                entry[kind]["recovered_s"] = round(time.monotonic() - recovered, 1)
            entry["peer-limit"] = measure_peer_limit(server, pki)
            log(f"peer-limit {name}: {entry['peer-limit']}")
            entry["no-cert-flood"] = measure_no_cert_flood(server, pki)
            log(f"no-cert-flood {name}: {entry['no-cert-flood']}")
            found[name] = entry
        finally:
            server.stop()
    return found


# -- tables -------------------------------------------------------------------------------------------------
def load_table(rows: list[dict[str, Any]]) -> str:
    """Per candidate and client count: median figures over rounds, and each round's ratio to the mean of the
    two gthread runs around it."""
    lines = [
        "| candidate | clients | req/s | vs gthread (per round) | p50 ms | p99 ms | CPU s / 1000 req "
        "| CPU vs gthread | errors |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    names = list(dict.fromkeys(r["candidate"] for r in rows))
    for name in names:
        for clients in (1, 16):
            mine = [r for r in rows if r["candidate"] == name and r["clients"] == clients]
            ratios: list[float] = []
            cpu_ratios: list[float] = []
            for r in mine:
                near = [
                    b
                    for b in rows
                    if b["candidate"] == "gthread"
                    and b["clients"] == clients
                    and b["round"] == r["round"]
                    and abs(b["position"] - r["position"]) == 1
                ]
                if name != "gthread" and near:
                    ratios.append(r["rps"] / statistics.mean(b["rps"] for b in near))
                    cpu_ratios.append(
                        r["cpu_s_per_1000"] / statistics.mean(b["cpu_s_per_1000"] for b in near)
                    )
            med = {
                k: statistics.median(r[k] for r in mine)
                for k in ("rps", "p50_ms", "p99_ms", "cpu_s_per_1000")
            }
            ratio = ", ".join(f"{x:.2f}" for x in ratios) if ratios else "1 (baseline)"
            cpu_ratio = ", ".join(f"{x:.2f}" for x in cpu_ratios) if cpu_ratios else "1"
            lines.append(
                f"| {name} | {clients} | {med['rps']:.0f} | {ratio} | {med['p50_ms']:.2f} | "
                f"{med['p99_ms']:.2f} | {med['cpu_s_per_1000']:.3f} | {cpu_ratio} | "
                f"{sum(r['errors'] for r in mine)} |"
            )
    return "\n".join(lines)


def _latency(found: dict[str, Any]) -> str:
    return f"{found['p50_ms']} / {found['p95_ms']} / {found['max_ms']}" if found["n"] else "none served"


def attack_table(found: dict[str, Any], kinds: list[str]) -> str:
    lines = [
        "| candidate | held kind | opened | good p50 / p95 / max ms | good n / failures | closed by server |",
        "|---|---|---:|---|---|---|",
    ]
    for name, entry in found.items():
        for kind in kinds:
            a = entry[kind]
            closing = f"{a['closed']}/{a['opened']}"
            if a["closed_after_s"]:
                closing += " after {} / {} / {} s".format(*a["closed_after_s"])
            lines.append(
                f"| {name} | {kind} | {a['opened']} | {_latency(a)} | "
                f"{a['n']} / {a['failures']} | {closing} |"
            )
        p, f = entry["peer-limit"], entry["no-cert-flood"]
        lines.append(
            f"| {name} | one address, {p['attempted']} idle | - | {_latency(p)} | {p['n']} / {p['failures']} "
            f"| refused {p['refused']} within 2 s |"
        )
        lines.append(
            f"| {name} | no cert, 100/s x 10 s | - | {_latency(f)} | "
            f"{f['n']} / {f['failures']} | {f['outcomes']} |"
        )
    return "\n".join(lines)


def checks_table(found: dict[str, Any]) -> str:
    names = list(found)
    keys = list(next(iter(found.values()))["checks"]) if found else []
    lines = ["| check | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {k} | " + " | ".join(found[n]["checks"][k] for n in names) + " |" for k in keys]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--phases", default="load,attack")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seconds", type=float, default=6.0, help="per load level (default 6)")
    parser.add_argument("--hold", type=float, default=16.0, help="seconds each horde is held (default 16)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--twisted-python", default=os.environ.get("BENCH_TWISTED_PYTHON", sys.executable))
    args = parser.parse_args(argv)
    args.kinds = args.kinds.split(",")
    names = []
    for name in args.candidates.split(","):
        why = available(name, args.twisted_python)
        if why:
            log(f"skipping {name}: {why}")
        else:
            names.append(name)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory(prefix="connections-") as tmp:
        work = Path(tmp)
        pki = generate_example_pki(work / "pki")
        phases = args.phases.split(",")
        if "load" in phases:
            results["load"] = phase_load([n for n in names if n != "gthread"], pki, work, args)
            print(load_table(results["load"]), flush=True)
        if "attack" in phases:
            results["attack"] = phase_attack(names, pki, work, args)
            print(checks_table(results["attack"]), flush=True)
            print(attack_table(results["attack"], args.kinds), flush=True)
    results["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"connections-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=1))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
