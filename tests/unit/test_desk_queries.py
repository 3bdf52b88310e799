"""Reading the desk: the case list (scope, filters, paging, newest first, the index its plan uses), the
case view (as filed, codes in words, what a reader may not see), the derived timeline and attachments in
both directions. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from lxml import etree
from sqlalchemy import text, update

from gateway.cases.records import case_record
from gateway.desk import Action, CaseNotFound, NewAttachment, Refused
from gateway.desk.queries import list_statements
from tests.unit.deskkit import (
    BOARD,
    CORE,
    DESK_UNIT,
    HANDLER,
    HANDLER2,
    READER,
    REGION,
    ROOT,
    Gateway,
    board_payload,
    register_payload,
)

PDF = b"%PDF-1.7\n%a reply\n%%EOF\n"
GIF = b"GIF89a" + b"\x01" * 20
HOSTILE_NAME = '<img src=x onerror="alert(1)">.gif'


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    data = yaml.safe_load((ROOT / "examples" / "routing.yaml").read_text())
    for route in data["routes"]:
        if route["address"] == BOARD:
            route["target"] = "internal"  # a second desk unit: the region's patient board
    catalogue = tmp_path / "routing.yaml"
    catalogue.write_text(yaml.safe_dump(data))
    gateway = Gateway(db_url, tmp_path, catalogue)
    gateway.desk.grant("cli:test", HANDLER, DESK_UNIT, "handler")
    gateway.desk.grant("cli:test", HANDLER2, BOARD, "handler")
    gateway.desk.grant("cli:test", READER, REGION, "reader")
    try:
        yield gateway
    finally:
        gateway.close()


def _with_attachment(payload: etree._Element) -> etree._Element:
    ns = "{" + etree.QName(payload).namespace + "}"
    attachment = etree.SubElement(payload, ns + "attachment")
    etree.SubElement(attachment, CORE + "attachmentId").text = "a1"
    etree.SubElement(attachment, CORE + "fileName").text = HOSTILE_NAME
    etree.SubElement(attachment, CORE + "mimeType").text = "image/gif"
    etree.SubElement(attachment, CORE + "data").text = base64.b64encode(GIF).decode()
    return payload


def _received(gw: Gateway, case_id: str, at: datetime) -> None:
    with gw.engine.begin() as conn:
        conn.execute(update(case_record).where(case_record.c.case_id == case_id).values(received_at=at))


def test_the_list_shows_the_persons_units_newest_first_in_pages(gw: Gateway) -> None:
    base = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    for n in range(7):
        gw.register(f"LIST-{n}")
        _received(gw, f"LIST-{n}", base + timedelta(hours=n))
    assert gw.call(board_payload("LIST-BOARD"), BOARD)["resultCode"] == "OK"
    gw.register("LIST-ELSEWHERE", "SE2321000016-7Q6X")  # integrated: never in the desk

    first = gw.desk.cases(HANDLER, per_page=3)
    assert (first.total, first.page, first.per_page) == (7, 1, 3)
    assert [c.case_id for c in first.items] == ["LIST-6", "LIST-5", "LIST-4"]
    assert [c.case_id for c in gw.desk.cases(HANDLER, per_page=3, page=3).items] == ["LIST-0"]
    assert gw.desk.cases(HANDLER, per_page=3, page=4).items == []
    summary = first.items[0]
    assert (summary.status, summary.unit_name, summary.subject) == (
        "RECEIVED",
        "Vårdcentralen Desk",
        "Klagomål: Vård och behandling",
    )
    assert summary.handler_turn and summary.waiting_since is not None  # noqa: PT018
    assert [c.case_id for c in gw.desk.cases(HANDLER2).items] == ["LIST-BOARD"]  # the board's handler
    assert gw.desk.cases(READER).total == 8  # the region's reader: both units
    assert gw.desk.cases(READER, unit=BOARD).total == 1


def test_the_filters(gw: Gateway) -> None:
    for n, day in enumerate((date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3))):
        gw.register(f"F-{n}")
        # 23:30 UTC on the day before is already this day in Sweden (UTC+1 in November)
        _received(gw, f"F-{n}", datetime.combine(day, datetime.min.time(), UTC) - timedelta(minutes=30))
    gw.call(register_payload("F-FEEDBACK", caseCategory="FEEDBACK"), DESK_UNIT)
    gw.desk.act(HANDLER, "F-1", 1, Action("QUESTION", text="Vilken dag?"))
    with gw.engine.begin() as conn:  # F-2 has waited for its handler for ten days
        conn.execute(
            update(case_record)
            .where(case_record.c.case_id == "F-2")
            .values(handler_turn_since=datetime.now(UTC) - timedelta(days=10))
        )

    def ids(**filters: object) -> list[str]:
        return sorted(c.case_id for c in gw.desk.cases(HANDLER, **filters).items)  # type: ignore[arg-type]

    assert ids(status="WAITING_FOR_REPORTER") == ["F-1"]
    assert ids(category="FEEDBACK") == ["F-FEEDBACK"]
    assert ids(category="COMPLAINT", status="RECEIVED") == ["F-0", "F-2"]
    assert ids(received_from=date(2026, 11, 2), received_to=date(2026, 11, 2)) == ["F-1"]
    assert ids(received_to=date(2026, 11, 2)) == ["F-0", "F-1"]
    assert ids(waiting_days=7) == ["F-2"]  # the citizen's turn (F-1) never counts as waiting
    assert ids(case_id="F-0") == ["F-0"]
    assert ids(case_id=" F-0 ") == ["F-0"]
    assert ids(case_id="F-") == []


@pytest.mark.parametrize(
    ("filters", "sub_code"),
    [
        ({"page": 0}, "INVALID_PAGE"),
        ({"per_page": 101}, "INVALID_PAGE"),
        ({"per_page": 0}, "INVALID_PAGE"),
        ({"status": "OPEN"}, "UNKNOWN_STATUS"),
        ({"category": "PRAISE"}, "UNKNOWN_CATEGORY"),
        ({"waiting_days": -1}, "INVALID_WAITING_DAYS"),
    ],
)
def test_bad_filters_are_refused(gw: Gateway, filters: dict[str, object], sub_code: str) -> None:
    with pytest.raises(Refused) as refused:
        gw.desk.cases(HANDLER, **filters)  # type: ignore[arg-type]
    assert refused.value.sub_code == sub_code


def test_the_case_as_filed_with_codes_in_words(gw: Gateway) -> None:
    result = gw.call(_with_attachment(register_payload("VIEW-1")), DESK_UNIT)
    assert result["resultCode"] == "OK", result
    view = gw.desk.case(HANDLER, "VIEW-1")
    assert (view.category, view.status, view.version, view.channel) == ("COMPLAINT", "RECEIVED", 1, "WEB")
    assert (view.handling_unit, view.unit_name, view.patient_board) == (
        DESK_UNIT,
        "Vårdcentralen Desk",
        False,
    )
    assert view.event_date == date(2026, 11, 1)
    assert view.submitted_at == datetime(2026, 11, 25, 9, 30)
    assert view.reporter_role == "SUBJECT_OF_CARE"
    assert view.reporter is not None
    assert (view.reporter.given_name, view.reporter.phone, view.reporter.email) == (
        "Kim",
        "070-1740605",
        "kim.exempelsson@example.se",
    )
    assert view.subject is not None and view.subject.family_name == "Exempelsson"  # noqa: PT018
    assert view.description.startswith("Jag sökte vård för ihållande ryggsmärta")
    assert {field: (c.code, c.text) for field, c in view.codes.items()} == {
        "mainProblem": ("1", "Vård och behandling"),
        "subProblem": ("1.3", "Behandling"),
        "businessArea": ("3", "Primärvård"),
        "gender": ("1", "Man"),
    }
    assert (view.reply_wanted, view.contact_channel, view.attachments_allowed) == (True, "INBOX", False)
    assert view.roles == frozenset({"handler"})
    [attachment] = view.attachments
    assert (attachment.file_name, attachment.mime_type, attachment.size, attachment.direction) == (
        HOSTILE_NAME,
        "image/gif",
        len(GIF),
        "from-citizen",
    )
    assert gw.desk.attachment(HANDLER, "VIEW-1", attachment.ref) == (HOSTILE_NAME, "image/gif", GIF)
    assert gw.desk.attachment(READER, "VIEW-1", attachment.ref)[2] == GIF  # readers open them too
    for ref in ("in-999-1", "out-1-1", f"{attachment.ref[:-1]}2", "../../etc/passwd", ""):
        with pytest.raises(CaseNotFound):
            gw.desk.attachment(HANDLER, "VIEW-1", ref)
    # a corrected code shows in words as corrected
    gw.desk.act(HANDLER, "VIEW-1", 1, Action("CORRECT_STATISTICS", codes={"businessArea": "6"}))
    assert gw.desk.case(HANDLER, "VIEW-1").codes["businessArea"].text == "Övrig verksamhet"


def test_the_timeline_in_both_directions_with_deliveries_and_actors(gw: Gateway) -> None:
    gw.register("TL-1")
    reply = Action(
        "ANSWER",
        text="Vi har sett över rutinen.",
        attachments=(NewAttachment("svar.pdf", "application/pdf", PDF),),
    )
    gw.desk.act(HANDLER, "TL-1", 1, Action("ALLOW_ATTACHMENTS", allow=True))
    gw.desk.act(HANDLER, "TL-1", 2, reply)
    with gw.engine.begin() as conn:  # the RECEIVED was delivered meanwhile
        conn.execute(text("UPDATE outbox_message SET status = 'done', done_ms = 1 WHERE seq = 1"))
    view = gw.desk.case(HANDLER, "TL-1")
    assert [(e.direction, e.kind, e.actor, e.delivery) for e in view.timeline] == [
        ("in", "RegisterCase", "SE5565594230-1177", None),
        ("out", "RECEIVED", "desk", "done"),
        ("desk", "ALLOW_ATTACHMENTS", HANDLER, None),
        ("out", "ANSWER", HANDLER, "pending"),
    ]
    answer = view.timeline[-1]
    assert answer.text == "Vi har sett över rutinen."
    [sent] = answer.attachments
    assert (sent.file_name, sent.direction) == ("svar.pdf", "to-citizen")
    assert sent.ref.startswith("out-")
    assert view.attachments == [sent]
    assert gw.desk.attachment(READER, "TL-1", sent.ref) == ("svar.pdf", "application/pdf", PDF)
    assert view.attachments_allowed is True


def test_a_reader_sees_the_subject_not_the_reporter(gw: Gateway) -> None:
    gw.register("READ-1")
    view = gw.desk.case(READER, "READ-1")
    assert view.reporter is None
    assert view.subject is not None and view.subject.person_id == "191212121212"  # noqa: PT018
    assert view.actions == []


def test_standard_answers_come_from_the_code_list(gw: Gateway) -> None:
    answers = gw.desk.standard_answers()
    assert [code for code, _, _ in answers] == ["1", "2", "3", "4"]
    assert all(name and len(text) > 80 for _, name, text in answers)


def test_the_list_of_one_unit_follows_its_index(gw: Gateway) -> None:
    for n in range(3):
        gw.register(f"PLAN-{n}")
    template = gw.record("PLAN-0")
    rows = [  # 40 units of 100 cases each, as the desk holds them
        {
            **template,
            "case_id": f"PLAN-X{n}",
            "handling_unit": DESK_UNIT if n % 40 == 0 else f"SE2321000016-U{n % 40}",
            "received_at": template["received_at"] - timedelta(minutes=n),
        }
        for n in range(4000)
    ]
    with gw.engine.begin() as conn:
        conn.execute(case_record.insert(), rows)
    count, listing = list_statements({DESK_UNIT}, status="RECEIVED", per_page=25)
    with gw.engine.connect() as conn:
        for statement, sorts in ((listing, False), (count, True)):
            sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
            if gw.engine.dialect.name == "sqlite":
                plan = " | ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
                assert "ix_case_record_desk" in plan, plan
                if sorts is False:
                    assert "TEMP B-TREE" not in plan, plan
            else:  # PostgreSQL may sort the unit's few rows it found through the index: never the table
                conn.execute(text("ANALYZE case_record"))
                plan = " | ".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
                assert "ix_case_record_desk" in plan, plan
                assert "Seq Scan" not in plan, plan
