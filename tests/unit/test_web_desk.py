"""The web app on the real desk, in-process: a case registered over the SOAP app is found, read, answered
with a standard answer and a PDF, asked about and closed through the pages and the API, on SQLite and
PostgreSQL; what a handler does ends as UpdateCase messages in the outbox, in order.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from contracts import load_code_lists
from gateway.web import create_web_app
from outbox.schema import outbox_message
from tests.unit.deskkit import (
    CARE_PROVIDER,
    CORE,
    DESK_UNIT,
    HANDLER,
    HANDLER2,
    READER,
    Gateway,
    register_payload,
)
from tests.unit.web_fakes import PDF, PNG, FixedIdentity

STRANGER = "SE2321000016-STR1"
ADMIN = "SE2321000016-ADM1"


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    gateway.desk.grant(ADMIN, HANDLER, DESK_UNIT, "handler")
    gateway.desk.grant(ADMIN, HANDLER2, DESK_UNIT, "handler")
    gateway.desk.grant(ADMIN, READER, CARE_PROVIDER, "reader")
    yield gateway
    gateway.close()


@pytest.fixture
def client(gw: Gateway) -> Iterator[FlaskClient]:
    def units() -> list[tuple[str, str]]:
        return [(n.hsa_id, n.name) for n in gw.routing.table.catalogue.hsa if n.kind == "unit"]

    app = create_web_app(
        gw.config,
        gw.desk,
        FixedIdentity(),
        secret_key=b"s" * 32,
        code_lists=load_code_lists(),
        unit_choices=units,
    )
    with app.test_client() as client:
        yield client


def with_attachment(case_id: str) -> etree._Element:
    payload = register_payload(case_id)
    ns = etree.QName(payload).namespace
    attachment = etree.SubElement(payload, f"{{{ns}}}attachment")
    for name, value in (
        ("attachmentId", "a1"),
        ("fileName", "röntgen <svar>.png"),
        ("mimeType", "image/png"),
        ("data", base64.b64encode(PNG).decode()),
    ):
        etree.SubElement(attachment, f"{CORE}{name}").text = value
    return payload


def person(hsa_id: str) -> dict[str, str]:
    return {"X-Test-Person": hsa_id}


def form(client: FlaskClient, case_id: str, kind: str, who: str = HANDLER) -> dict[str, str]:
    page = client.get(f"/cases/{case_id}", headers=person(who)).get_data(as_text=True)
    found = re.search(
        rf'action="/cases/{case_id}/actions/{kind}"[^>]*>\s*'
        r'<input type="hidden" name="csrf_token" value="([^"]+)">'
        r'\s*<input type="hidden" name="version" value="(\d+)">',
        page,
    )
    assert found, f"no {kind} form"
    return {"csrf_token": found.group(1), "version": found.group(2)}


def sent(gw: Gateway, case_id: str) -> list[tuple[str, bytes]]:
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(outbox_message.c.payload)
            .where(outbox_message.c.stream == case_id, outbox_message.c.operation == "UpdateCase")
            .order_by(outbox_message.c.id)
        ).all()
    found = []
    for row in rows:
        root = etree.fromstring(bytes(row.payload))
        found.append((str(root.findtext("{*}updateType")), bytes(row.payload)))
    return found


def test_a_handler_finds_reads_answers_asks_and_closes(gw: Gateway, client: FlaskClient) -> None:
    gw.call(with_attachment("WEB-1"), DESK_UNIT)
    listing = client.get("/cases?case=WEB-1", headers=person(HANDLER)).get_data(as_text=True)
    assert 'href="/cases/WEB-1"' in listing
    assert "Klagomål: Vård och behandling" in listing

    page = client.get("/cases/WEB-1", headers=person(HANDLER)).get_data(as_text=True)
    assert "ihållande ryggsmärta" in page
    assert "Kim" in page
    assert "kim.exempelsson@example.se" in page
    assert "Behandling" in page
    assert "Primärvård" in page
    ref = re.search(r'href="/cases/WEB-1/attachments/([^"]+)" download>röntgen &lt;svar&gt;.png', page)
    assert ref, "the citizen's attachment is listed, escaped"
    download = client.get(f"/cases/WEB-1/attachments/{ref.group(1)}", headers=person(HANDLER))
    assert download.data == PNG
    assert download.mimetype == "image/png"
    assert download.headers["Content-Disposition"].startswith("attachment")

    tokens = form(client, "WEB-1", "PARTIAL_ANSWER")
    response = client.post(
        "/cases/WEB-1/actions/PARTIAL_ANSWER",
        data={**tokens, "text": "Vi utreder och återkommer."},
        headers=person(HANDLER),
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    tokens = form(client, "WEB-1", "QUESTION")
    assert (
        client.post(
            "/cases/WEB-1/actions/QUESTION",
            data={**tokens, "text": "Vilken dag ringde du?"},
            headers=person(HANDLER),
        ).status_code
        == 303
    )
    tokens = form(client, "WEB-1", "ANSWER")
    answered = client.post(
        "/cases/WEB-1/actions/ANSWER",
        data={
            **tokens,
            "standard_answer": "1",
            "text": "",
            "attachments": [(io.BytesIO(PDF), "svar.pdf")],
        },
        content_type="multipart/form-data",
        headers=person(HANDLER),
    )
    assert answered.status_code == 303, answered.get_data(as_text=True)
    tokens = form(client, "WEB-1", "CLOSED")
    closed = client.post(
        "/cases/WEB-1/actions/CLOSED", data={**tokens, "confirm": "yes"}, headers=person(HANDLER)
    )
    assert closed.status_code == 303

    kinds = [kind for kind, _ in sent(gw, "WEB-1")]
    assert kinds == ["RECEIVED", "PARTIAL_ANSWER", "QUESTION", "ANSWER", "CLOSED"]
    answer = etree.fromstring(sent(gw, "WEB-1")[3][1])
    assert answer.findtext("{*}message/{*}standardAnswer/{*}code") == "1"
    assert base64.b64decode(answer.findtext("{*}attachment/{*}data") or "") == PDF
    final = client.get("/cases/WEB-1", headers=person(HANDLER)).get_data(as_text=True)
    assert "Ärendet är avslutat och kan inte ändras." in final
    assert "/actions/" not in final
    outgoing = re.search(r'href="/cases/WEB-1/attachments/(out-[^"]+)" download>svar.pdf', final)
    assert outgoing, "the PDF sent is in the timeline"
    assert client.get(f"/cases/WEB-1/attachments/{outgoing.group(1)}", headers=person(HANDLER)).data == PDF
    export = client.get("/cases/WEB-1/export", headers=person(HANDLER))
    assert export.status_code == 200
    assert export.data.startswith(b"PK")


def test_the_loser_of_two_handlers_is_told_the_case_changed(gw: Gateway, client: FlaskClient) -> None:
    gw.register("WEB-2")
    first = form(client, "WEB-2", "PARTIAL_ANSWER", HANDLER)
    second = form(client, "WEB-2", "PARTIAL_ANSWER", HANDLER2)
    ok = client.post(
        "/cases/WEB-2/actions/PARTIAL_ANSWER", data={**first, "text": "Ett"}, headers=person(HANDLER)
    )
    assert ok.status_code == 303
    lost = client.post(
        "/cases/WEB-2/actions/PARTIAL_ANSWER", data={**second, "text": "Två"}, headers=person(HANDLER2)
    )
    assert lost.status_code == 409
    assert "Ärendet har ändrats sedan du öppnade det" in lost.get_data(as_text=True)
    assert [kind for kind, _ in sent(gw, "WEB-2")] == ["RECEIVED", "PARTIAL_ANSWER"]


def test_a_reader_reads_and_a_stranger_sees_nothing(gw: Gateway, client: FlaskClient) -> None:
    gw.register("WEB-3")
    page = client.get("/cases/WEB-3", headers=person(READER))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "ihållande ryggsmärta" in html
    assert "<form" not in html.split('id="h-atgarder"')[1]
    assert "kim.exempelsson@example.se" not in html
    api = client.post(
        "/api/v1/cases/WEB-3/actions", json={"kind": "IN_PROGRESS", "version": 1}, headers=person(READER)
    )
    assert api.status_code == 403
    for path in ("/cases/WEB-3", "/api/v1/cases/WEB-3", "/cases/WEB-3/export"):
        assert client.get(path, headers=person(STRANGER)).status_code == 403
    assert "WEB-3" not in client.get("/cases", headers=person(STRANGER)).get_data(as_text=True)
    assert client.get("/api/v1/cases", headers=person(STRANGER)).get_json()["total"] == 0
    assert [kind for kind, _ in sent(gw, "WEB-3")] == ["RECEIVED"]


def test_the_api_acts_and_refuses_in_swedish(gw: Gateway, client: FlaskClient) -> None:
    gw.register("WEB-4")
    headers = person(HANDLER)
    case = client.get("/api/v1/cases/WEB-4", headers=headers).get_json()
    assert case["status"] == "RECEIVED"
    assert "PARTIAL_ANSWER" in case["actions"]
    version = case["version"]
    answer = client.post(
        "/api/v1/cases/WEB-4/actions",
        json={
            "kind": "ANSWER",
            "version": version,
            "standardAnswer": "2",
            "attachments": [
                {"fileName": "a.pdf", "mimeType": "application/pdf", "data": base64.b64encode(PDF).decode()}
            ],
        },
        headers=headers,
    )
    assert answer.status_code == 200, answer.get_json()
    version = answer.get_json()["version"]
    move = client.post(
        "/api/v1/cases/WEB-4/actions",
        json={"kind": "MOVE", "version": version, "unit": DESK_UNIT},
        headers=headers,
    )
    assert move.status_code == 422
    assert move.get_json()["error"]["subCode"] == "MOVE_NOT_SUPPORTED"
    fake_pdf = client.post(
        "/api/v1/cases/WEB-4/actions",
        json={
            "kind": "PARTIAL_ANSWER",
            "version": version,
            "text": "x",
            "attachments": [
                {
                    "fileName": "a.pdf",
                    "mimeType": "application/pdf",
                    "data": base64.b64encode(b"<html>").decode(),
                }
            ],
        },
        headers=headers,
    )
    assert fake_pdf.status_code == 422
    closed = client.post(
        "/api/v1/cases/WEB-4/actions", json={"kind": "CLOSED", "version": version}, headers=headers
    )
    assert closed.status_code == 200
    again = client.post(
        "/api/v1/cases/WEB-4/actions",
        json={"kind": "PARTIAL_ANSWER", "version": version + 1, "text": "x"},
        headers=headers,
    )
    assert again.status_code == 422
    assert again.get_json()["error"]["subCode"] == "CASE_CLOSED"
    assert [kind for kind, _ in sent(gw, "WEB-4")] == ["RECEIVED", "ANSWER", "CLOSED"]
