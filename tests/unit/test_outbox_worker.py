"""The delivery worker's threads on SQLite and PostgreSQL, with an in-process transport: every message
delivered once and in order per case while claims lease ahead, and a stop gives back what was not called."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import Engine, select

from outbox import Delivery, EndpointSpec, Kind, NewMessage, OutboxStore, SoapTransport, Worker, enqueue
from outbox.schema import outbox_message
from outbox.store import Claimed

ENDPOINT = EndpointSpec("dest", "https://receiver.invalid/soap")


class Recording(SoapTransport):
    """Remembers what arrived, in order; each call takes up to ``pause`` seconds."""

    def __init__(self, pause: float = 0.0) -> None:
        super().__init__(identity=None, soap_actions={})  # type: ignore[arg-type]
        self.pause = pause
        self.arrivals: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.rng = random.Random(5)

    def deliver(self, endpoint: EndpointSpec, message: Claimed) -> Delivery:
        if self.pause:
            time.sleep(self.rng.random() * self.pause)
        with self.lock:
            self.arrivals.append((message.stream, message.seq))
        return Delivery(Kind.SUCCESS, "OK", 200)


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def fill(engine: Engine, cases: int, per_case: int) -> None:
    with engine.begin() as conn:
        for seq in range(per_case):
            for case in range(cases):
                key = f"case-{case}:{seq}"
                message = NewMessage(f"case-{case}", "RegisterCase", "dest", "SE1", b"<x/>", "c", key)
                enqueue(conn, message, 0)


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_message.c.status)).all()
    counts: dict[str, int] = {}
    for (status,) in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_drain_delivers_everything_once_in_order_per_case(engine: Engine) -> None:
    fill(engine, cases=40, per_case=6)
    transport = Recording(pause=0.002)
    worker = Worker(OutboxStore(engine), lambda _name: ENDPOINT, transport, threads=4, poll_ms=10)
    runner = start(worker)
    deadline = time.monotonic() + 60
    while worker.delivered < 240 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop_event.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert worker.delivered == 240
    assert sorted(transport.arrivals) == sorted({(f"case-{c}", s + 1) for c in range(40) for s in range(6)})
    for case in range(40):
        seqs = [seq for stream, seq in transport.arrivals if stream == f"case-{case}"]
        assert seqs == sorted(seqs), case
    assert statuses(engine) == {"done": 240}


def test_stop_gives_back_what_was_leased_ahead_and_not_called(engine: Engine) -> None:
    fill(engine, cases=60, per_case=1)
    transport = Recording(pause=0.2)
    store = OutboxStore(engine)
    worker = Worker(store, lambda _name: ENDPOINT, transport, threads=2, poll_ms=10)
    runner = start(worker)
    while not transport.arrivals:
        time.sleep(0.01)
    worker.stop_event.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    counts = statuses(engine)
    assert counts.get("inflight", 0) == 0
    assert counts["done"] == len(transport.arrivals) == worker.delivered
    assert counts["pending"] == 60 - worker.delivered
    with engine.connect() as conn:
        attempts = conn.execute(
            select(outbox_message.c.attempts).where(outbox_message.c.status == "pending")
        ).all()
    assert {a for (a,) in attempts} == {0}  # given back without counting an attempt
