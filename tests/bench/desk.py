"""``python -m tests.bench.run desk``: the case desk's reads on a full database (issue 14).

100 000 cases in the database: 1 000 desk units (20 under each of 50 care providers) with 100 cases
each, 50 of them open; every case has its RegisterCase in the inbox (the example's payload) and its
messages in the outbox (RECEIVED; a closed case also ANSWER and CLOSED). Measured in-process through
``Desk`` (no HTTP), p50 and p95 over many calls, on SQLite and PostgreSQL: a handler's case list of one
unit (page 1, and only the open cases), a care provider's list (20 units, 2 000 cases: page 1 and 10),
and the view of one case (parsed RegisterCase and timeline). Then the same reads as pages: the web app's
WSGI answer to GET /cases and /cases/<id> (and the JSON API's list), rendered in full, without TLS or
network (the person is given to the app as the listener's certificate check would). No timed asserts:
figures only.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from contracts import load_code_lists, updatecase
from gateway import migrate
from gateway.cases.inbox import inbox_message
from gateway.cases.outgoing import payload_bytes
from gateway.cases.records import case_record
from gateway.config import load_config
from gateway.db import make_engine
from gateway.desk import Desk
from outbox.schema import outbox_message
from routing import Catalogue, CatalogueStore, RoutingHolder

__all__ = ["bench_desk"]

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS, UNITS_PER_PROVIDER, CASES_PER_UNIT, OPEN_PER_UNIT = 50, 20, 100, 50
CALLS = 300
BATCH = 2_000
OPEN_STATES = ("RECEIVED", "IN_PROGRESS", "WAITING_FOR_REPORTER", "ANSWERED")


def _unit(p: int, u: int) -> str:
    return f"SE2321000016-B{p:02d}{u:02d}"


def _catalogue() -> Catalogue:
    data = yaml.safe_load((ROOT / "examples" / "routing.yaml").read_text())
    for p in range(PROVIDERS):
        data["hsa"].append(
            {
                "hsa_id": f"SE2321000016-P{p:02d}",
                "parent": "SE2321000016-R001",
                "kind": "care-provider",
                "name": f"Vårdgivare {p}",
            }
        )
        for u in range(UNITS_PER_PROVIDER):
            data["hsa"].append(
                {
                    "hsa_id": _unit(p, u),
                    "parent": f"SE2321000016-P{p:02d}",
                    "kind": "unit",
                    "name": f"Mottagning {p}-{u}",
                }
            )
    return Catalogue.from_dict(data)


def _update(case_id: str, kind: str, seq: int) -> bytes:
    return payload_bytes(
        updatecase.build_request(
            case_id=case_id,
            message_id=str(uuid.uuid4()),
            sequence_number=seq,
            update_type=kind,
            created_at="20261101120000",
            message_text="Tack för ditt ärende. Vi har gått igenom det." if kind == "ANSWER" else None,
            closed_at="20261102120000" if kind == "CLOSED" else None,
        )
    )


def _populate(engine: Any) -> None:
    register = etree.parse(str(ROOT / "examples" / "register-case.xml")).getroot()
    now = datetime.now(UTC)
    rng = random.Random(14)
    records: list[dict[str, Any]] = []
    inbox: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(case_record.insert(), records)
            conn.execute(inbox_message.insert(), inbox)
            conn.execute(outbox_message.insert(), outbox)
        records.clear()
        inbox.clear()
        outbox.clear()

    n = 0
    for p in range(PROVIDERS):
        for u in range(UNITS_PER_PROVIDER):
            unit = _unit(p, u)
            for c in range(CASES_PER_UNIT):
                n += 1
                case_id = f"BENCH-{n:06d}"
                closed = c >= OPEN_PER_UNIT
                received = now - timedelta(minutes=rng.randrange(525_600))
                register.find("{*}caseId").text = case_id  # type: ignore[union-attr]
                register.find(".//{*}unitId").text = unit  # type: ignore[union-attr]
                records.append(
                    {
                        "case_id": case_id,
                        "category": "COMPLAINT",
                        "recipient_type": "CARE_UNIT",
                        "recipient_unit": unit,
                        "concerned_unit": None,
                        "handling_unit": unit,
                        "subject_age": 40,
                        "subject_gender": "1",
                        "main_problem": "1",
                        "sub_problem": "1.3",
                        "experienced_problem": None,
                        "business_area": "3",
                        "event_date": received.date(),
                        "submitted_at": received.replace(tzinfo=None),
                        "received_at": received,
                        "closed_at": received.replace(tzinfo=None) + timedelta(days=3) if closed else None,
                        "status": "CLOSED" if closed else OPEN_STATES[c % len(OPEN_STATES)],
                        "route_target": "internal",
                        "receiving_system": "internal",
                        "routing_version": 1,
                        "last_sequence": 3 if closed else 1,
                        "updated_at": received,
                        "version": 3 if closed else 1,
                        "open_question": None,
                        "handler_turn_since": None if closed else received,
                        "attachments_allowed": False,
                    }
                )
                inbox.append(
                    {
                        "operation": "RegisterCase",
                        "idempotency_key": case_id,
                        "case_id": case_id,
                        "message_id": None,
                        "sequence_number": None,
                        "logical_address": unit,
                        "consumer_hsa_id": "SE5565594230-1177",
                        "original_consumer_hsa_id": None,
                        "correlation_id": "bench",
                        "log_id": str(uuid.uuid4()),
                        "content_hash": case_id,
                        "payload": payload_bytes(register),
                        "received_at": received,
                        "route_target": "internal",
                        "route_address": unit,
                        "routing_version": 1,
                    }
                )
                kinds = ["RECEIVED", "ANSWER", "CLOSED"] if closed else ["RECEIVED"]
                for seq, kind in enumerate(kinds, start=1):
                    outbox.append(
                        {
                            "stream": case_id,
                            "seq": seq,
                            "idempotency_key": f"UpdateCase:{case_id}:{seq}",
                            "operation": "UpdateCase",
                            "destination": "1177-case-service",
                            "logical_address": "SE5565594230-CAF1",
                            "payload": _update(case_id, kind, seq),
                            "correlation_id": "bench",
                            "original_consumer": None,
                            "status": "done",
                            "next_attempt_ms": 0,
                            "created_ms": int(received.timestamp() * 1000) + seq,
                            "done_ms": 1,
                        }
                    )
                if len(records) >= BATCH:
                    flush()
    if records:
        flush()


def _timed(call: Callable[[], object], calls: int = CALLS) -> list[float]:
    for _ in range(20):
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _measure(
    desk: Desk,
    db_name: str,
    figures: list[dict[str, Any]],
    figure: Callable[..., dict[str, Any]],
    log: Callable[[str], None],
) -> None:
    handler, provider_reader = "SE2321000016-HND1", "SE2321000016-RDR1"
    unit = _unit(25, 10)
    desk.grant("bench", handler, unit, "handler")
    desk.grant("bench", provider_reader, "SE2321000016-P25", "reader")
    ids = [c.case_id for c in desk.cases(handler, per_page=100).items]
    assert len(ids) == CASES_PER_UNIT, len(ids)
    rng = random.Random(1)
    measured: dict[str, Callable[[], object]] = {
        "unit list page 1": lambda: desk.cases(handler),
        "unit list open": lambda: desk.cases(handler, status="RECEIVED"),
        "care provider list page 1": lambda: desk.cases(provider_reader),
        "care provider list page 10": lambda: desk.cases(provider_reader, page=10),
        "case view": lambda: desk.case(handler, rng.choice(ids)),
    }
    client = _web_client(desk, handler)
    pages: dict[str, Callable[[], object]] = {
        "page /cases": lambda: _get(client, "/cases"),
        "page /cases/<id>": lambda: _get(client, f"/cases/{rng.choice(ids)}"),
        "api /api/v1/cases": lambda: _get(client, "/api/v1/cases"),
    }
    for label, call in {**measured, **pages}.items():
        samples = _timed(call)
        p50, p95 = _pct(samples, 50), _pct(samples, 95)
        log(f"desk {db_name} {label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
        figures.append(
            figure(f"desk {label} p95 {db_name}", p95, None, "ms", p50_ms=round(p50, 2), calls=CALLS)
        )


class _Person:
    """The listener's certificate check, already done: every request comes from ``hsa_id``."""

    def __init__(self, hsa_id: str) -> None:
        self.hsa_id = hsa_id

    def caller(self, environ: Any) -> str:
        return self.hsa_id


def _web_client(desk: Desk, person: str) -> Any:
    from gateway.web.app import create_web_app

    app = create_web_app(
        desk.config, desk, _Person(person), secret_key=b"bench" * 8, code_lists=load_code_lists()
    )
    return app.test_client()


def _get(client: Any, path: str) -> None:
    response = client.get(path, headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, (path, response.status_code)
    response.close()


def bench_desk(
    work: Path,
    figures: list[dict[str, Any]],
    databases: list[tuple[str, Callable[[], AbstractContextManager[str]]]],
    figure: Callable[..., dict[str, Any]],
    log: Callable[[str], None],
) -> None:
    for db_name, url_cm in databases:
        with url_cm() as url:
            engine = make_engine(url, pool_size=4)
            try:
                migrate.upgrade(engine)
                store = CatalogueStore(engine)
                store.replace_draft(_catalogue(), "bench")
                store.publish("bench", "desk bench", force=True, max_changes=10_000)
                started = time.monotonic()
                _populate(engine)
                log(f"desk {db_name}: 100 000 cases stored in {time.monotonic() - started:.0f} s")
                if db_name == "postgresql":
                    with engine.begin() as conn:
                        conn.exec_driver_sql("ANALYZE")
                routing = RoutingHolder(engine, None)
                routing.refresh()
                config = load_config(None, env={"GATEWAY_DATABASE_URL": url})
                desk = Desk(engine, routing, config, load_code_lists())
                _measure(desk, db_name, figures, figure, log)
                desk.close()
            finally:
                engine.dispose()
