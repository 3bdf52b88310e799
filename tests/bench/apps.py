"""WSGI apps for benchmarks: the accept-path baseline and a fast receiver.

The baseline does what any RIV-TA endpoint must do and nothing more: secure parse, validate the payload
against the same XSD with lxml, answer a fixed OK. No database, no routing, no domain rules.
The fast receiver answers OK to every delivery and remembers when each case arrived (for latency).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree
from sqlalchemy import Connection

from contracts import SchemaValidator, load_registry
from gateway.cases.groupcommit import GroupCommit
from gateway.config import Config
from gateway.db import make_engine

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OK = (
    b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soap:Body><RegisterCaseResponse xmlns="urn:riv-application:supportprocess:logistics:'
    b'complaintsandfeedback:RegisterCaseResponder:1" '
    b'xmlns:core="urn:riv-application:supportprocess:logistics:complaintsandfeedback:1">'
    b"<result><core:resultCode>OK</core:resultCode><core:logId>00000000-0000-4000-8000-000000000000</core:logId>"
    b"</result></RegisterCaseResponse></soap:Body></soap:Envelope>"
)


def baseline_app(_config: Config) -> Callable[..., Iterable[bytes]]:
    registry = load_registry()
    validator = SchemaValidator()
    local = threading.local()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        parser = getattr(local, "parser", None)
        if parser is None:
            parser = local.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        root = etree.fromstring(body, parser)
        payload = root.find(f"{{{SOAP}}}Body")[0]
        contract = registry[payload.tag]
        assert not validator.errors(contract, payload)
        start_response(
            "200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(OK)))]
        )
        return [OK]

    return app


def durable_app(config: Config) -> Callable[..., Iterable[bytes]]:
    """The baseline plus the least an endpoint that acknowledges only what is stored must do.

    Each validated request is stored as one row in SQLite (WAL, ``synchronous=FULL``) with the gateway's
    own engine settings, group commit and writer lock before it answers: the cost of durability alone,
    without the gateway's rules, routing, hashing, case record and outbox. A reference point for the
    accept figures, not the baseline of their ratios.
    """
    engine = make_engine(config.database.url, pool_size=4)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS stored (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
        )
    commits = GroupCommit(engine)
    validate = baseline_app(config)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        answer = validate(environ, start_response)

        def store(conn: Connection) -> None:
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "INSERT INTO stored (payload) VALUES (?)", (body,)
            )

        commits.run(store)
        return answer

    return app


def receiver_app(_config: Config) -> Callable[..., Iterable[bytes]]:
    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            with lock:
                data = json.dumps(arrivals).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
            )
            return [data]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        now = time.time()
        start = body.find(b"<caseId>")
        if start >= 0:
            case_id = body[start + 8 : body.find(b"</caseId>", start)].decode()
            with lock:
                arrivals.setdefault(case_id, now)
        start_response(
            "200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(OK)))]
        )
        return [OK]

    return app
