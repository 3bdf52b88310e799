"""A scripted SOAP receiver over mutual TLS, for delivery tests: it records every arrival durably, then
answers as its mode file says (ok, 500, 503 + Retry-After, SOAP faults, ERROR result, hang, reset, slow).

Run: python -m tests.integration.receiver --port P --db FILE --mode-file FILE --cert C --key K --ca CA
The mode file is JSON, re-read when it changes: {"mode": "ok", "fail_rate": 0.2, "fail_mode": "500",
"seed": 1, "delay_ms": 0, "retry_after": 1, "by_case": {"CASE-1": "hang"}}.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sqlite3
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
CORE = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:1"


class Modes:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp = -1.0
        self.data: dict[str, Any] = {"mode": "ok"}
        self.rng = random.Random(0)
        self.lock = threading.Lock()

    def pick(self, case_id: str) -> tuple[str, dict[str, Any]]:
        with self.lock:
            try:
                stamp = self.path.stat().st_mtime_ns
                if stamp != self.stamp:
                    self.data = json.loads(self.path.read_text() or "{}")
                    self.rng = random.Random(self.data.get("seed", 0))
                    self.stamp = stamp
            except (OSError, ValueError):
                pass
            data = dict(self.data)
            mode = data.get("by_case", {}).get(case_id) or data.get("mode", "ok")
            if mode == "ok" and data.get("fail_rate") and self.rng.random() < float(data["fail_rate"]):
                mode = data.get("fail_mode", "500")
        return mode, data


def _response(operation: str, code: str = "OK") -> bytes:
    ns = f"urn:riv-application:supportprocess:logistics:complaintsandfeedback:{operation}Responder:1"
    error = "<core:errorCode>APPLICATION_ERROR</core:errorCode>" if code == "ERROR" else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        f'<{operation}Response xmlns="{ns}" xmlns:core="{CORE}">'
        f"<result><core:resultCode>{code}</core:resultCode>"
        f"{error}<core:logId>00000000-0000-4000-8000-000000000000</core:logId></result>"
        f"</{operation}Response></soap:Body></soap:Envelope>"
    ).encode()


def _fault(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}"><soap:Body><soap:Fault>'
        f"<faultcode>soap:{code}</faultcode><faultstring>scripted {code} fault</faultstring>"
        f"</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        root = etree.fromstring(
            body, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        )
        payload = root.find(f"{{{SOAP}}}Body")[0]
        operation = etree.QName(payload).localname
        case_id = payload.findtext("{*}caseId") or ""
        sequence = int(payload.findtext("{*}sequenceNumber") or 0)
        mode, data = self.server.modes.pick(case_id)
        key = self.headers.get("x-caf-idempotency-key") or ""
        with self.server.lock:
            calls = self.server.active.setdefault(case_id, [])
            calls.append(key)
            # distinct messages of this case in progress (a message resent after a lost lease may overlap
            # with its own first call; two different messages of one case must never overlap)
            active = len(set(calls))
        try:
            self._answer(body, root, payload, operation, case_id, sequence, mode, data, active)
        finally:
            with self.server.lock:
                self.server.active[case_id].remove(key)

    def _answer(
        self,
        body: bytes,
        root: Any,
        payload: Any,
        operation: str,
        case_id: str,
        sequence: int,
        mode: str,
        data: dict[str, Any],
        active: int,
    ) -> None:
        peer = self.connection.getpeercert(binary_form=True)
        serial = x509.load_der_x509_certificate(peer).subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        self.server.record(
            (
                time.time_ns() // 1000,
                operation,
                case_id,
                sequence,
                self.headers.get("x-caf-idempotency-key"),
                self.headers.get("x-skltp-correlation-id"),
                self.headers.get("x-rivta-original-serviceconsumer-hsaid"),
                root.findtext(f"{{{SOAP}}}Header/{{urn:riv:itintegration:registry:1}}LogicalAddress"),
                str(serial[0].value) if serial else None,
                self.headers.get("SOAPAction"),
                mode,
                active,
                body,
            )
        )
        if mode.startswith("slow:"):
            time.sleep(int(mode.split(":")[1]) / 1000)
            mode = "ok"
        if data.get("delay_ms"):
            time.sleep(int(data["delay_ms"]) / 1000)
        if mode == "hang":
            time.sleep(3600)
            return
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        status, answer, headers = 200, _response(operation), {}
        if mode == "500":
            status, answer = 500, b"<html>internal error</html>"
        elif mode == "503":
            status, answer = 503, b"busy"
            headers["Retry-After"] = str(data.get("retry_after", 1))
        elif mode == "fault-client":
            status, answer = 500, _fault("Client")
        elif mode == "fault-server":
            status, answer = 500, _fault("Server")
        elif mode == "error-result":
            answer = _response(operation, "ERROR")
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(answer)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, db: Path, modes: Modes, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.modes = modes
        self.context = context
        self.db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS arrival (id INTEGER PRIMARY KEY, at_us INTEGER, operation TEXT, "
            "case_id TEXT, sequence INTEGER, idempotency_key TEXT, correlation_id TEXT, "
            "original_consumer TEXT, "
            "logical_address TEXT, client_hsa_id TEXT, soap_action TEXT, mode TEXT, concurrent INTEGER, "
            "body BLOB)"
        )
        self.lock = threading.Lock()
        self.active: dict[str, list[str]] = {}

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def record(self, row: tuple[Any, ...]) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO arrival (at_us, operation, case_id, sequence, idempotency_key, correlation_id, "
                "original_consumer, logical_address, client_hsa_id, soap_action, mode, concurrent, body) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--mode-file", type=Path, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(args.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    server = Server(args.port, args.db, Modes(args.mode_file), context)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
