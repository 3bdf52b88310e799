"""Text from citizens is always escaped: each payload of tests/data/web/hostile-texts.txt, put into every
field a citizen controls, leaves the page's element and attribute structure exactly as a harmless text does,
and is shown as the text it is.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from contracts import load_code_lists
from gateway.config import load_config
from gateway.desk import CodeText, PersonView, TimelineEvent
from gateway.web import create_web_app
from tests.unit.web_fakes import HANDLER, NOW, FakeDesk, FixedIdentity, standard_desk, unit_choices

CORPUS = Path(__file__).resolve().parents[1] / "data" / "web" / "hostile-texts.txt"
PAYLOADS = [
    line
    for line in CORPUS.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


class _Structure(HTMLParser):
    """The page as a list of (tag, attribute names, and attribute values that are not text) events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = tuple(sorted(name for name, _ in attrs))
        self.events.append((tag, *names))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("/" + tag,))

    def handle_comment(self, data: str) -> None:
        self.events.append(("<!--",))

    def unknown_decl(self, data: str) -> None:
        self.events.append(("<![",))


def structure(page: str) -> list[tuple[str, ...]]:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser.events


def _hostile_case(desk: FakeDesk, case_id: str, text: str) -> None:
    person = PersonView(text, text, "191212121212", text, text)
    desk.add_case(
        case_id,
        recipient_type="PATIENT_BOARD",
        description=text,
        location_description=text,
        reporter=person,
        subject=person,
        codes={"mainProblem": CodeText(text[:16], text), "businessArea": CodeText("9", text)},
        timeline=[TimelineEvent(NOW, "in", "RegisterCase", text, text, text)],
        channel=text,
        contact_channel=text,
    )
    desk.add_file(case_id, text + ".pdf", "application/pdf", b"%PDF-1.4")
    desk.cases_by_id[case_id]["timeline"].append(
        TimelineEvent(NOW, "in", text, text, text, text, list(desk.cases_by_id[case_id]["attachments"]))
    )


def _app(desk: FakeDesk) -> Flask:
    config = load_config(None, env={})
    return create_web_app(
        config,
        desk,
        FixedIdentity(HANDLER),
        secret_key=b"k" * 32,
        code_lists=load_code_lists(),
        unit_choices=unit_choices,
    )


def _visible(page: str) -> str:
    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(page)
    return "".join(parser.parts)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_in_every_citizen_field_is_only_text(payload: str) -> None:
    desk = standard_desk()
    _hostile_case(desk, "HARMLESS", "harmless text")
    _hostile_case(desk, "HOSTILE", payload)
    client = _app(desk).test_client()
    baseline = client.get("/cases/HARMLESS").get_data(as_text=True)
    page = client.get("/cases/HOSTILE").get_data(as_text=True)
    assert structure(page) == structure(baseline.replace("HARMLESS", "HOSTILE"))
    assert payload in _visible(page), "shown as the text it is"
    if any(c in payload for c in "<>\"'&"):
        assert payload not in page, "never unescaped in the HTML"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_as_case_id_in_the_list_is_only_text(payload: str) -> None:
    desk = standard_desk()
    desk.add_case(payload[:64], codes={"mainProblem": CodeText("1", payload)})
    desk.add_case("HARMLESS", codes={"mainProblem": CodeText("1", "harmless")}, received_at=NOW)
    client = _app(desk).test_client()
    page = client.get("/cases").get_data(as_text=True)
    assert html.escape(payload[:64], quote=False) in page or payload[:64] in _visible(page)
    assert structure(page).count(("script", "defer", "src")) == 1
    if any(c in payload for c in "<>\"'&"):
        assert payload[:64] not in page


def test_the_corpus_is_not_empty() -> None:
    assert len(PAYLOADS) >= 20
