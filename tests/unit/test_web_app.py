"""The web app in-process against the in-memory desk: identity, CSRF, headers, forms, errors, downloads.

Every row of the tables below is one request; what the desk was asked (``FakeDesk.acted``) shows that a
refused request reached nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from contracts import load_code_lists
from gateway.config import load_config
from gateway.desk import Action, NewAttachment
from gateway.web import create_web_app
from gateway.web.security import CSP
from tests.unit.web_fakes import (
    BOARD,
    HANDLER,
    OTHER,
    PDF,
    PNG,
    READER,
    UNIT,
    FakeDesk,
    FixedIdentity,
    standard_desk,
    unit_choices,
)

KEY = b"k" * 32


@pytest.fixture
def desk() -> FakeDesk:
    return standard_desk()


@pytest.fixture
def app(desk: FakeDesk) -> Flask:
    config = load_config(None, env={})
    return create_web_app(
        config, desk, FixedIdentity(), secret_key=KEY, code_lists=load_code_lists(), unit_choices=unit_choices
    )


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def as_person(person: str | None) -> dict[str, str]:
    return {"X-Test-Person": person or ""}


def token_for(client: FlaskClient, case_id: str, kind: str, person: str = HANDLER) -> str:
    html = client.get(f"/cases/{case_id}", headers=as_person(person)).get_data(as_text=True)
    found = re.search(
        rf'action="/cases/{case_id}/actions/{kind}"[^>]*>\s*'
        r'<input type="hidden" name="csrf_token" value="([^"]+)"',
        html,
    )
    assert found, f"no {kind} form on the page of {case_id}"
    return found.group(1)


# -- headers on every response ------------------------------------------------------------------------------
EVERY_KIND_OF_RESPONSE = [
    ("GET", "/cases", HANDLER, 200),
    ("GET", "/cases/CASE-1", HANDLER, 200),
    ("GET", "/cases/CASE-1", None, 403),
    ("GET", "/cases/CASE-OTHER", HANDLER, 403),
    ("GET", "/cases/NO-SUCH", HANDLER, 404),
    ("GET", "/no/such/page", HANDLER, 404),
    ("PUT", "/cases", HANDLER, 405),
    ("POST", "/cases/CASE-1/actions/CLOSED", HANDLER, 403),  # no CSRF token
    ("GET", "/static/desk.css", None, 200),
    ("GET", "/static/desk.js", None, 200),
    ("GET", "/api/v1/cases", HANDLER, 200),
    ("GET", "/api/v1/cases", None, 401),
    ("GET", "/api/v1/cases/NO-SUCH", HANDLER, 404),
    ("GET", "/api/v1/openapi.json", HANDLER, 200),
    ("GET", "/cases/CASE-1/attachments/in-1-0", HANDLER, 200),
    ("GET", "/cases/CASE-1/export", HANDLER, 200),
    ("GET", "/me", HANDLER, 200),
    ("GET", "/help", HANDLER, 200),
]


@pytest.mark.parametrize(("method", "path", "person", "status"), EVERY_KIND_OF_RESPONSE)
def test_security_headers_on_every_response(
    client: FlaskClient, method: str, path: str, person: str | None, status: int
) -> None:
    with client.open(path, method=method, headers=as_person(person)) as response:
        check_headers(response, status)


def check_headers(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in response.headers


def test_no_certificate_is_a_swedish_page_and_401_json(client: FlaskClient, desk: FakeDesk) -> None:
    page = client.get("/cases", headers=as_person(None))
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert 'lang="sv"' in html
    assert "Du är inte inloggad" in html
    assert "HSA-id" in html
    assert re.search(r"Logg-id: [0-9a-f-]{36}", html)
    api = client.get("/api/v1/me", headers=as_person(None))
    assert api.status_code == 401
    error = api.get_json()["error"]
    assert error["code"] == "NO_IDENTITY"
    assert re.fullmatch(r"[0-9a-f-]{36}", error["logId"])
    assert desk.acted == []


# -- CSRF ---------------------------------------------------------------------------------------------------
def test_a_form_with_its_token_acts(client: FlaskClient, desk: FakeDesk) -> None:
    token = token_for(client, "CASE-1", "PARTIAL_ANSWER")
    response = client.post(
        "/cases/CASE-1/actions/PARTIAL_ANSWER",
        data={"csrf_token": token, "version": "1", "text": "Vi utreder."},
        headers=as_person(HANDLER),
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/cases/CASE-1?done=PARTIAL_ANSWER")
    assert desk.acted == [(HANDLER, "CASE-1", 1, Action("PARTIAL_ANSWER", text="Vi utreder."))]
    after = client.get(response.headers["Location"], headers=as_person(HANDLER)).get_data(as_text=True)
    assert "Delsvaret är skickat till anmälaren." in after


def _expired_token(client: FlaskClient) -> str:
    stamp, _, _ = token_for(client, "CASE-1", "CLOSED").partition(".")
    from gateway.web.security import CsrfTokens

    old = CsrfTokens(KEY, clock=lambda: int(stamp) - 13 * 3600)
    return old.make(HANDLER, "/cases/CASE-1/actions/CLOSED")


CSRF_REFUSALS = [
    ("no token", lambda c: None),
    ("empty", lambda c: ""),
    ("garbage", lambda c: "not-a-token"),
    ("another form's token", lambda c: token_for(c, "CASE-1", "IN_PROGRESS")),
    ("another case's token", lambda c: token_for(c, "CASE-2", "CLOSED")),
    ("another person's token", lambda c: token_for(c, "CASE-1", "CLOSED", person=HANDLER)),
    ("tampered", lambda c: token_for(c, "CASE-1", "CLOSED")[:-2] + "AA"),
    ("expired", _expired_token),
    ("from the future", lambda c: "99999999999." + token_for(c, "CASE-1", "CLOSED").partition(".")[2]),
]


@pytest.mark.parametrize(("name", "make"), CSRF_REFUSALS, ids=[r[0] for r in CSRF_REFUSALS])
def test_a_post_without_a_valid_token_changes_nothing(
    client: FlaskClient, desk: FakeDesk, name: str, make: Any
) -> None:
    token = make(client)
    data = {"version": "1", "confirm": "yes"}
    if token is not None:
        data["csrf_token"] = token
    person = OTHER_HANDLER if name == "another person's token" else HANDLER
    response = client.post("/cases/CASE-1/actions/CLOSED", data=data, headers=as_person(person))
    assert response.status_code == 403
    assert "Formuläret kunde inte tas emot" in response.get_data(as_text=True)
    assert desk.acted == []


OTHER_HANDLER = "SE2321000016-HND2"


@pytest.fixture(autouse=True)
def _second_handler(desk: FakeDesk) -> None:
    desk.add_grant(OTHER_HANDLER, UNIT, "handler")


def test_a_cross_site_post_is_refused_before_anything(client: FlaskClient, desk: FakeDesk) -> None:
    token = token_for(client, "CASE-1", "CLOSED")
    response = client.post(
        "/cases/CASE-1/actions/CLOSED",
        data={"csrf_token": token, "version": "1", "confirm": "yes"},
        headers={**as_person(HANDLER), "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    )
    assert response.status_code == 403
    assert desk.acted == []


@pytest.mark.parametrize(
    ("path", "mode", "dest", "status"),
    [
        ("/cases/CASE-1", "navigate", "document", 200),  # a link from the intranet to a case
        ("/cases/CASE-1", "no-cors", "image", 403),
        ("/cases/CASE-1/attachments/in-1-0", "navigate", "document", 403),
        ("/cases/CASE-1/export", "navigate", "document", 403),
        ("/api/v1/cases", "cors", "empty", 403),
    ],
)
def test_fetch_metadata_cross_site(client: FlaskClient, path: str, mode: str, dest: str, status: int) -> None:
    headers = {
        **as_person(HANDLER),
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": mode,
        "Sec-Fetch-Dest": dest,
    }
    assert client.get(path, headers=headers).status_code == status


# -- forms become actions -----------------------------------------------------------------------------------
FORMS = [
    ("CASE-2", "RECEIVED", {}, Action("RECEIVED")),
    ("CASE-1", "IN_PROGRESS", {}, Action("IN_PROGRESS")),
    ("CASE-1", "QUESTION", {"text": "  Vilken dag?\r\n"}, Action("QUESTION", text="Vilken dag?")),
    ("CASE-1", "ANSWER", {"text": "Svar", "standard_answer": ""}, Action("ANSWER", text="Svar")),
    (
        "CASE-1",
        "ANSWER",
        {"text": "Tillägg", "standard_answer": "1"},
        Action("ANSWER", text="Tillägg", standard_answer="1"),
    ),
    (
        "CASE-1",
        "ANSWER",
        {"text": " ", "standard_answer": "1"},
        Action("ANSWER", standard_answer="1"),
    ),
    ("CASE-1", "ALLOW_ATTACHMENTS", {"allow": "true"}, Action("ALLOW_ATTACHMENTS", allow=True)),
    (
        "CASE-1",
        "CORRECT_STATISTICS",
        {"mainProblem": "1", "subProblem": "1.2", "experiencedProblem": "", "businessArea": "3"},
        Action("CORRECT_STATISTICS", codes={"mainProblem": "1", "subProblem": "1.2", "businessArea": "3"}),
    ),
    ("CASE-PN", "SET_CONCERNED_UNIT", {"unit": UNIT}, Action("SET_CONCERNED_UNIT", unit=UNIT)),
    ("CASE-1", "CLOSED", {"confirm": "yes"}, Action("CLOSED")),
]


@pytest.mark.parametrize(("case_id", "kind", "fields", "expected"), FORMS)
def test_each_form_posts_its_action(
    client: FlaskClient, desk: FakeDesk, case_id: str, kind: str, fields: dict[str, str], expected: Action
) -> None:
    token = token_for(client, case_id, kind)
    version = desk.cases_by_id[case_id]["version"]
    response = client.post(
        f"/cases/{case_id}/actions/{kind}",
        data={"csrf_token": token, "version": str(version), **fields},
        headers=as_person(HANDLER),
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    assert desk.acted == [(HANDLER, case_id, version, expected)]


def test_files_travel_with_the_answer(client: FlaskClient, desk: FakeDesk) -> None:
    token = token_for(client, "CASE-1", "ANSWER")
    response = client.post(
        "/cases/CASE-1/actions/ANSWER",
        data={
            "csrf_token": token,
            "version": "1",
            "standard_answer": "2",
            "attachments": [
                (BytesIO(PDF), "/home/anna/svar.pdf", "application/pdf"),
                (BytesIO(PNG), "bild.PNG", ""),
            ],
        },
        content_type="multipart/form-data",
        headers=as_person(HANDLER),
    )
    assert response.status_code == 303
    action = desk.acted[0][3]
    assert action.attachments == (
        NewAttachment("svar.pdf", "application/pdf", PDF),
        NewAttachment("bild.PNG", "image/png", PNG),
    )


REFUSED_FORMS = [
    # (kind, fields, files, expected Swedish reason, the desk was asked)
    ("QUESTION", {"text": "   "}, [], "Meddelandet saknas", True),
    ("ANSWER", {"text": "x" * 20_001}, [], "Meddelandet får vara högst 20000 tecken.", False),
    ("CLOSED", {}, [], "Kryssa i att du vill avsluta ärendet.", False),
    (
        "ANSWER",
        {"text": "Svar"},
        [(b"MZ", "program.exe", "application/x-msdownload")],
        "måste vara PDF",
        False,
    ),
    (
        "ANSWER",
        {"text": "Svar"},
        [(PDF, f"f{i}.pdf", "application/pdf") for i in range(11)],
        "högst 10 filer",
        False,
    ),
    ("ANSWER", {"text": "Svar"}, [(b"", "tom.pdf", "application/pdf")], "En bifogad fil är tom.", False),
    ("ANSWER", {"text": "Svar"}, [(b"<html>", "falsk.pdf", "application/pdf")], "inte en fil av typen", True),
    ("ANSWER", {"standard_answer": "99"}, [], "Okänt standardsvar", True),
]


@pytest.mark.parametrize(("kind", "fields", "files", "reason", "asked"), REFUSED_FORMS)
def test_a_refusal_shows_the_reason_in_swedish_and_keeps_the_text(
    client: FlaskClient,
    desk: FakeDesk,
    kind: str,
    fields: dict[str, str],
    files: list[tuple[bytes, str, str]],
    reason: str,
    asked: bool,
) -> None:
    token = token_for(client, "CASE-1", kind)
    data: dict[str, Any] = {"csrf_token": token, "version": "1", **fields}
    if files:
        data["attachments"] = [(BytesIO(content), name, mime) for content, name, mime in files]
    response = client.post(
        f"/cases/CASE-1/actions/{kind}",
        data=data,
        content_type="multipart/form-data",
        headers=as_person(HANDLER),
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert reason in html.replace("\u00a0", " ").replace("20 000", "20000")
    assert 'role="alert"' in html
    assert bool(desk.acted) == asked
    assert desk.cases_by_id["CASE-1"]["version"] == 1
    typed = fields.get("text", "").strip()
    if typed and len(typed) < 100:
        assert typed in html  # the text is kept in its form


def test_a_conflict_says_the_case_changed_and_links_to_reload(client: FlaskClient, desk: FakeDesk) -> None:
    token = token_for(client, "CASE-1", "PARTIAL_ANSWER")
    desk.cases_by_id["CASE-1"]["version"] = 2  # someone else acted meanwhile
    response = client.post(
        "/cases/CASE-1/actions/PARTIAL_ANSWER",
        data={"csrf_token": token, "version": "1", "text": "Mitt delsvar"},
        headers=as_person(HANDLER),
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Ärendet har ändrats sedan du öppnade det" in html
    assert 'href="/cases/CASE-1"' in html
    assert "Ladda om ärendet" in html
    assert "Mitt delsvar" in html


def test_move_is_explained_not_offered(client: FlaskClient) -> None:
    html = client.get("/cases/CASE-1", headers=as_person(HANDLER)).get_data(as_text=True)
    assert (
        "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare." in html
    )
    assert "/actions/MOVE" not in html


# -- who sees what ------------------------------------------------------------------------------------------
def test_a_reader_sees_the_case_but_no_form(client: FlaskClient, desk: FakeDesk) -> None:
    response = client.get("/cases/CASE-1", headers=as_person(READER))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Jag fick vänta länge." in html
    assert "<form" not in html.split('id="h-atgarder"')[1]
    assert "läsbehörighet" in html
    assert "anna@example.invalid" not in html  # a reader does not get the reporter's contact details
    token = token_for(client, "CASE-1", "CLOSED", person=HANDLER)
    forged = client.post(
        "/cases/CASE-1/actions/CLOSED",
        data={"csrf_token": token, "version": "1", "confirm": "yes"},
        headers=as_person(READER),
    )
    assert forged.status_code == 403  # a handler's token is not the reader's
    assert desk.acted == []


def test_a_person_of_another_unit_gets_403_and_it_is_recorded(client: FlaskClient, desk: FakeDesk) -> None:
    for path in ("/cases/CASE-1", "/cases/CASE-1/attachments/in-1-0", "/cases/CASE-1/export"):
        response = client.get(path, headers=as_person(OTHER))
        assert response.status_code == 403
        assert "Du har inte behörighet" in response.get_data(as_text=True)
    api = client.get("/api/v1/cases/CASE-1", headers=as_person(OTHER))
    assert api.status_code == 403
    assert api.get_json()["error"]["code"] == "FORBIDDEN"
    assert ("SE2321000016-OTH1", "CASE-1") in desk.denied
    listing = client.get("/cases", headers=as_person(OTHER)).get_data(as_text=True)
    assert "CASE-1" not in listing
    assert "CASE-OTHER" in listing


def test_a_patient_board_case_offers_the_units_of_the_hsa_tree(client: FlaskClient) -> None:
    html = client.get("/cases/CASE-PN", headers=as_person(HANDLER)).get_data(as_text=True)
    assert "Akuten, på natten" in html
    assert f'<option value="{UNIT}">' in html
    plain = client.get("/cases/CASE-1", headers=as_person(HANDLER)).get_data(as_text=True)
    assert "SET_CONCERNED_UNIT" not in plain
    assert BOARD not in plain


# -- downloads ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "mime", "shown_type", "disposition"),
    [
        ("journal.pdf", "application/pdf", "application/pdf", "attachment; filename=journal.pdf"),
        ("bild.png", "image/png", "image/png", "attachment; filename=bild.png"),
        ("sida.html", "text/html", "application/octet-stream", "attachment; filename=sida.html"),
        (
            'a"b\r\nSet-Cookie: x=1.pdf',
            "application/pdf",
            "application/pdf",
            'attachment; filename="a_b__Set-Cookie: x=1.pdf"',
        ),
        ("läkarintyg.pdf", "application/pdf", "application/pdf", "filename*=UTF-8''l%C3%A4karintyg.pdf"),
        ("../../etc/passwd", "application/pdf", "application/pdf", "attachment; filename=_.._etc_passwd"),
    ],
)
def test_attachments_download_as_attachment_with_their_declared_type(
    client: FlaskClient, desk: FakeDesk, name: str, mime: str, shown_type: str, disposition: str
) -> None:
    ref = desk.add_file("CASE-1", name, mime, b"data")
    for path in (f"/cases/CASE-1/attachments/{ref}", f"/api/v1/cases/CASE-1/attachments/{ref}"):
        response = client.get(path, headers=as_person(HANDLER))
        assert response.status_code == 200
        assert response.mimetype == shown_type
        assert disposition in response.headers["Content-Disposition"]
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert "Set-Cookie" not in response.headers
        assert response.data == b"data"


def test_export_is_a_zip_download(client: FlaskClient, desk: FakeDesk) -> None:
    response = client.get("/cases/CASE-1/export", headers=as_person(HANDLER))
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == "attachment; filename=arende-CASE-1.zip"
    assert response.data.startswith(b"PK")
    assert desk.exports == ["CASE-1"]


# -- the case list ------------------------------------------------------------------------------------------
def test_the_list_shows_newest_first_with_words(client: FlaskClient) -> None:
    html = client.get("/cases", headers=as_person(HANDLER)).get_data(as_text=True)
    order = [m.group(1) for m in re.finditer(r'<a href="/cases/([^"]+)">', html)]
    assert order == ["CASE-2", "CASE-PN", "CASE-1"]
    assert "Synpunkt" in html
    assert "Klagomål" in html
    assert "Mottaget" in html
    assert "Nytt" in html


FILTERS = [
    ("status=RECEIVED", ["CASE-PN", "CASE-1"]),
    ("category=FEEDBACK", ["CASE-2"]),
    (f"unit={BOARD}", ["CASE-PN"]),
    ("case=CASE-1", ["CASE-1"]),
    ("from=2026-03-07", ["CASE-2", "CASE-PN"]),
    ("to=2026-03-05", ["CASE-1"]),
    ("waiting=5", ["CASE-1"]),
    ("per_page=1&page=2", ["CASE-PN"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_list_filters(client: FlaskClient, query: str, expected: list[str]) -> None:
    html = client.get(f"/cases?{query}", headers=as_person(HANDLER)).get_data(as_text=True)
    assert [m.group(1) for m in re.finditer(r'<th scope="row"><a href="/cases/([^"]+)">', html)] == expected


BAD_FILTERS = [
    ("status=OPEN", "Välj en status ur listan."),
    ("category=x", "Välj klagomål eller synpunkt."),
    ("from=2026-13-01", "Skriv datumet som ÅÅÅÅ-MM-DD"),
    ("from=2026-03-05&to=2026-03-01", "Slutdatumet kan inte vara före startdatumet."),
    ("waiting=-1", "Skriv ett antal dagar mellan 0 och 3650."),
    ("waiting=many", "Skriv ett antal dagar"),
    ("page=0", "Sidnumret finns inte."),
    ("per_page=1000", "Visa mellan 1 och 100 ärenden per sida."),
    ("case=" + "x" * 65, "Ett ärende-id är högst 64 tecken."),
]


@pytest.mark.parametrize(("query", "message"), BAD_FILTERS)
def test_bad_filters_are_named_in_swedish(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/cases?{query}", headers=as_person(HANDLER))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    api_query = (
        query.replace("from=", "receivedFrom=")
        .replace("to=", "receivedTo=")
        .replace("waiting=", "waitingDays=")
    )
    api_query = api_query.replace("case=", "caseId=").replace("per_page=", "perPage=")
    api = client.get(f"/api/v1/cases?{api_query}", headers=as_person(HANDLER))
    assert api.status_code == 400
    assert api.get_json()["error"]["code"] == "BAD_REQUEST"


def test_a_person_without_grants_is_told_how_to_get_them(client: FlaskClient) -> None:
    html = client.get("/cases", headers=as_person("SE2321000016-NEW1")).get_data(as_text=True)
    assert "ingen behörighet till någon enhet" in html


# -- pages contain nothing from elsewhere and nothing inline -----------------------------------------------
PAGES = ["/cases", "/cases/CASE-1", "/cases/CASE-PN", "/cases/CASE-2", "/me", "/help", "/cases/NO-SUCH", "/x"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("person", [HANDLER, READER, None])
def test_pages_have_no_inline_script_or_style_and_no_external_url(
    client: FlaskClient, path: str, person: str | None
) -> None:
    html = client.get(path, headers=as_person(person)).get_data(as_text=True)
    assert html.startswith('<!doctype html>\n<html lang="sv">')
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert scripts == [""], "only the one static script, empty in the page"
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/desk.js" defer>']
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]", html.replace("</", "")), "no external URL"
    assert "javascript:" not in html
    for link in re.findall(r'(?:href|src|action)="([^"]*)"', html):
        assert link.startswith(("/", "#", "?")) or link == "", link
    assert 'href="#innehall"' in html
    assert 'id="innehall"' in html


# -- the JSON API -------------------------------------------------------------------------------------------
def test_api_act_and_errors(client: FlaskClient, desk: FakeDesk) -> None:
    headers = as_person(HANDLER)
    ok = client.post(
        "/api/v1/cases/CASE-1/actions",
        json={"kind": "PARTIAL_ANSWER", "version": 1, "text": "Hej"},
        headers=headers,
    )
    assert ok.status_code == 200
    assert ok.get_json() == {"version": 2}
    stale = client.post(
        "/api/v1/cases/CASE-1/actions", json={"kind": "IN_PROGRESS", "version": 1}, headers=headers
    )
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "CONFLICT"
    move = client.post(
        "/api/v1/cases/CASE-1/actions", json={"kind": "MOVE", "version": 2, "unit": UNIT}, headers=headers
    )
    assert move.status_code == 422
    assert move.get_json()["error"]["subCode"] == "MOVE_NOT_SUPPORTED"
    assert "kan inte flyttas" in move.get_json()["error"]["message"]
    form = client.post(
        "/api/v1/cases/CASE-1/actions", data={"kind": "CLOSED", "version": "2"}, headers=headers
    )
    assert form.status_code == 415  # a form post (which another site could make) is never read
    assert len(desk.acted) == 3


API_BAD_BODIES = [
    (b"not json", 400),
    (b"[]", 400),
    (b'{"kind": "NOPE", "version": 1}', 400),
    (b'{"kind": "CLOSED"}', 400),
    (b'{"kind": "CLOSED", "version": true}', 400),
    (b'{"kind": "CLOSED", "version": 0}', 400),
    (b'{"kind": "ANSWER", "version": 1, "text": 5}', 400),
    (b'{"kind": "ANSWER", "version": 1, "attachments": [{"fileName": "a.pdf"}]}', 400),
    (
        b'{"kind": "ANSWER", "version": 1, "attachments":'
        b' [{"fileName": "a.pdf", "mimeType": "application/pdf", "data": "***"}]}',
        400,
    ),
    (
        b'{"kind": "ANSWER", "version": 1, "attachments":'
        b' [{"fileName": "a.exe", "mimeType": "text/html", "data": "QQ=="}]}',
        422,
    ),
    (b'{"kind": "CORRECT_STATISTICS", "version": 1, "codes": {"gender": "1"}}', 400),
]


@pytest.mark.parametrize(("body", "status"), API_BAD_BODIES)
def test_api_bad_bodies(client: FlaskClient, desk: FakeDesk, body: bytes, status: int) -> None:
    response = client.post(
        "/api/v1/cases/CASE-1/actions", data=body, content_type="application/json", headers=as_person(HANDLER)
    )
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["logId"]
    assert desk.acted == []


def test_api_reads(client: FlaskClient) -> None:
    headers = as_person(HANDLER)
    listing = client.get("/api/v1/cases?status=RECEIVED&perPage=1", headers=headers).get_json()
    assert listing["total"] == 2
    assert listing["perPage"] == 1
    assert len(listing["items"]) == 1
    case = client.get("/api/v1/cases/CASE-1", headers=headers).get_json()
    assert case["caseId"] == "CASE-1"
    assert case["submittedAt"] == "2026-03-02T10:15:00+01:00"
    assert case["codes"] == {"mainProblem": {"code": "1", "text": "Vård och behandling"}}
    me = client.get("/api/v1/me", headers=headers).get_json()
    assert me["person"] == HANDLER
    assert {u["hsaId"] for u in me["units"]} == {UNIT, BOARD}
    answers = client.get("/api/v1/standard-answers", headers=headers).get_json()
    assert answers[0] == {"code": "1", "displayName": "Tack för din synpunkt", "text": answers[0]["text"]}


def test_every_api_route_is_in_the_openapi_document_and_back(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json", headers=as_person(HANDLER)).get_json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), "/api/v1" + re.sub(r"\{(\w+)\}", "<x>", path))
        for path, item in document["paths"].items()
        for method in item
    }
    served = {
        (method, re.sub(r"<\w+>", "<x>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served
