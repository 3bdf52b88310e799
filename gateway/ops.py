"""The operations listener: ``/health/live``, ``/health/ready``, ``/status`` and ``/metrics`` on plain HTTP.

It runs as a child process of ``gateway serve`` and exits when its parent is gone. Readiness means: the
database answers, its schema is at the newest migration, and the SOAP port accepts connections. Nothing here
reads or shows case data.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine, func, select

from gateway import __version__, migrate
from gateway.cases.inbox import inbox_message
from gateway.config import Config
from gateway.db import make_engine, ping
from outbox import OutboxStore
from routing import CatalogueStore

__all__ = ["OpsApp", "serve_ops"]

log = logging.getLogger("gateway.ops")


class OpsApp:
    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.started = time.time()

    def _soap_port_open(self) -> bool:
        host, _, port = self.config.server.bind.rpartition(":")
        host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host.strip("[]")  # noqa: S104 - a probe
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except OSError:
            return False

    def readiness(self) -> dict[str, Any]:
        database = ping(self.engine)
        try:
            revision = migrate.current_revision(self.engine) if database else None
        except Exception:  # noqa: BLE001 - a vanished database between the two calls
            database, revision = False, None
        head = migrate.head_revision()
        soap = self._soap_port_open()
        return {
            "ready": database and revision == head and soap,
            "checks": {
                "database": "ok" if database else "unreachable",
                "schema": "ok" if revision == head else f"at {revision}, expected {head}",
                "soapListener": "ok" if soap else "not accepting connections",
            },
        }

    def routing_version(self) -> dict[str, Any]:
        try:
            active = CatalogueStore(self.engine).active_version()
        except Exception:  # noqa: BLE001 - status must answer even when the database does not
            return {"version": None, "hash": None, "error": "database unreachable"}
        return {"version": active[0] if active else None, "hash": active[1] if active else None}

    def outbox_status(self) -> dict[str, Any]:
        try:
            return OutboxStore(self.engine).status()
        except Exception:  # noqa: BLE001 - status must answer even when the database does not
            return {"error": "database unreachable"}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/health/live":
            return _json(start_response, "200 OK", {"live": True})
        if path == "/health/ready":
            state = self.readiness()
            return _json(start_response, "200 OK" if state["ready"] else "503 Service Unavailable", state)
        if path == "/status":
            state = self.readiness()
            body = {
                "version": __version__,
                "uptimeSeconds": round(time.time() - self.started),
                "publicUrl": self.config.server.public_url,
                "routing": self.routing_version(),
                "outbox": self.outbox_status(),
                **state,
            }
            return _json(start_response, "200 OK", body)
        if path == "/metrics":
            data = self.metrics().encode()
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(data))),
                ],
            )
            return [data]
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def metrics(self) -> str:
        """Prometheus text format, read from the database: the same figures for every process."""
        lines = [
            "# HELP caf_up 1 when the database answers.",
            "# TYPE caf_up gauge",
        ]
        database = ping(self.engine)
        lines.append(f"caf_up {1 if database else 0}")
        if not database:
            return "\n".join(lines) + "\n"
        routing = self.routing_version()
        outbox = OutboxStore(self.engine).status()
        lines += [
            "# HELP caf_routing_version Active routing catalogue version.",
            "# TYPE caf_routing_version gauge",
            f"caf_routing_version {routing.get('version') or 0}",
            "# HELP caf_outbox_messages Outbox messages by destination and status.",
            "# TYPE caf_outbox_messages gauge",
        ]
        for destination, counts in sorted(outbox["destinations"].items()):
            for status, count in sorted(counts.items()):
                lines.append(f'caf_outbox_messages{{destination="{destination}",status="{status}"}} {count}')
        lines += [
            "# HELP caf_outbox_oldest_pending_seconds Age of the oldest undelivered message.",
            "# TYPE caf_outbox_oldest_pending_seconds gauge",
            f"caf_outbox_oldest_pending_seconds {outbox['oldestPendingSeconds'] or 0}",
            "# HELP caf_outbox_breaker_open 1 while a destination's circuit breaker holds deliveries back.",
            "# TYPE caf_outbox_breaker_open gauge",
        ]
        for breaker in outbox["breakers"]:
            lines.append(f'caf_outbox_breaker_open{{destination="{breaker["destination"]}"}} 1')
        with self.engine.connect() as conn:
            received = conn.execute(
                select(inbox_message.c.operation, func.count()).group_by(inbox_message.c.operation)
            ).all()
        lines += [
            "# HELP caf_requests_accepted_total Requests stored in the inbox, by operation.",
            "# TYPE caf_requests_accepted_total counter",
        ]
        lines += [
            f'caf_requests_accepted_total{{operation="{op}"}} {count}' for op, count in sorted(received)
        ]
        return "\n".join(lines) + "\n"


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body, indent=1).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_ops(config: Config, parent_pid: int | None = None) -> int:
    host, _, port = config.ops.bind.rpartition(":")
    engine = make_engine(config.database.url, pool_size=2)
    app = OpsApp(config, engine)
    server = make_server(
        host.strip("[]"), int(port), app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    if parent_pid is not None:

        def watch_parent() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            server.shutdown()

        threading.Thread(target=watch_parent, daemon=True).start()
    log.info("operations listener started", extra={"fields": {"bind": config.ops.bind}})
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        engine.dispose()
    return 0
