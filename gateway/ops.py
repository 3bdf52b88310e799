"""The operations listener: ``/health/live``, ``/health/ready``, ``/status`` and ``/metrics`` on plain HTTP.

It runs as a child process of ``gateway serve`` and exits when its parent is gone. Readiness means: the
database answers, its schema is at the newest migration, the SOAP port accepts connections, a serving thread
has been free within ``server.saturation_ms`` (read from the state the serving processes publish,
``gateway.httpworker``), and every other child of ``serve`` is running (read from the state file
``gateway.supervisor`` publishes). It also
reaps expired outbox leases every second or so, so messages of a dead worker go back to the queue even when
no worker runs. Nothing here reads or shows case data.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine, func, select

from gateway import __version__, migrate
from gateway.cases.inbox import inbox_message
from gateway.config import Config
from gateway.db import make_engine, ping
from gateway.delivery import build_store
from gateway.httpworker import WorkerStates, read_worker_states
from gateway.supervisor import CHECK_NAMES, describe_child, read_state, state_path
from gateway.tlscheck import TlsMonitor
from outbox import OutboxStore
from routing import CatalogueStore

__all__ = ["OpsApp", "serve_ops"]

log = logging.getLogger("gateway.ops")


class OpsApp:
    """``supervisor_pid``: the ``gateway serve`` whose children this listener reports (None: standalone).

    Probes and reports read through ``reads`` (a read-only engine: on SQLite it never waits for the write
    lock, so readiness answers while a writer holds the database); the lease reaper writes through
    ``engine``.
    """

    def __init__(
        self, config: Config, engine: Engine, supervisor_pid: int | None = None, reads: Engine | None = None
    ) -> None:
        self.config = config
        self.engine = reads or engine
        self.supervisor_pid = supervisor_pid
        self.store = build_store(config, engine)
        self.reports = build_store(config, self.engine)
        self.started = time.time()
        self.tls = TlsMonitor(config)

    def children(self) -> dict[str, dict[str, Any]] | None:
        """The children of ``serve`` as it last published them; None when standalone or unpublished."""
        if self.supervisor_pid is None:
            return None
        state = read_state(state_path(self.config))
        if state is None or state.get("supervisorPid") != self.supervisor_pid:
            return None
        children = state.get("children")
        return children if isinstance(children, dict) else None

    def _child_checks(self) -> dict[str, str]:
        if self.supervisor_pid is None:
            return {}
        children = self.children()
        if children is None:
            return {"children": f"no state published by gateway serve (pid {self.supervisor_pid})"}
        now = int(time.time() * 1000)
        return {
            CHECK_NAMES.get(role, role): describe_child(child, now)
            for role, child in sorted(children.items())
            if role != "ops" and isinstance(child, dict)
        }

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
        children = self._child_checks()
        serving = self._serving_check()
        tls, tls_state = self.tls()
        return {
            "ready": database
            and revision == head
            and soap
            and serving == "ok"
            and tls
            and all(v == "ok" for v in children.values()),
            "checks": {
                "database": "ok" if database else "unreachable",
                "schema": "ok" if revision == head else f"at {revision}, expected {head}",
                "soapListener": "ok" if soap else "not accepting connections",
                "servingCapacity": serving,
                "tls": tls_state,
                **children,
            },
        }

    def serving(self) -> WorkerStates:
        """What the serving processes published: busy threads, connections closed by reason."""
        return read_worker_states(self.config.server.runtime_dir)

    def _serving_check(self) -> str:
        busy_for = self.serving().saturated_for(time.time())
        if busy_for * 1000 >= self.config.server.saturation_ms:
            return f"saturated: every serving thread busy for {busy_for:.0f} s"
        return "ok"

    def routing_version(self) -> dict[str, Any]:
        try:
            active = CatalogueStore(self.engine).active_version()
        except Exception:  # noqa: BLE001 - status must answer even when the database does not
            return {"version": None, "hash": None, "error": "database unreachable"}
        return {"version": active[0] if active else None, "hash": active[1] if active else None}

    def outbox_status(self) -> dict[str, Any]:
        try:
            return self.reports.status()
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
            if self.supervisor_pid is not None:
                body["supervisor"] = {"pid": self.supervisor_pid}
                body["children"] = self.children()
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
        lines += self._child_metrics()
        lines += self._serving_metrics()
        if not database:
            return "\n".join(lines) + "\n"
        routing = self.routing_version()
        outbox = self.reports.status()
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
        lines += [
            "# HELP caf_outbox_quarantined Messages whose worker died with them, retried alone.",
            "# TYPE caf_outbox_quarantined gauge",
            f"caf_outbox_quarantined {outbox['quarantine']['count']}",
        ]
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

    def _serving_metrics(self) -> list[str]:
        states = self.serving()
        lines = [
            "# HELP caf_connections_closed_total Connections the serving processes closed, by reason.",
            "# TYPE caf_connections_closed_total counter",
        ]
        lines += [
            f'caf_connections_closed_total{{reason="{reason}"}} {count}'
            for reason, count in sorted(states.closed.items())
        ]
        lines += [
            "# HELP caf_serving_threads_busy Serving threads with a request, over all serving processes.",
            "# TYPE caf_serving_threads_busy gauge",
            f"caf_serving_threads_busy {sum(int(w.get('busy', 0)) for w in states.workers)}",
            "# HELP caf_serving_saturated_seconds How long every serving thread has been busy.",
            "# TYPE caf_serving_saturated_seconds gauge",
            f"caf_serving_saturated_seconds {states.saturated_for(time.time()):.1f}",
        ]
        return lines

    def _child_metrics(self) -> list[str]:
        children = self.children()
        if children is None:
            return []
        up = [
            "# HELP caf_child_up 1 while a child process of gateway serve is running.",
            "# TYPE caf_child_up gauge",
        ]
        restarts = [
            "# HELP caf_child_restarts_total Restarts of a child process of gateway serve.",
            "# TYPE caf_child_restarts_total counter",
        ]
        for role, child in sorted(children.items()):
            up.append(f'caf_child_up{{role="{role}"}} {1 if child.get("state") == "running" else 0}')
            restarts.append(f'caf_child_restarts_total{{role="{role}"}} {int(child.get("restarts") or 0)}')
        return up + restarts


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


def _reap_forever(store: OutboxStore, stop: threading.Event, interval_s: float) -> None:
    """Return expired leases to the queue, whether or not any worker runs (their claims reap too)."""
    failing = False
    while not stop.wait(interval_s):
        try:
            store.reap()
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while: say so once
            if not failing:
                log.warning(
                    "lease reaper: database unreachable; retrying",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            failing = True
            continue
        if failing:
            log.info("lease reaper: database reachable again")
        failing = False


def serve_ops(config: Config, parent_pid: int | None = None) -> int:
    host, _, port = config.ops.bind.rpartition(":")
    engine = make_engine(config.database.url, pool_size=1)
    reads = make_engine(config.database.url, pool_size=2, read_only=True)
    app = OpsApp(config, engine, supervisor_pid=parent_pid, reads=reads)
    server = make_server(
        host.strip("[]"), int(port), app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    stop = threading.Event()

    def shut_down() -> None:
        stop.set()
        server.shutdown()

    if parent_pid is not None:

        def watch_parent() -> None:
            while os.getppid() == parent_pid and not stop.is_set():
                time.sleep(0.5)
            shut_down()

        threading.Thread(target=watch_parent, daemon=True).start()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this (the main) thread
        threading.Thread(target=shut_down, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    interval = max(0.25, min(1.0, config.outbox.lease_ms / 4000))
    reaper = threading.Thread(
        target=_reap_forever, args=(app.store, stop, interval), name="lease-reaper", daemon=True
    )
    reaper.start()
    log.info("operations listener started", extra={"fields": {"bind": config.ops.bind}})
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        stop.set()
        reaper.join(timeout=5)
        server.server_close()
        engine.dispose()
        reads.dispose()
    return 0
