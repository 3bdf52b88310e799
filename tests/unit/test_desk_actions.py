"""Every desk action and every refusal through ``Desk.act``, on SQLite and PostgreSQL.

Each accepted action is one transaction: the state machine's new status, the case's version + 1, one
UpdateCase to 1177 in the outbox with the case's next sequence number (valid against the UpdateCase XSD),
and one audit row naming the person and no text. Each refusal writes nothing at all. The tables below
name the path a case took, the action, and the outcome the contracts and the design call for.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree
from sqlalchemy import func, select

from contracts import load_registry
from contracts.validation import SchemaValidator
from gateway.cases.inbox import inbox_message
from gateway.desk import Action, CaseNotFound, Conflict, NewAttachment, Refused
from gateway.desk.schema import desk_audit
from outbox.schema import outbox_message
from tests.unit.deskkit import (
    BOARD,
    CARE_PROVIDER,
    CASE_SERVICE,
    DESK_UNIT,
    DEV1,
    HANDLER,
    OTHER_UNIT,
    ROOT,
    Gateway,
    board_payload,
    update_payload,
)

CLI = "cli:test"
PDF = b"%PDF-1.4\n%demo\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
CORE = "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:1}"
REGISTRY = load_registry()
VALIDATOR = SchemaValidator()


def valid_update(payload: bytes) -> etree._Element:
    root = etree.fromstring(payload)
    assert VALIDATOR.errors(REGISTRY.by_operation("UpdateCase"), root) == []
    return root


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    # the example catalogue, with the patient board handled in the desk too
    data = yaml.safe_load((ROOT / "examples" / "routing.yaml").read_text())
    for route in data["routes"]:
        if route["address"] == BOARD:
            route["target"] = "internal"
    catalogue = tmp_path / "routing.yaml"
    catalogue.write_text(yaml.safe_dump(data))
    gateway = Gateway(db_url, tmp_path, catalogue)
    gateway.desk.grant(CLI, HANDLER, "SE2321000016-R001", "handler")
    try:
        yield gateway
    finally:
        gateway.close()


def snapshot(gw: Gateway, case_id: str) -> dict[str, Any]:
    with gw.engine.connect() as conn:
        return {
            "record": gw.record(case_id),
            "outbox": conn.execute(
                select(outbox_message.c.seq, outbox_message.c.payload)
                .where(outbox_message.c.stream == case_id)
                .order_by(outbox_message.c.seq)
            ).all(),
            "audit": conn.execute(select(func.count()).select_from(desk_audit)).scalar_one(),
        }


def act(gw: Gateway, case_id: str, action: Action) -> int:
    return gw.desk.act(HANDLER, case_id, gw.record(case_id)["version"], action)


def test_received_at_once_for_a_case_that_lands_in_the_desk(gw: Gateway) -> None:
    gw.register("DESK-RECEIVED")
    state = snapshot(gw, "DESK-RECEIVED")
    record = state["record"]
    assert (record["status"], record["version"], record["last_sequence"]) == ("RECEIVED", 1, 1)
    assert record["handler_turn_since"] is not None
    [(seq, payload)] = state["outbox"]
    update = valid_update(bytes(payload))
    assert seq == 1
    assert update.findtext("{*}updateType") == "RECEIVED"
    assert update.findtext("{*}sequenceNumber") == "1"
    assert update.findtext(f"{{*}}handlingUnit/{CORE}unitId") == DESK_UNIT
    with gw.engine.connect() as conn:
        message = conn.execute(select(outbox_message)).one()
    assert (message.operation, message.destination, message.logical_address) == (
        "UpdateCase",
        "1177-case-service",
        CASE_SERVICE,
    )
    # a repeat of the RegisterCase is a duplicate: no second RECEIVED
    gw.register("DESK-RECEIVED")
    assert len(snapshot(gw, "DESK-RECEIVED")["outbox"]) == 1


def _files(*files: tuple[str, str, bytes]) -> tuple[NewAttachment, ...]:
    return tuple(NewAttachment(name, mime, data) for name, mime, data in files)


TEXT = "Tack för ditt ärende. Vi har pratat med mottagningen."
# (id, the actions before, the action, the status after)
ACCEPTED = [
    ("in-progress", [], Action("IN_PROGRESS"), "IN_PROGRESS"),
    ("partial-answer", [], Action("PARTIAL_ANSWER", text=TEXT), "IN_PROGRESS"),
    ("question", [], Action("QUESTION", text="Vilken dag var det?"), "WAITING_FOR_REPORTER"),
    ("answer", [], Action("ANSWER", text=TEXT), "ANSWERED"),
    ("answer-standard", [], Action("ANSWER", standard_answer="2"), "ANSWERED"),
    ("answer-standard-and-words", [], Action("ANSWER", text="Hälsningar", standard_answer="1"), "ANSWERED"),
    (
        "answer-with-files",
        [],
        Action(
            "ANSWER",
            text=TEXT,
            attachments=_files(("svar.pdf", "application/pdf", PDF), ("bild.png", "image/png", PNG)),
        ),
        "ANSWERED",
    ),
    ("answer-after-question", [Action("QUESTION", text="Q?")], Action("ANSWER", text=TEXT), "ANSWERED"),
    (
        "partial-after-answer",
        [Action("ANSWER", text=TEXT)],
        Action("PARTIAL_ANSWER", text=TEXT),
        "IN_PROGRESS",
    ),
    ("close", [], Action("CLOSED"), "CLOSED"),
    ("close-after-answer", [Action("ANSWER", text=TEXT)], Action("CLOSED"), "CLOSED"),
    ("allow-attachments", [], Action("ALLOW_ATTACHMENTS", allow=True), "RECEIVED"),
    (
        "correct-statistics",
        [],
        Action("CORRECT_STATISTICS", codes={"mainProblem": "2", "subProblem": "2.1"}),
        "RECEIVED",
    ),
    (
        "correct-business-area",
        [Action("IN_PROGRESS")],
        Action("CORRECT_STATISTICS", codes={"businessArea": "1"}),
        "IN_PROGRESS",
    ),
    ("correct-sub-problem", [], Action("CORRECT_STATISTICS", codes={"subProblem": "1.2"}), "RECEIVED"),
]


@pytest.mark.parametrize(("before", "action", "status"), [pytest.param(*c[1:], id=c[0]) for c in ACCEPTED])
def test_accepted_actions(gw: Gateway, before: list[Action], action: Action, status: str) -> None:
    gw.register("DESK-ACT")
    for earlier in before:
        act(gw, "DESK-ACT", earlier)
    old = snapshot(gw, "DESK-ACT")
    version = act(gw, "DESK-ACT", action)
    new = snapshot(gw, "DESK-ACT")
    record = new["record"]
    assert version == old["record"]["version"] + 1 == record["version"]
    assert record["status"] == status
    assert new["audit"] == old["audit"] + 1
    with gw.engine.connect() as conn:
        entry = conn.execute(select(desk_audit).order_by(desk_audit.c.id.desc()).limit(1)).one()
    assert (entry.actor, entry.action, entry.case_id) == (HANDLER, action.kind, "DESK-ACT")
    for secret in (TEXT, "svar.pdf", "Vilken"):  # the audit names codes and counts, never the text
        assert secret not in (entry.detail or "")
    if action.kind == "ALLOW_ATTACHMENTS":
        assert new["outbox"] == old["outbox"]  # desk state only until the contract carries it
        assert record["attachments_allowed"] is True
        return
    assert len(new["outbox"]) == len(old["outbox"]) + 1
    seq, payload = new["outbox"][-1]
    update = valid_update(bytes(payload))
    assert int(update.findtext("{*}sequenceNumber") or 0) == old["record"]["last_sequence"] + 1
    assert record["last_sequence"] == old["record"]["last_sequence"] + 1
    assert seq == old["outbox"][-1][0] + 1
    assert entry.target == f"message:{update.findtext('{*}messageId')}"
    kind = update.findtext("{*}updateType")
    assert kind == ("UNIT_CORRECTED" if action.kind == "CORRECT_STATISTICS" else action.kind)
    assert update.findtext(f"{{*}}handlingUnit/{CORE}unitId") == DESK_UNIT
    text = update.findtext(f"{{*}}message/{CORE}text")
    if action.standard_answer is not None:
        fixed = {c: t for c, _, t in gw.desk.standard_answers()}[action.standard_answer]
        assert text is not None and text.startswith(fixed)  # noqa: PT018
        assert update.findtext(f"{{*}}message/{CORE}standardAnswer/{CORE}code") == action.standard_answer
        assert (
            update.findtext(f"{{*}}message/{CORE}standardAnswer/{CORE}codeSystem") == "CAF-STANDARDANSWER-1.0"
        )
    elif action.text is not None:
        assert text == action.text
    attachments = update.findall("{*}attachment")
    assert [base64.b64decode(a.findtext(f"{CORE}data") or "") for a in attachments] == [
        f.data for f in action.attachments
    ]
    if action.kind == "QUESTION":
        assert record["open_question"] == update.findtext("{*}messageId")
        assert record["handler_turn_since"] is None  # the citizen's turn
    if action.kind == "CLOSED":
        assert record["closed_at"] is not None
        assert update.findtext("{*}closedAt") == record["closed_at"].strftime("%Y%m%d%H%M%S")
    if action.kind == "CORRECT_STATISTICS":
        for field, code in (action.codes or {}).items():
            assert update.findtext(f"{{*}}statistics/{CORE}{field}/{CORE}code") == code
        column = {"mainProblem": "main_problem", "subProblem": "sub_problem", "businessArea": "business_area"}
        assert {column[f]: record[column[f]] for f in action.codes or {}} == {
            column[f]: c for f, c in (action.codes or {}).items()
        }


# (id, the actions before, the action, the subCode)
REFUSED = [
    ("received-again", [], Action("RECEIVED"), "NOT_NOW"),
    ("in-progress-after-answer", [Action("ANSWER", text=TEXT)], Action("IN_PROGRESS"), "NOT_NOW"),
    ("answer-after-close", [Action("CLOSED")], Action("ANSWER", text=TEXT), "CASE_CLOSED"),
    ("close-after-close", [Action("CLOSED")], Action("CLOSED"), "CASE_CLOSED"),
    ("allow-after-close", [Action("CLOSED")], Action("ALLOW_ATTACHMENTS", allow=True), "CASE_CLOSED"),
    (
        "statistics-after-close",
        [Action("CLOSED")],
        Action("CORRECT_STATISTICS", codes={"businessArea": "1"}),
        "CASE_CLOSED",
    ),
    ("move", [], Action("MOVE", unit=OTHER_UNIT), "MOVE_NOT_SUPPORTED"),
    ("unknown-action", [], Action("DELETE"), "UNKNOWN_ACTION"),
    ("answer-without-text", [], Action("ANSWER"), "TEXT_REQUIRED"),
    ("question-blank", [], Action("QUESTION", text="  \n "), "TEXT_REQUIRED"),
    ("text-too-long", [], Action("PARTIAL_ANSWER", text="x" * 20_001), "TEXT_TOO_LONG"),
    ("text-control-character", [], Action("ANSWER", text="hej\x00då"), "INVALID_TEXT"),
    ("text-on-in-progress", [], Action("IN_PROGRESS", text=TEXT), "NO_MESSAGE_HERE"),
    (
        "file-on-close",
        [],
        Action("CLOSED", attachments=_files(("a.pdf", "application/pdf", PDF))),
        "NO_MESSAGE_HERE",
    ),
    (
        "standard-answer-on-partial",
        [],
        Action("PARTIAL_ANSWER", text=TEXT, standard_answer="1"),
        "STANDARD_ANSWER_NOT_HERE",
    ),
    ("unknown-standard-answer", [], Action("ANSWER", standard_answer="99"), "UNKNOWN_STANDARD_ANSWER"),
    (
        "eleven-files",
        [],
        Action(
            "ANSWER",
            text=TEXT,
            attachments=_files(*[(f"{n}.pdf", "application/pdf", PDF) for n in range(11)]),
        ),
        "TOO_MANY_ATTACHMENTS",
    ),
    (
        "png-declared-pdf",
        [],
        Action("ANSWER", text=TEXT, attachments=_files(("a.pdf", "application/pdf", PNG))),
        "ATTACHMENT_TYPE_MISMATCH",
    ),
    (
        "script-declared-pdf",
        [],
        Action(
            "ANSWER",
            text=TEXT,
            attachments=_files(("a.pdf", "application/pdf", b"<script>alert(1)</script>")),
        ),
        "ATTACHMENT_TYPE_MISMATCH",
    ),
    (
        "executable-type",
        [],
        Action("ANSWER", text=TEXT, attachments=_files(("a.exe", "application/x-msdownload", b"MZ\x90\x00"))),
        "ATTACHMENT_TYPE",
    ),
    (
        "empty-file",
        [],
        Action("ANSWER", text=TEXT, attachments=_files(("a.pdf", "application/pdf", b""))),
        "ATTACHMENT_EMPTY",
    ),
    (
        "file-over-20-mb",
        [],
        Action(
            "ANSWER",
            text=TEXT,
            attachments=_files(("a.pdf", "application/pdf", PDF + b"0" * (20 * 1024 * 1024))),
        ),
        "ATTACHMENT_TOO_LARGE",
    ),
    (
        "file-name-with-path",
        [],
        Action("ANSWER", text=TEXT, attachments=_files(("../etc/passwd.pdf", "application/pdf", PDF))),
        "ATTACHMENT_NAME",
    ),
    ("allow-without-value", [], Action("ALLOW_ATTACHMENTS"), "ALLOW_REQUIRED"),
    ("allow-with-text", [], Action("ALLOW_ATTACHMENTS", allow=True, text="x"), "NO_MESSAGE_HERE"),
    ("no-codes", [], Action("CORRECT_STATISTICS", codes={}), "CODES_REQUIRED"),
    ("unknown-field", [], Action("CORRECT_STATISTICS", codes={"gender": "1"}), "UNKNOWN_FIELD"),
    ("unknown-code", [], Action("CORRECT_STATISTICS", codes={"businessArea": "99"}), "INVALID_CODE"),
    (
        "sub-problem-of-another-main",
        [],
        Action("CORRECT_STATISTICS", codes={"subProblem": "3.1"}),
        "INVALID_CODE",
    ),
    (
        "main-problem-leaving-its-sub",
        [],
        Action("CORRECT_STATISTICS", codes={"mainProblem": "3"}),
        "INVALID_CODE",
    ),
    ("codes-on-answer", [], Action("ANSWER", text=TEXT, codes={"businessArea": "1"}), "CODES_NOT_HERE"),
    (
        "concerned-unit-of-a-care-unit-case",
        [],
        Action("SET_CONCERNED_UNIT", unit=OTHER_UNIT),
        "NOT_PATIENT_BOARD",
    ),
    ("unit-on-answer", [], Action("ANSWER", text=TEXT, unit=OTHER_UNIT), "UNIT_NOT_HERE"),
]


@pytest.mark.parametrize(("before", "action", "sub_code"), [pytest.param(*c[1:], id=c[0]) for c in REFUSED])
def test_refused_actions_write_nothing(
    gw: Gateway, before: list[Action], action: Action, sub_code: str
) -> None:
    gw.register("DESK-NO")
    for earlier in before:
        act(gw, "DESK-NO", earlier)
    old = snapshot(gw, "DESK-NO")
    with pytest.raises(Refused) as refused:
        act(gw, "DESK-NO", action)
    assert refused.value.sub_code == sub_code
    assert refused.value.http_status == 422
    assert "\n" not in refused.value.message and refused.value.message.strip()  # noqa: PT018
    assert TEXT not in refused.value.message
    assert snapshot(gw, "DESK-NO") == old


def test_moving_is_refused_with_an_explanation(gw: Gateway) -> None:
    gw.register("DESK-MOVE")
    with pytest.raises(Refused) as refused:
        act(gw, "DESK-MOVE", Action("MOVE", unit=OTHER_UNIT))
    assert refused.value.message == (
        "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare"
    )


def test_a_stale_version_is_a_conflict_and_writes_nothing(gw: Gateway) -> None:
    gw.register("DESK-STALE")
    seen = gw.desk.case(HANDLER, "DESK-STALE").version
    gw.desk.act(HANDLER, "DESK-STALE", seen, Action("IN_PROGRESS"))
    old = snapshot(gw, "DESK-STALE")
    with pytest.raises(Conflict) as conflict:
        gw.desk.act(HANDLER, "DESK-STALE", seen, Action("ANSWER", text=TEXT))
    assert (conflict.value.http_status, conflict.value.exit_code) == (409, 8)
    assert "ändrats" in conflict.value.message
    assert snapshot(gw, "DESK-STALE") == old


def test_unknown_and_integrated_cases_are_not_in_the_desk(gw: Gateway) -> None:
    gw.register("INTEGRATED", OTHER_UNIT)  # routed to deviation-a
    for case_id in ("NO-SUCH-CASE", "INTEGRATED"):
        with pytest.raises(CaseNotFound):
            gw.desk.act(HANDLER, case_id, 1, Action("IN_PROGRESS"))
        with pytest.raises(CaseNotFound):
            gw.desk.case(HANDLER, case_id)


def test_patient_board_sets_the_unit_where_the_event_happened(gw: Gateway) -> None:
    result = gw.call(board_payload("BOARD-1"), BOARD)
    assert result["resultCode"] == "OK", result
    view = gw.desk.case(HANDLER, "BOARD-1")
    assert view.patient_board and "SET_CONCERNED_UNIT" in view.actions  # noqa: PT018
    assert view.location_description == "Akuten, natten till fredag"
    for unit in (CARE_PROVIDER, "SE2321000016-NOPE", BOARD):
        with pytest.raises(Refused) as refused:
            act(gw, "BOARD-1", Action("SET_CONCERNED_UNIT", unit=unit))
        assert refused.value.sub_code == "UNKNOWN_UNIT"
    act(gw, "BOARD-1", Action("SET_CONCERNED_UNIT", unit=OTHER_UNIT))
    state = snapshot(gw, "BOARD-1")
    assert state["record"]["concerned_unit"] == OTHER_UNIT
    assert state["record"]["handling_unit"] == BOARD
    update = valid_update(bytes(state["outbox"][-1][1]))
    assert update.findtext("{*}updateType") == "UNIT_CORRECTED"
    assert update.findtext(f"{{*}}handlingUnit/{CORE}unitId") == BOARD  # the board keeps the case
    assert update.findtext(f"{{*}}concernedUnit/{CORE}unitId") == OTHER_UNIT  # the contract's own field
    assert gw.desk.case(HANDLER, "BOARD-1").concerned_unit_name == "Vårdcentralen Exempel"


def test_every_change_from_any_path_bumps_the_version(gw: Gateway) -> None:
    """An integrated system's updates and its redirect into the desk change the version, so a view of
    the case older than them is a conflict; the redirect lands the case in the desk with RECEIVED."""
    gw.register("REDIRECT-1", OTHER_UNIT)
    assert gw.record("REDIRECT-1")["version"] == 1
    assert gw.call(update_payload("REDIRECT-1", "IN_PROGRESS", 1), CASE_SERVICE, DEV1)["resultCode"] == "OK"
    assert gw.record("REDIRECT-1")["version"] == 2
    redirect = update_payload("REDIRECT-1", "REDIRECTED", 2, handling_unit=DESK_UNIT)
    assert gw.call(redirect, CASE_SERVICE, DEV1)["resultCode"] == "OK"
    record = gw.record("REDIRECT-1")
    assert (record["version"], record["status"], record["receiving_system"]) == (3, "RECEIVED", "internal")
    assert (record["handling_unit"], record["last_sequence"]) == (DESK_UNIT, 1)  # the desk numbers from 1
    with gw.engine.connect() as conn:
        sent = conn.execute(
            select(outbox_message.c.operation, outbox_message.c.payload)
            .where(outbox_message.c.stream == "REDIRECT-1")
            .order_by(outbox_message.c.seq)
        ).all()
    kinds = [etree.fromstring(bytes(p)).findtext("{*}updateType") for op, p in sent if op == "UpdateCase"]
    assert kinds == ["IN_PROGRESS", "REDIRECTED", "RECEIVED"]  # the system's two, then the desk's
    received = valid_update(bytes(sent[-1].payload))
    assert received.findtext("{*}sequenceNumber") == "1"
    with pytest.raises(Conflict):
        gw.desk.act(HANDLER, "REDIRECT-1", 2, Action("IN_PROGRESS"))
    view = gw.desk.case(HANDLER, "REDIRECT-1")
    assert [(e.direction, e.kind) for e in view.timeline] == [
        ("in", "RegisterCase"),
        ("in", "IN_PROGRESS"),
        ("in", "REDIRECTED"),
        ("out", "RECEIVED"),
    ]
    assert gw.desk.act(HANDLER, "REDIRECT-1", 3, Action("IN_PROGRESS")) == 4
    # the system that redirected it may not update it any more
    late = gw.call(update_payload("REDIRECT-1", "ANSWER", 9), CASE_SERVICE, DEV1)
    assert (late["errorCode"], late["subCode"]) == ("NOT_ALLOWED", "NOT_CASE_RECEIVER")


def test_the_integrated_path_refuses_updates_after_closed(gw: Gateway) -> None:
    gw.register("CLOSED-1", OTHER_UNIT)
    assert gw.call(update_payload("CLOSED-1", "CLOSED", 1), CASE_SERVICE, DEV1)["resultCode"] == "OK"
    closed = gw.record("CLOSED-1")
    with gw.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(inbox_message)).scalar_one()
    late = gw.call(update_payload("CLOSED-1", "ANSWER", 2), CASE_SERVICE, DEV1)
    assert (late["resultCode"], late["errorCode"], late["subCode"]) == (
        "ERROR",
        "INVALID_REQUEST",
        "CASE_CLOSED",
    )
    assert gw.record("CLOSED-1") == closed
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbox_message)).scalar_one() == before
