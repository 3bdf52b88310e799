"""Export of a case (one ZIP: the XML as received, the timeline, every attachment), the hand-over of a
unit's open desk cases to its new system, and outbox purge keeping open cases' messages. SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select, text

from gateway.cases.inbox import inbox_message
from gateway.delivery import build_store
from gateway.desk import Action, Forbidden, NewAttachment, Refused
from gateway.desk.schema import desk_audit
from outbox.schema import outbox_message
from routing import CatalogueStore
from routing.model import Route
from tests.unit.deskkit import CORE, DESK_UNIT, HANDLER, READER, Gateway, register_payload

PDF = b"%PDF-1.4\n% the handler's letter\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 40
RC = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1"


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    gateway.desk.grant("cli:test", HANDLER, DESK_UNIT, "handler")
    gateway.desk.grant("cli:test", READER, DESK_UNIT, "reader")
    try:
        yield gateway
    finally:
        gateway.close()


def _register_with_png(gw: Gateway, case_id: str) -> None:
    payload = register_payload(case_id)
    ns = "{" + etree.QName(payload).namespace + "}"
    attachment = etree.SubElement(payload, ns + "attachment")
    etree.SubElement(attachment, CORE + "attachmentId").text = "1"
    etree.SubElement(attachment, CORE + "fileName").text = "../../röntgen bild?.png"
    etree.SubElement(attachment, CORE + "mimeType").text = "image/png"
    etree.SubElement(attachment, CORE + "data").text = base64.b64encode(PNG).decode()
    assert gw.call(payload, DESK_UNIT)["resultCode"] == "OK"


def test_export_is_one_zip_with_the_xml_the_timeline_and_every_attachment(gw: Gateway) -> None:
    _register_with_png(gw, "EXPORT-1")
    gw.desk.act(
        HANDLER,
        "EXPORT-1",
        1,
        Action(
            "ANSWER",
            text="Svar på ditt ärende.",
            attachments=(NewAttachment("brev.pdf", "application/pdf", PDF),),
        ),
    )
    archive = zipfile.ZipFile(io.BytesIO(gw.desk.export(HANDLER, "EXPORT-1")))
    names = set(archive.namelist())
    assert {"registercase.xml", "timeline.json", "timeline.txt"} <= names
    assert len(names) == 5  # and the two attachments
    with gw.engine.connect() as conn:
        stored = conn.execute(
            select(inbox_message.c.payload).where(inbox_message.c.operation == "RegisterCase")
        ).scalar_one()
    assert archive.read("registercase.xml") == bytes(stored)  # exactly as received
    document = json.loads(archive.read("timeline.json"))
    assert document["caseId"] == "EXPORT-1"
    assert [(e["direction"], e["kind"]) for e in document["timeline"]] == [
        ("in", "RegisterCase"),
        ("out", "RECEIVED"),
        ("out", "ANSWER"),
    ]
    files = {a["ref"]: a for e in document["timeline"] for a in e["attachments"]}
    assert len(files) == 2
    contents = {a["fileName"]: archive.read(a["file"]) for a in files.values()}
    assert contents == {"../../röntgen bild?.png": PNG, "brev.pdf": PDF}
    for entry in files.values():  # each attachment stays one file inside the archive's folder
        assert entry["file"].startswith("bilagor/") and entry["file"].count("/") == 1  # noqa: PT018
    readable = archive.read("timeline.txt").decode()
    assert "Svar på ditt ärende." in readable and "brev.pdf" in readable  # noqa: PT018
    with gw.engine.connect() as conn:
        exported = conn.execute(select(desk_audit).where(desk_audit.c.action == "EXPORT")).one()
    assert (exported.actor, exported.case_id, exported.detail) == (HANDLER, "EXPORT-1", "attachments=2")
    with pytest.raises(Forbidden):  # readers may read, not take the case away
        gw.desk.export(READER, "EXPORT-1")


def _route_unit_to(gw: Gateway, target: str) -> None:
    store = CatalogueStore(gw.engine)
    store.remove("routes", Route(RC, DESK_UNIT, "internal"), "test")
    store.add("routes", Route(RC, DESK_UNIT, target), "test")
    store.publish("test", "cut-over of the desk unit", force=True)
    gw.routing.refresh()


def test_hand_over_redirects_the_open_desk_cases_to_the_units_new_system(gw: Gateway) -> None:
    for case_id in ("HO-OPEN-1", "HO-OPEN-2", "HO-CLOSED"):
        gw.register(case_id)
    gw.desk.act(HANDLER, "HO-OPEN-2", 1, Action("QUESTION", text="Vilken dag?"))
    gw.desk.act(HANDLER, "HO-CLOSED", 1, Action("CLOSED"))
    with pytest.raises(Refused) as refused:
        gw.desk.hand_over("cli:ops", DESK_UNIT)  # still routed to the desk
    assert refused.value.sub_code == "STILL_IN_DESK"

    _route_unit_to(gw, "deviation-a")
    # until the hand-over, open desk cases stay in the desk even though the route moved
    assert gw.desk.cases(HANDLER).total == 3
    moved = gw.desk.hand_over("cli:ops", DESK_UNIT)
    assert moved == ["HO-OPEN-1", "HO-OPEN-2"]
    assert [c.case_id for c in gw.desk.cases(HANDLER).items] == ["HO-CLOSED"]
    for case_id in moved:
        record = gw.record(case_id)
        assert (record["route_target"], record["receiving_system"], record["status"]) == (
            "deviation-a",
            "SE2321000016-DEV1",
            "REDIRECTED",
        )
        assert record["last_sequence"] is None  # the new system numbers from 1
    with gw.engine.connect() as conn:
        delivered = conn.execute(
            select(outbox_message)
            .where(outbox_message.c.operation == "RegisterCase")
            .order_by(outbox_message.c.stream)
        ).all()
        audited = conn.execute(select(desk_audit).where(desk_audit.c.action == "HAND_OVER")).all()
    assert [(m.stream, m.destination, m.logical_address) for m in delivered] == [
        ("HO-OPEN-1", "deviation-a", DESK_UNIT),
        ("HO-OPEN-2", "deviation-a", DESK_UNIT),
    ]
    for message in delivered:
        case = etree.fromstring(bytes(message.payload))
        assert case.findtext("{*}caseId") == message.stream
        assert case.findtext(f"{{*}}recipient/{CORE}unit/{CORE}unitId") == DESK_UNIT
        assert message.original_consumer == "SE5565594230-1177"
    assert sorted((a.actor, a.case_id) for a in audited) == [
        ("cli:ops", "HO-OPEN-1"),
        ("cli:ops", "HO-OPEN-2"),
    ]
    assert gw.desk.hand_over("cli:ops", DESK_UNIT) == []  # nothing left to hand over


def test_outbox_purge_keeps_the_messages_of_cases_that_are_not_closed(gw: Gateway) -> None:
    for case_id in ("PURGE-OPEN", "PURGE-CLOSED"):
        gw.register(case_id)
    gw.desk.act(HANDLER, "PURGE-CLOSED", 1, Action("CLOSED"))
    with gw.engine.begin() as conn:  # everything delivered long ago
        conn.execute(text("UPDATE outbox_message SET status = 'done', done_ms = 1"))
    store = build_store(gw.config, gw.engine)
    assert store.purge("test", 1000) == 2  # the closed case's RECEIVED and CLOSED
    with gw.engine.connect() as conn:
        left = conn.execute(select(outbox_message.c.stream)).scalars().all()
    assert left == ["PURGE-OPEN"]
