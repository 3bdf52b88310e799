"""Optimistic locking: two handlers act on the same case at the same moment, 50 times, on a real engine
(threads, SQLite and PostgreSQL). Exactly one wins each time, the other is told the case changed; the
sequence numbers strictly increase; nothing is half-written (each win is one audit row, one outbox message
and one version, and the loser left none of them)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.desk import Action, Conflict
from gateway.desk.schema import desk_audit
from outbox.schema import outbox_message
from tests.unit.deskkit import DESK_UNIT, HANDLER, HANDLER2, Gateway

ROUNDS = 50


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    for person in (HANDLER, HANDLER2):
        gateway.desk.grant("cli:test", person, DESK_UNIT, "handler")
    try:
        yield gateway
    finally:
        gateway.close()


def race(gw: Gateway, round_no: int, version: int) -> dict[str, str]:
    """Both handlers answer the case as seen at ``version``, released at the same instant."""
    start = threading.Barrier(2, timeout=30)
    results: dict[str, str] = {}

    def answer(person: str) -> None:
        action = Action("PARTIAL_ANSWER", text=f"Delsvar {round_no} från {person}")
        start.wait()
        try:
            results[person] = f"won v{gw.desk.act(person, 'RACE-1', version, action)}"
        except Conflict:
            results[person] = "conflict"
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            results[person] = f"error {exc!r}"

    threads = [threading.Thread(target=answer, args=(p,)) for p in (HANDLER, HANDLER2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_handlers_at_once_exactly_one_wins_each_time(gw: Gateway) -> None:
    gw.register("RACE-1")
    outcomes: list[list[str]] = []
    for round_no in range(ROUNDS):
        version = gw.desk.case(HANDLER, "RACE-1").version
        results = race(gw, round_no, version)
        assert sorted(results.values()) == ["conflict", f"won v{version + 1}"], (round_no, results)
        outcomes.append([person for person, result in results.items() if result.startswith("won")])

    record = gw.record("RACE-1")
    assert record["version"] == 1 + ROUNDS
    assert record["last_sequence"] == 1 + ROUNDS
    with gw.engine.connect() as conn:
        messages = conn.execute(
            select(outbox_message.c.seq, outbox_message.c.payload)
            .where(outbox_message.c.stream == "RACE-1")
            .order_by(outbox_message.c.id)
        ).all()
        audited = conn.execute(
            select(desk_audit.c.actor, desk_audit.c.target)
            .where(desk_audit.c.case_id == "RACE-1")
            .order_by(desk_audit.c.id)
        ).all()
    # RECEIVED, then one message per round: outbox order and sequenceNumber both strictly increasing
    assert [seq for seq, _ in messages] == list(range(1, ROUNDS + 2))
    updates = [etree.fromstring(bytes(payload)) for _, payload in messages]
    assert [int(u.findtext("{*}sequenceNumber") or 0) for u in updates] == list(range(1, ROUNDS + 2))
    assert [u.findtext("{*}updateType") for u in updates] == ["RECEIVED"] + ["PARTIAL_ANSWER"] * ROUNDS
    # each win wrote exactly its audit row and its message, naming the winner; the losers wrote nothing
    assert [actor for actor, _ in audited] == [winner for [winner] in outcomes]
    assert [target for _, target in audited] == [f"message:{u.findtext('{*}messageId')}" for u in updates[1:]]
    texts = [u.findtext("{*}message/{*}text") for u in updates[1:]]
    assert texts == [f"Delsvar {n} från {winner}" for n, [winner] in enumerate(outcomes)]
