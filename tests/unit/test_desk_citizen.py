"""The desk as a case's handling system for 1177's messages: the citizen's reply and supplements land in
the case's timeline (no delivery anywhere), attachments from the citizen follow the desk's one setting,
and that setting travels to 1177 with every IN_PROGRESS and QUESTION the desk sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.desk import Action, Refused
from tests.unit.deskkit import HANDLER
from tests.unit.flowkit import DESK_UNIT, INERA, PDF, FlowGateway, attachment, case_payload, ok


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[FlowGateway]:
    gateway = FlowGateway(db_url, tmp_path)
    gateway.desk.grant("cli:test", HANDLER, DESK_UNIT, "handler")
    try:
        ok(gateway.call(_case("DC-1"), DESK_UNIT))
        yield gateway
    finally:
        gateway.close()


def _case(case_id: str) -> etree._Element:
    return case_payload(case_id, DESK_UNIT)


def _act(gw: FlowGateway, action: Action) -> etree._Element:
    gw.desk.act(HANDLER, "DC-1", gw.record("DC-1")["version"], action)
    return etree.fromstring(bytes(gw.outbox("DC-1")[-1]["payload"]))


def test_allow_attachments_is_one_setting_that_travels_with_in_progress_and_question(gw: FlowGateway) -> None:
    sent = _act(gw, Action("IN_PROGRESS"))
    assert sent.findtext("{*}attachmentsAllowed") == "false"
    gw.desk.act(HANDLER, "DC-1", gw.record("DC-1")["version"], Action("ALLOW_ATTACHMENTS", allow=True))
    assert gw.record("DC-1")["attachments_allowed"] is True
    asked = _act(gw, Action("QUESTION", text="Vilken dag?"))
    assert asked.findtext("{*}attachmentsAllowed") == "true"
    ok(gw.update(INERA, DESK_UNIT, "DC-1", "CITIZEN_REPLY", 1, attachments=[attachment()]))
    asked = _act(gw, Action("QUESTION", text="Och vilken tid?", allow=False))  # changed with the question
    assert asked.findtext("{*}attachmentsAllowed") == "false"
    assert gw.record("DC-1")["attachments_allowed"] is False
    refused = gw.update(INERA, DESK_UNIT, "DC-1", "CITIZEN_REPLY", 2, attachments=[attachment()])
    assert refused["subCode"] == "ATTACHMENTS_NOT_ALLOWED"


def test_allow_is_not_taken_by_other_actions(gw: FlowGateway) -> None:
    with pytest.raises(Refused) as refused:
        gw.desk.act(HANDLER, "DC-1", gw.record("DC-1")["version"], Action("ANSWER", text="Svar.", allow=True))
    assert refused.value.sub_code == "ALLOW_NOT_HERE"


def test_a_supplement_is_in_the_timeline_and_its_file_can_be_opened(gw: FlowGateway) -> None:
    _act(gw, Action("IN_PROGRESS", allow=True))
    before = len(gw.outbox("DC-1"))
    ok(
        gw.update(
            INERA, DESK_UNIT, "DC-1", "SUPPLEMENT", 1, message_text="Ett tillägg.", attachments=[attachment()]
        )
    )
    assert len(gw.outbox("DC-1")) == before
    view = gw.desk.case(HANDLER, "DC-1")
    event = view.timeline[-1]
    assert (event.kind, event.direction, event.text) == ("SUPPLEMENT", "in", "Ett tillägg.")
    [ref] = event.attachments
    assert ref.direction == "from-citizen"
    assert gw.desk.attachment(HANDLER, "DC-1", ref.ref) == ("bilaga-1.pdf", "application/pdf", PDF)
    assert view.handler_turn
