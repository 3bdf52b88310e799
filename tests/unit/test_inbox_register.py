"""Inbox.register: the new cases of one group commit stored together, each judged as if alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Connection, Engine, select

from gateway.cases.inbox import Inbox, InboxMessage, NewCase, Outcome, inbox_message
from gateway.cases.records import case_record
from outbox import NewMessage
from outbox.schema import outbox_message
from tests.conftest import ROOT


@pytest.fixture
def inbox(migrated_engine: Engine) -> Iterator[Inbox]:
    inbox = Inbox(migrated_engine)
    yield inbox
    inbox.close()  # the leaders' connection goes back before the engine is disposed


def message(case_id: str, text: str = "same") -> InboxMessage:
    payload = etree.fromstring(f"<case xmlns='urn:test'><id>{case_id}</id><text>{text}</text></case>")
    return InboxMessage(
        operation="RegisterCase",
        idempotency_key=case_id,
        case_id=case_id,
        logical_address="SE2321000016-7Q6X",
        consumer_hsa_id="SE5565594230-1177",
        correlation_id=f"corr-{case_id}",
        log_id=f"log-{case_id}",
        payload=payload,
        route_target="deviation-a",
        routing_version=1,
    )


def new_case(case_id: str, *, internal: bool = False) -> NewCase:
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    record: dict[str, Any] = {
        "case_id": case_id,
        "category": "COMPLAINT",
        "recipient_type": "CARE_UNIT",
        "recipient_unit": "SE2321000016-7Q6X",
        "concerned_unit": None,
        "handling_unit": "SE2321000016-7Q6X",
        "subject_age": 40,
        "subject_gender": "2",
        "main_problem": None,
        "sub_problem": None,
        "experienced_problem": None,
        "business_area": None,
        "event_date": date(2026, 11, 1),
        "submitted_at": datetime(2026, 11, 27, 10, 0),
        "received_at": now,
        "status": "REGISTERED",
        "route_target": "internal" if internal else "deviation-a",
        "receiving_system": "internal" if internal else "SE2321000016-A1B2",
        "routing_version": 1,
        "updated_at": now,
        "closed_at": None,
        "last_sequence": None,
        "version": 1,
        "open_question": None,
        "handler_turn_since": now,
        "attachments_allowed": False,
        "citizen_sequence": None,
        "reporter_role": "SUBJECT_OF_CARE",
        "channel": "WEB",
        "unit_name": None,
        "care_provider": None,
        "region": None,
    }
    if internal:
        return NewCase(record)

    def delivery(payload: bytes) -> NewMessage:
        return NewMessage(
            case_id, "RegisterCase", "deviation-a", "SE2321000016-7Q6X", payload, "c", "", "SE1"
        )

    return NewCase(record, delivery, lambda inbox_id: f"RegisterCase:{inbox_id}:deviation-a", 1_000)


def register_in_one_batch(
    inbox: Inbox, submissions: list[tuple[str, InboxMessage, NewCase]]
) -> dict[str, Any]:
    """Queue all, in order, while a leader holds its transaction open, so that they form one batch."""
    ready, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def blocker(conn: Connection) -> None:
        ready.set()
        release.wait(10)

    def submit(name: str, msg: InboxMessage, case: NewCase) -> None:
        try:
            outcomes[name] = inbox.register(msg, case)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcomes[name] = exc

    leader = threading.Thread(target=inbox.commits.run, args=(blocker,))
    leader.start()
    ready.wait(10)
    threads = [threading.Thread(target=submit, args=s) for s in submissions]
    for queued, t in enumerate(threads, 1):
        t.start()  # one after the other: the batch keeps the order of ``submissions``
        while len(inbox.commits._queue) < queued:
            threading.Event().wait(0.005)
    release.set()
    for t in [leader, *threads]:
        t.join(10)
    return outcomes


def test_new_duplicate_and_conflicting_cases_in_one_batch(inbox: Inbox, migrated_engine: Engine) -> None:
    assert inbox.register(message("OLD-1"), new_case("OLD-1")) is Outcome.STORED
    batches_before = inbox.commits.batches
    outcomes = register_in_one_batch(
        inbox,
        [
            ("new", message("NEW-1"), new_case("NEW-1")),
            ("internal", message("NEW-2"), new_case("NEW-2", internal=True)),
            ("repeat-in-batch", message("NEW-1"), new_case("NEW-1")),
            ("conflict-in-batch", message("NEW-1", "other"), new_case("NEW-1")),
            ("repeat-of-stored", message("OLD-1"), new_case("OLD-1")),
            ("conflict-with-stored", message("OLD-1", "other"), new_case("OLD-1")),
        ],
    )
    assert outcomes == {
        "new": Outcome.STORED,
        "internal": Outcome.STORED,
        "repeat-in-batch": Outcome.DUPLICATE,
        "conflict-in-batch": Outcome.CONFLICT,
        "repeat-of-stored": Outcome.DUPLICATE,
        "conflict-with-stored": Outcome.CONFLICT,
    }
    assert inbox.commits.batches == batches_before + 2  # the blocker's batch, then all six in one
    with migrated_engine.connect() as conn:
        ids = dict(conn.execute(select(inbox_message.c.case_id, inbox_message.c.id)).all())
        records = sorted(conn.execute(select(case_record.c.case_id)).scalars())
        deliveries = conn.execute(
            select(outbox_message.c.stream, outbox_message.c.seq, outbox_message.c.idempotency_key)
        ).all()
        payload = conn.execute(
            select(outbox_message.c.payload).where(outbox_message.c.stream == "NEW-1")
        ).scalar_one()
    assert sorted(ids) == ["NEW-1", "NEW-2", "OLD-1"]
    assert records == ["NEW-1", "NEW-2", "OLD-1"]
    # the internal case has no delivery; each delivery's key names its own inbox row
    assert sorted(deliveries) == [
        ("NEW-1", 1, f"RegisterCase:{ids['NEW-1']}:deviation-a"),
        ("OLD-1", 1, f"RegisterCase:{ids['OLD-1']}:deviation-a"),
    ]
    assert b"<text>same</text>" in bytes(payload)  # the first submission's content, as stored


def test_a_case_whose_record_cannot_be_stored_fails_alone(inbox: Inbox, migrated_engine: Engine) -> None:
    broken = new_case("BAD-1")
    broken.record["category"] = None  # NOT NULL: the batch's insert fails, then this case on its own
    outcomes = register_in_one_batch(
        inbox,
        [
            ("good", message("GOOD-1"), new_case("GOOD-1")),
            ("bad", message("BAD-1"), broken),
            ("also-good", message("GOOD-2"), new_case("GOOD-2")),
        ],
    )
    assert outcomes["good"] is Outcome.STORED and outcomes["also-good"] is Outcome.STORED  # noqa: PT018
    assert isinstance(outcomes["bad"], Exception)
    with migrated_engine.connect() as conn:
        stored = sorted(conn.execute(select(inbox_message.c.case_id)).scalars())
        records = sorted(conn.execute(select(case_record.c.case_id)).scalars())
    assert stored == records == ["GOOD-1", "GOOD-2"]  # nothing of the failed case, not even its inbox row


def test_the_content_hash_of_a_request_with_attachments_is_streamed_and_the_same() -> None:
    """The streamed canonical form of a large request hashes exactly as the one built in memory."""
    import hashlib

    from lxml import etree

    from gateway.cases.inbox import content_hash

    root = etree.parse(str(ROOT / "examples" / "register-case.xml")).getroot()
    attachment = etree.SubElement(root, f"{{{etree.QName(root).namespace}}}attachment")
    etree.SubElement(
        attachment, "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:1}data"
    ).text = "JVBERi0xLjQK" * 1000
    envelope = etree.fromstring(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        + etree.tostring(root)
        + b"</s:Body></s:Envelope>"
    )
    payload = envelope[0][0]
    built = etree.tostring(payload, method="c14n", exclusive=True, with_comments=False)
    assert (
        content_hash(payload, "SE2321000016-7Q6X")
        == hashlib.sha256(b"SE2321000016-7Q6X\n" + built).hexdigest()
    )
