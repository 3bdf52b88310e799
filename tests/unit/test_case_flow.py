"""Both contracts in both directions, through the SOAP app and into the database (issue 15).

The citizen's reply and supplements from 1177 to the case's handling system or the desk; sequence numbers
per case and sender; REDIRECTED readdressing the case; UNIT_CORRECTED for patient boards; cases started
outside 1177; the reporter's role and power of attorney. Every refusal is a data row, and leaves the
inbox, the outbox and the case records exactly as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from contracts import registercase
from gateway.desk.model import Action
from tests.unit.deskkit import HANDLER
from tests.unit.flowkit import (
    BOARD,
    CARE_PROVIDER,
    CASE_SERVICE,
    CORE,
    DESK_UNIT,
    INERA,
    SYSTEM_A,
    SYSTEM_B,
    UNIT_A,
    UNIT_A2,
    UNIT_B,
    FlowGateway,
    attachment,
    case_payload,
    ok,
    representative,
    unit,
)

QUESTION = "6a1d3f0e-9b2c-4e5d-8f7a-1b2c3d4e5f60"


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[FlowGateway]:
    gateway = FlowGateway(db_url, tmp_path)
    try:
        yield gateway
    finally:
        gateway.close()


def _registered(gw: FlowGateway, case_id: str, where: str = UNIT_A) -> None:
    ok(gw.call(case_payload(case_id, where), where))


def _asked(gw: FlowGateway, case_id: str, *, allowed: bool | None = None) -> None:
    """Case at UNIT_A with system A's open QUESTION (messageId QUESTION)."""
    _registered(gw, case_id)
    ok(
        gw.update(
            SYSTEM_A, CASE_SERVICE, case_id, "QUESTION", 1, message_id=QUESTION, attachments_allowed=allowed
        )
    )


def _payload(row: dict[str, Any]) -> etree._Element:
    return etree.fromstring(bytes(row["payload"]))


# -- the citizen's reply and supplements -------------------------------------------------------------------
def test_a_reply_reaches_the_handling_system_and_gives_the_turn_back(gw: FlowGateway) -> None:
    _asked(gw, "R-1", allowed=True)
    asked = gw.record("R-1")
    assert (asked["status"], asked["open_question"], asked["handler_turn_since"]) == (
        "WAITING_FOR_REPORTER",
        QUESTION,
        None,
    )
    assert asked["attachments_allowed"] is True
    reply = gw.update(
        INERA, UNIT_A, "R-1", "CITIZEN_REPLY", 1, in_reply_to=QUESTION, attachments=[attachment()]
    )
    ok(reply)
    record = gw.record("R-1")
    assert (record["status"], record["open_question"]) == ("IN_PROGRESS", None)
    assert record["handler_turn_since"] is not None
    assert (record["last_sequence"], record["citizen_sequence"]) == (1, 1)
    assert record["version"] == asked["version"] + 1
    [delivery, question, sent] = gw.outbox("R-1")
    assert (delivery["operation"], delivery["destination"]) == ("RegisterCase", "system-a")
    assert (question["destination"], question["logical_address"]) == ("1177-case-service", CASE_SERVICE)
    # the reply goes to the case's handling system, addressed to its unit, in the case's stream
    assert (sent["operation"], sent["destination"], sent["logical_address"]) == (
        "UpdateCase",
        "system-a",
        UNIT_A,
    )
    assert _payload(sent).findtext("{*}updateType") == "CITIZEN_REPLY"
    assert sent["original_consumer"] == INERA


def test_sequence_numbers_are_per_case_and_sender(gw: FlowGateway) -> None:
    _asked(gw, "S-1")
    ok(gw.update(INERA, UNIT_A, "S-1", "CITIZEN_REPLY", 1))  # 1177 numbers from 1 on its own
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "S-1", "PARTIAL_ANSWER", 2))
    ok(gw.update(INERA, UNIT_A, "S-1", "SUPPLEMENT", 2, message_text="Ett tillägg."))
    stale = gw.update(INERA, UNIT_A, "S-1", "SUPPLEMENT", 2, message_text="Ett till.")
    assert (stale["errorCode"], stale["subCode"]) == ("INVALID_REQUEST", "STALE_SEQUENCE")
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "S-1", "ANSWER", 3))
    record = gw.record("S-1")
    assert (record["last_sequence"], record["citizen_sequence"], record["status"]) == (3, 2, "ANSWERED")


def test_a_supplement_keeps_the_status_and_may_carry_only_files(gw: FlowGateway) -> None:
    _registered(gw, "SU-1")
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "SU-1", "IN_PROGRESS", 1, attachments_allowed=True))
    ok(gw.update(INERA, UNIT_A, "SU-1", "SUPPLEMENT", 1, attachments=[attachment()]))
    assert gw.record("SU-1")["status"] == "IN_PROGRESS"
    assert gw.outbox("SU-1")[-1]["destination"] == "system-a"


def test_the_latest_attachments_allowed_holds(gw: FlowGateway) -> None:
    _asked(gw, "AA-1", allowed=True)
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "AA-1", "IN_PROGRESS", 2, attachments_allowed=False))
    assert gw.record("AA-1")["attachments_allowed"] is False
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "AA-1", "IN_PROGRESS", 3))  # absent: unchanged
    assert gw.record("AA-1")["attachments_allowed"] is False
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "AA-1", "PARTIAL_ANSWER", 4, attachments_allowed=True))
    assert gw.record("AA-1")["attachments_allowed"] is False  # only IN_PROGRESS and QUESTION say it
    refused = gw.update(INERA, UNIT_A, "AA-1", "SUPPLEMENT", 1, attachments=[attachment()])
    assert refused["subCode"] == "ATTACHMENTS_NOT_ALLOWED"


def test_the_old_request_of_a_handling_system_still_works(gw: FlowGateway) -> None:
    """An UpdateCase without any of the additions is taken as before."""
    _registered(gw, "OLD-1")
    for n, kind in enumerate(("RECEIVED", "IN_PROGRESS", "ANSWER", "CLOSED"), start=1):
        ok(gw.update(SYSTEM_A, CASE_SERVICE, "OLD-1", kind, n))
    assert gw.record("OLD-1")["status"] == "CLOSED"


# -- every refusal, and nothing stored ------------------------------------------------------------------
def _closed(gw: FlowGateway, case_id: str) -> None:
    _registered(gw, case_id)
    ok(gw.update(SYSTEM_A, CASE_SERVICE, case_id, "CLOSED", 1))


def _board(gw: FlowGateway, case_id: str) -> None:
    _registered(gw, case_id, BOARD)


Setup = Callable[[FlowGateway, str], None]
REFUSALS: list[tuple[str, Setup, Callable[[FlowGateway, str], dict[str, str | None]], str, str]] = [
    (
        "reply-without-question",
        _registered,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "CITIZEN_REPLY", 1),
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    ),
    (
        "reply-to-another-message",
        _asked,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "CITIZEN_REPLY", 1, in_reply_to=str(uuid.uuid4())),
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    ),
    (
        "reply-without-text",
        _asked,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "CITIZEN_REPLY", 1, message_text=None),
        "INVALID_REQUEST",
        "MESSAGE_REQUIRED",
    ),
    (
        "empty-supplement",
        _registered,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "SUPPLEMENT", 1),
        "INVALID_REQUEST",
        "SUPPLEMENT_EMPTY",
    ),
    (
        "files-not-allowed",
        _asked,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "CITIZEN_REPLY", 1, attachments=[attachment()]),
        "INVALID_REQUEST",
        "ATTACHMENTS_NOT_ALLOWED",
    ),
    (
        "supplement-to-another-unit",
        _registered,
        lambda gw, c: gw.update(INERA, UNIT_B, c, "SUPPLEMENT", 1, message_text="x"),
        "INVALID_REQUEST",
        "NOT_CASE_UNIT",
    ),
    (
        "supplement-from-the-handling-system",
        _registered,
        lambda gw, c: gw.update(SYSTEM_A, UNIT_A, c, "SUPPLEMENT", 1, message_text="x"),
        "NOT_ALLOWED",
        "NOT_SENDERS_UPDATE",
    ),
    (
        "reply-from-another-system",
        _asked,
        lambda gw, c: gw.update(SYSTEM_B, UNIT_A, c, "CITIZEN_REPLY", 1),
        "NOT_ALLOWED",
        "NOT_CITIZEN_SERVICE",
    ),
    (
        "answer-from-1177",
        _registered,
        lambda gw, c: gw.update(INERA, CASE_SERVICE, c, "ANSWER", 1),
        "NOT_ALLOWED",
        "NOT_SENDERS_UPDATE",
    ),
    (
        "supplement-after-close",
        _closed,
        lambda gw, c: gw.update(INERA, UNIT_A, c, "SUPPLEMENT", 1, message_text="x"),
        "INVALID_REQUEST",
        "CASE_CLOSED",
    ),
    (
        "answer-after-close",
        _closed,
        lambda gw, c: gw.update(SYSTEM_A, CASE_SERVICE, c, "ANSWER", 2),
        "INVALID_REQUEST",
        "CASE_CLOSED",
    ),
    (
        "unit-corrected-on-a-care-unit-case",
        _registered,
        lambda gw, c: gw.update(
            SYSTEM_A,
            CASE_SERVICE,
            c,
            "UNIT_CORRECTED",
            1,
            handling_unit=unit(UNIT_A),
            concerned_unit=unit(UNIT_B),
        ),
        "INVALID_REQUEST",
        "NOT_PATIENT_BOARD_CASE",
    ),
    (
        "unit-corrected-to-an-unknown-unit",
        _board,
        lambda gw, c: gw.update(
            SYSTEM_B,
            CASE_SERVICE,
            c,
            "UNIT_CORRECTED",
            1,
            handling_unit=unit(BOARD),
            concerned_unit=unit("SE2321000016-NONE"),
        ),
        "INVALID_REQUEST",
        "UNKNOWN_UNIT",
    ),
    (
        "unit-corrected-to-a-care-provider",
        _board,
        lambda gw, c: gw.update(
            SYSTEM_B, CASE_SERVICE, c, "UNIT_CORRECTED", 1, handling_unit=unit(CARE_PROVIDER)
        ),
        "INVALID_REQUEST",
        "UNKNOWN_UNIT",
    ),
    (
        "phone-case-addressed-to-a-unit",
        lambda gw, c: None,
        lambda gw, c: gw.call(case_payload(c, UNIT_A, channel="PHONE"), UNIT_A, SYSTEM_A),
        "INVALID_REQUEST",
        "CHANNEL_ADDRESS",
    ),
    (
        "web-case-addressed-to-the-case-service",
        lambda gw, c: None,
        lambda gw, c: gw.call(case_payload(c, UNIT_A, channel="WEB"), CASE_SERVICE, SYSTEM_A),
        "INVALID_REQUEST",
        "RECIPIENT_MISMATCH",
    ),
]


@pytest.mark.parametrize(
    ("name", "setup", "send", "error_code", "sub_code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusals_leave_nothing_stored(
    gw: FlowGateway, name: str, setup: Setup, send: Callable[..., Any], error_code: str, sub_code: str
) -> None:
    case_id = f"REF-{name}"
    setup(gw, case_id)
    before = gw.snapshot()
    result = send(gw, case_id)
    assert (result["resultCode"], result["errorCode"], result["subCode"]) == ("ERROR", error_code, sub_code)
    assert gw.snapshot() == before


# -- the desk as the handling system ---------------------------------------------------------------------
def test_a_reply_to_a_desk_case_lands_in_the_desk(gw: FlowGateway) -> None:
    _registered(gw, "D-1", DESK_UNIT)
    gw.desk.grant("cli:test", HANDLER, DESK_UNIT, "handler")
    gw.desk.act(HANDLER, "D-1", 1, Action("QUESTION", text="När hände det?", allow=True))
    asked = gw.outbox("D-1")[-1]
    assert _payload(asked).findtext("{*}attachmentsAllowed") == "true"
    question_id = _payload(asked).findtext("{*}messageId")
    before = len(gw.outbox("D-1"))
    ok(
        gw.update(
            INERA, DESK_UNIT, "D-1", "CITIZEN_REPLY", 1, in_reply_to=question_id, attachments=[attachment()]
        )
    )
    assert len(gw.outbox("D-1")) == before  # nothing to deliver: the desk handles the case
    view = gw.desk.case(HANDLER, "D-1")
    assert (view.status, view.open_question, view.handler_turn) == ("IN_PROGRESS", None, True)
    reply = view.timeline[-1]
    assert (reply.direction, reply.kind, reply.actor, reply.delivery) == ("in", "CITIZEN_REPLY", INERA, None)
    assert [a.direction for a in reply.attachments] == ["from-citizen"]


# -- REDIRECTED ------------------------------------------------------------------------------------------
def _recipient(payload: etree._Element) -> tuple[str | None, str | None, str | None]:
    recipient = f"{{{registercase.NAMESPACE}}}recipient/"
    return (
        payload.findtext(f"{recipient}{CORE}recipientType"),
        payload.findtext(f"{recipient}{CORE}unit/{CORE}unitId"),
        payload.findtext(f"{recipient}{CORE}unit/{CORE}unitName"),
    )


def test_a_redirected_case_is_readdressed_and_its_new_system_numbers_from_1(gw: FlowGateway) -> None:
    _registered(gw, "RD-1")
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "RD-1", "RECEIVED", 5))
    ok(
        gw.update(
            SYSTEM_A, CASE_SERVICE, "RD-1", "REDIRECTED", 6, handling_unit=unit(UNIT_B, "Vårdcentralen B")
        )
    )
    record = gw.record("RD-1")
    assert (record["receiving_system"], record["handling_unit"], record["last_sequence"]) == (
        SYSTEM_B,
        UNIT_B,
        None,
    )
    redelivered = gw.outbox("RD-1")[-1]
    assert (redelivered["operation"], redelivered["destination"], redelivered["logical_address"]) == (
        "RegisterCase",
        "system-b",
        UNIT_B,
    )
    payload = _payload(redelivered)
    assert _recipient(payload) == ("CARE_UNIT", UNIT_B, "Vårdcentralen B")
    assert payload.findtext(f"{{{registercase.NAMESPACE}}}caseId") == "RD-1"
    ok(gw.update(SYSTEM_B, CASE_SERVICE, "RD-1", "RECEIVED", 1))  # its own numbering
    stale = gw.update(SYSTEM_A, CASE_SERVICE, "RD-1", "IN_PROGRESS", 7)
    assert stale["subCode"] == "NOT_CASE_RECEIVER"  # the old system no longer handles it
    # 1177's messages now go to the new system, at the new unit
    ok(gw.update(INERA, UNIT_B, "RD-1", "SUPPLEMENT", 1, message_text="Ett tillägg."))
    assert gw.outbox("RD-1")[-1]["destination"] == "system-b"


def test_a_board_case_redirected_to_a_care_unit_drops_its_location(gw: FlowGateway) -> None:
    _registered(gw, "RD-2", BOARD)
    stored = gw.outbox("RD-2")[0]
    location = f"{{{registercase.NAMESPACE}}}incident/{CORE}locationDescription"
    assert _payload(stored).find(location) is not None
    ok(gw.update(SYSTEM_B, CASE_SERVICE, "RD-2", "REDIRECTED", 1, handling_unit=unit(UNIT_A)))
    payload = _payload(gw.outbox("RD-2")[-1])
    assert _recipient(payload) == ("CARE_UNIT", UNIT_A, None)
    assert payload.find(location) is None
    record = gw.record("RD-2")
    assert (record["recipient_type"], record["handling_unit"], record["receiving_system"]) == (
        "CARE_UNIT",
        UNIT_A,
        SYSTEM_A,
    )


def test_a_care_unit_case_redirected_to_a_board_becomes_a_board_case(gw: FlowGateway) -> None:
    _registered(gw, "RD-3")
    ok(
        gw.update(
            SYSTEM_A, CASE_SERVICE, "RD-3", "REDIRECTED", 1, handling_unit=unit(BOARD, "Patientnämnden")
        )
    )
    assert _recipient(_payload(gw.outbox("RD-3")[-1])) == ("PATIENT_BOARD", BOARD, "Patientnämnden")
    assert gw.record("RD-3")["recipient_type"] == "PATIENT_BOARD"
    ok(
        gw.update(
            SYSTEM_B,
            CASE_SERVICE,
            "RD-3",
            "UNIT_CORRECTED",
            1,
            handling_unit=unit(BOARD),
            concerned_unit=unit(UNIT_A),
        )
    )


def test_a_redirect_into_a_desk_unit_lands_in_the_desk_with_received_to_1177(gw: FlowGateway) -> None:
    _registered(gw, "RD-4")
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "RD-4", "QUESTION", 3))
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "RD-4", "REDIRECTED", 4, handling_unit=unit(DESK_UNIT)))
    record = gw.record("RD-4")
    assert (record["receiving_system"], record["route_target"], record["handling_unit"]) == (
        "internal",
        "internal",
        DESK_UNIT,
    )
    assert (record["status"], record["last_sequence"], record["open_question"]) == ("RECEIVED", 1, None)
    *_, forwarded, received = gw.outbox("RD-4")
    assert _payload(forwarded).findtext("{*}updateType") == "REDIRECTED"
    assert (received["destination"], _payload(received).findtext("{*}updateType")) == (
        "1177-case-service",
        "RECEIVED",
    )
    assert _payload(received).findtext("{*}sequenceNumber") == "1"
    gw.desk.grant("cli:test", HANDLER, DESK_UNIT, "handler")
    gw.desk.act(HANDLER, "RD-4", int(record["version"]), Action("ANSWER", text="Svar."))
    answer = _payload(gw.outbox("RD-4")[-1])
    assert (answer.findtext("{*}updateType"), answer.findtext("{*}sequenceNumber")) == ("ANSWER", "2")


# -- UNIT_CORRECTED ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("old_style", [False, True], ids=["concernedUnit", "handlingUnit-only"])
def test_unit_corrected_sets_the_concerned_unit_and_the_board_stays(gw: FlowGateway, old_style: bool) -> None:
    _registered(gw, "UC-1", BOARD)
    fields: dict[str, Any] = (
        {"handling_unit": unit(UNIT_A)}
        if old_style
        else {
            "handling_unit": unit(BOARD),
            "concerned_unit": unit(UNIT_A),
        }
    )
    ok(gw.update(SYSTEM_B, CASE_SERVICE, "UC-1", "UNIT_CORRECTED", 1, **fields))
    record = gw.record("UC-1")
    assert (record["concerned_unit"], record["handling_unit"], record["recipient_type"]) == (
        UNIT_A,
        BOARD,
        "PATIENT_BOARD",
    )


# -- cases started outside 1177 -------------------------------------------------------------------------
def test_a_phone_case_from_a_region_goes_to_1177_and_its_sender_handles_it(gw: FlowGateway) -> None:
    ok(gw.call(case_payload("PH-1", UNIT_A, channel="PHONE"), CASE_SERVICE, SYSTEM_A))
    record = gw.record("PH-1")
    assert (record["receiving_system"], record["handling_unit"], record["channel"]) == (
        SYSTEM_A,
        UNIT_A,
        "PHONE",
    )
    [delivery] = gw.outbox("PH-1")
    assert (delivery["operation"], delivery["destination"], delivery["logical_address"]) == (
        "RegisterCase",
        "1177-case-service",
        CASE_SERVICE,
    )
    assert _payload(delivery).findtext(f"{{{registercase.NAMESPACE}}}channel") == "PHONE"
    ok(gw.update(SYSTEM_A, CASE_SERVICE, "PH-1", "RECEIVED", 1))
    other = gw.update(SYSTEM_B, CASE_SERVICE, "PH-1", "IN_PROGRESS", 2)
    assert other["subCode"] == "NOT_CASE_RECEIVER"
    ok(gw.update(INERA, UNIT_A, "PH-1", "SUPPLEMENT", 1, message_text="Ett tillägg."))
    assert gw.outbox("PH-1")[-1]["destination"] == "system-a"
    # the same caseId with other content, from anyone, is a reused id
    again = gw.call(case_payload("PH-1", UNIT_A, channel="LETTER"), CASE_SERVICE, SYSTEM_B)
    assert again["subCode"] == "ID_REUSED"
    ok(gw.call(case_payload("PH-1", UNIT_A, channel="PHONE"), CASE_SERVICE, SYSTEM_A))  # a repeat


def test_reporter_role_and_channel_are_stored_and_the_power_of_attorney_travels(gw: FlowGateway) -> None:
    ok(gw.call(representative(case_payload("RP-1", UNIT_A)), UNIT_A))
    record = gw.record("RP-1")
    assert (record["reporter_role"], record["channel"]) == ("REPRESENTATIVE", "WEB")
    power = _payload(gw.outbox("RP-1")[0]).find(f"{{{registercase.NAMESPACE}}}reporter/{CORE}powerOfAttorney")
    assert power is not None
    assert [power.findtext(f"{CORE}{name}") for name in ("kind", "reference", "validUntil")] == [
        "POWER_OF_ATTORNEY",
        "FM-2026-0042",
        "20271231",
    ]


def test_a_redirect_within_one_system_delivers_nothing_and_keeps_its_numbering(gw: FlowGateway) -> None:
    _registered(gw, "RS-1")
    ok(gw.call(case_payload("PH-2", UNIT_A, channel="LETTER"), CASE_SERVICE, SYSTEM_A))
    for case_id in ("RS-1", "PH-2"):
        ok(gw.update(SYSTEM_A, CASE_SERVICE, case_id, "RECEIVED", 4))
        before = len(gw.outbox(case_id))
        ok(gw.update(SYSTEM_A, CASE_SERVICE, case_id, "REDIRECTED", 5, handling_unit=unit(UNIT_A2)))
        assert len(gw.outbox(case_id)) == before + 1  # only the REDIRECTED to 1177
        record = gw.record(case_id)
        assert (record["receiving_system"], record["handling_unit"], record["last_sequence"]) == (
            SYSTEM_A,
            UNIT_A2,
            5,
        )


@pytest.mark.parametrize("where", [UNIT_A, BOARD])
def test_unit_corrected_naming_the_case_s_own_unit_corrects_codes_only(gw: FlowGateway, where: str) -> None:
    """An older sender's UNIT_CORRECTED with the case's own handlingUnit (codes only) works on any case."""
    case_id = f"UCS-{where}"
    _registered(gw, case_id, where)
    sender = SYSTEM_A if where == UNIT_A else SYSTEM_B
    ok(gw.update(sender, CASE_SERVICE, case_id, "UNIT_CORRECTED", 1, handling_unit=unit(where)))
    record = gw.record(case_id)
    assert (record["handling_unit"], record["concerned_unit"]) == (where, None)
