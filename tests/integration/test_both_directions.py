"""Both contracts in both directions (issue 15) on the wire: a real ``gateway serve`` over mutual TLS, zeep
clients built from wsdl/ for 1177 and two regional systems, scripted receivers for all three, the desk's
JSON API with the demo handler's personal certificate; SQLite and PostgreSQL.

Every flow of the table in ``contracts.md`` ("Both contracts in both directions"): a new case from 1177,
the handling system's answers, the citizen's reply and supplement delivered to the handling system (after
the case, in order) or shown in the desk, a case started by phone delivered to 1177 and then updated by its
sender, a representative's power of attorney passed on unchanged, UNIT_CORRECTED kept as the concerned
unit; the redirect chain system B -> system A -> desk; and every refusal as a row of
``both_directions_data.REFUSALS``, each leaving the inbox, the outbox and the case records as they were.
One gateway per database serves the whole module; each test uses its own case ids.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from zeep.plugins import HistoryPlugin

from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from tests.conftest import POSTGRES_SKIP, POSTGRES_URL, _postgres_schema_url
from tests.integration.both_directions_data import (
    ASK,
    BOARD,
    CALLERS,
    CASE_SERVICE,
    CITIZEN_SERVICE,
    DESK_UNIT,
    HANDLER,
    LOCATION,
    PDF,
    REFUSALS,
    REPLY,
    SYSTEM_A,
    SYSTEM_B,
    UNIT,
    UNIT_NAME,
    Register,
    Row,
    Step,
    attachment,
    body_of,
    case_row,
    catalogue,
    pdf_of,
    register_payload,
    stored,
    unsettled,
    update_kwargs,
)
from tests.integration.conftest import REGISTER_EXAMPLE, session_for
from tests.integration.harness import GatewayProcess
from tests.integration.invariants import check_invariants
from tests.integration.receivers import ReceiverProcess

pytestmark = pytest.mark.slow
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Both:
    """The running system and the callers' bookkeeping (each sender's sequence per case, the questions)."""

    pki: ExamplePki
    db_url: str
    workdir: Path
    gateway: GatewayProcess
    receivers: dict[str, ReceiverProcess]
    history: HistoryPlugin = field(default_factory=HistoryPlugin)
    clients: dict[str, SoapClient] = field(default_factory=dict)
    sequences: dict[tuple[str, str], int] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> SoapClient:
        if who not in self.clients:
            ident = self.pki.clients[who]
            self.clients[who] = SoapClient(
                self.gateway.url,
                ClientTls(self.pki.ca_cert, ident.cert, ident.key),
                timeout=15,
                plugins=[self.history],
            )
        return self.clients[who]

    def register(self, who: str, to: str, payload: etree._Element) -> dict[str, Any]:
        return dict(as_dict(self.client(who).call("RegisterCase", to, payload))["result"])

    def new_case(self, kind: str, case_id: str) -> None:
        """1177 registers ``case_id``: "care" at UNIT, "board" at BOARD (with a location), "desk"."""
        unit, options = {
            "care": (UNIT, {}),
            "board": (BOARD, {"recipient_type": "PATIENT_BOARD", "location": LOCATION}),
            "desk": (DESK_UNIT, {}),
        }[kind]
        payload = register_payload(REGISTER_EXAMPLE, case_id, unit, **options)  # type: ignore[arg-type]
        result = self.register("1177", unit, payload)
        assert result["resultCode"] == "OK", result

    def send(self, case_id: str, unit: str, step: Step) -> tuple[str, dict[str, Any]]:
        """(messageId, result) of ``step`` on ``case_id`` (whose unit is ``unit``)."""
        key = (case_id, step.who)
        sequence = step.sequence if step.sequence is not None else self.sequences.get(key, 0) + 1
        reply_to = None
        if step.in_reply_to == "question":
            reply_to = self.questions[case_id]  # the step needs a question asked before
        elif step.in_reply_to == "other":
            reply_to = str(uuid.uuid4())
        kwargs = update_kwargs(
            case_id,
            sequence,
            step.update_type,
            text=step.text,
            in_reply_to=reply_to,
            attachments_allowed=step.attachments_allowed,
            handling_unit=step.handling_unit,
            unit_name=step.unit_name,
            concerned_unit=step.concerned_unit,
            attachments=(attachment(),) if step.attach else (),
        )
        to = {"unit": unit, "service": CASE_SERVICE}.get(step.to, step.to)
        result = dict(as_dict(self.client(step.who).invoke("UpdateCase", to, kwargs))["result"])
        if result["resultCode"] == "OK":
            self.sequences[key] = max(sequence, self.sequences.get(key, 0))
            if step.update_type == "QUESTION":
                self.questions[case_id] = kwargs["messageId"]
        return kwargs["messageId"], result

    def ok(self, case_id: str, unit: str, step: Step) -> str:
        message_id, result = self.send(case_id, unit, step)
        assert result["resultCode"] == "OK", (step, result)
        return message_id

    def settle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while unsettled(self.db_url):
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.05)

    def arrivals(self, receiver: str, case_id: str, count: int) -> list[dict[str, Any]]:
        """The first arrivals of ``case_id`` at ``receiver`` (one per message), once there are ``count``."""
        deadline = time.monotonic() + 60
        while True:
            seen: dict[str, dict[str, Any]] = {}
            for arrival in self.receivers[receiver].arrivals():
                if arrival["case_id"] == case_id:
                    seen.setdefault(arrival["idempotency_key"], arrival)
            if len(seen) >= count:
                return list(seen.values())
            assert time.monotonic() < deadline, f"{receiver}: {len(seen)} arrivals of {case_id}, not {count}"
            time.sleep(0.05)

    def desk_api(self, method: str, path: str, **kwargs: Any) -> Any:
        with session_for(self.pki, "handler") as session:
            response = session.request(
                method, f"https://localhost:{self.gateway.web_port}/api/v1{path}", timeout=20, **kwargs
            )
        assert response.status_code == 200, response.text
        return response.json()

    def desk_act(self, case_id: str, kind: str, **fields: Any) -> None:
        version = self.desk_api("GET", f"/cases/{case_id}")["version"]
        self.desk_api("POST", f"/cases/{case_id}/actions", json={"kind": kind, "version": version, **fields})


def _grant(gateway: GatewayProcess, workdir: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(gateway.workdir / "gateway.toml"),
            "desk",
            "grant",
            HANDLER,
            DESK_UNIT,
            "handler",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'gateway.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    with contextlib.contextmanager(_postgres_schema_url)(POSTGRES_URL) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def both(
    request: pytest.FixtureRequest, pki: ExamplePki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Both]:
    workdir = tmp_path_factory.mktemp(f"both-{request.param}")
    with _database(request.param, workdir) as db_url:
        receivers = {
            name: ReceiverProcess(pki, workdir, name).start()
            for name in ("deviation-a", "deviation-b", "1177")
        }
        gateway = GatewayProcess(
            pki,
            db_url,
            workdir,
            catalogue=catalogue(workdir, receivers),
            extra={
                "outbox": {
                    "client_certificate": pki.clients["gateway"].cert,
                    "client_key": pki.clients["gateway"].key,
                    "poll_ms": 50,
                    "threads": 2,
                }
            },
        )
        try:
            gateway.start()
            _grant(gateway, workdir)
            yield Both(pki, db_url, workdir, gateway, receivers)
        finally:
            gateway.stop()
            for receiver in receivers.values():
                receiver.stop()


def _types(arrivals: list[dict[str, Any]]) -> list[str]:
    return [body_of(a).findtext("{*}updateType") or etree.QName(body_of(a)).localname for a in arrivals]


def _citizen_sequence(row: dict[str, Any]) -> Any:
    """The case record's number of 1177's last message (its column name is the implementation's)."""
    columns = [name for name in row if "sequence" in name and name != "last_sequence"]
    assert len(columns) == 1, (
        f"expected one column for 1177's sequence numbers besides last_sequence: {columns}"
    )
    return row[columns[0]]


# -- flows ------------------------------------------------------------------------------------------------
def test_citizen_reply_and_supplement_reach_the_handling_system_after_the_case(both: Both) -> None:
    case = f"FLOW-CARE-{uuid.uuid4().hex[:8]}"
    both.new_case("care", case)
    both.ok(case, UNIT, Step("deviation-a", "RECEIVED"))
    question = both.ok(case, UNIT, Step("deviation-a", "QUESTION", text=ASK, attachments_allowed=True))
    assert case_row(both.db_url, case)["open_question"] == question
    reply = both.ok(case, UNIT, Step("1177", "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="question"))
    after_reply = case_row(both.db_url, case)
    assert after_reply["open_question"] is None
    assert after_reply["handler_turn_since"] is not None  # the reply gives the handler the turn
    assert after_reply["attachments_allowed"] is True
    assert (after_reply["last_sequence"], _citizen_sequence(after_reply)) == (2, 1)
    supplement = both.ok(case, UNIT, Step("1177", "SUPPLEMENT", "unit", text="Ett intyg.", attach=True))
    # a resend of the reply (same messageId, same content) is answered OK and stores nothing
    tables = ("inbox_message", "outbox_message", "case_record")  # deliveries go on meanwhile
    before = {t: stored(both.db_url)["counts"][t] for t in tables}
    again = update_kwargs(case, 1, "CITIZEN_REPLY", message_id=reply, text=REPLY, in_reply_to=question)
    resent = as_dict(both.client("1177").invoke("UpdateCase", UNIT, again))["result"]
    assert resent["resultCode"] == "OK", resent
    assert {t: stored(both.db_url)["counts"][t] for t in tables} == before
    both.ok(case, UNIT, Step("deviation-a", "ANSWER", text="Vårt svar."))
    both.ok(case, UNIT, Step("deviation-a", "CLOSED"))

    region = both.arrivals("deviation-a", case, 3)
    assert [a["operation"] for a in region] == ["RegisterCase", "UpdateCase", "UpdateCase"]
    assert _types(region) == ["RegisterCase", "CITIZEN_REPLY", "SUPPLEMENT"]
    assert {a["logical_address"] for a in region} == {UNIT}
    assert {a["original_consumer"] for a in region} == {CITIZEN_SERVICE}
    reply_body, supplement_body = body_of(region[1]), body_of(region[2])
    assert reply_body.findtext("{*}messageId") == reply
    assert reply_body.findtext("{*}inReplyTo") == question
    assert reply_body.findtext("{*}message/{*}text") == REPLY
    assert supplement_body.findtext("{*}messageId") == supplement
    assert pdf_of(supplement_body) == PDF
    citizen = both.arrivals("1177", case, 4)
    assert _types(citizen) == ["RECEIVED", "QUESTION", "ANSWER", "CLOSED"]
    assert [a["sequence"] for a in citizen] == [1, 2, 3, 4]
    final = case_row(both.db_url, case)
    assert (final["status"], final["last_sequence"], _citizen_sequence(final)) == ("CLOSED", 4, 2)
    both.settle()
    check_invariants(both.db_url, list(both.receivers.values()))


def test_citizen_reply_and_supplement_to_a_desk_case_show_in_the_desk(both: Both) -> None:
    case = f"FLOW-DESK-{uuid.uuid4().hex[:8]}"
    both.new_case("desk", case)
    both.desk_act(case, "ALLOW_ATTACHMENTS", allow=True)
    both.desk_act(case, "QUESTION", text=ASK)
    received, asked = both.arrivals("1177", case, 2)
    assert _types([received, asked]) == ["RECEIVED", "QUESTION"]
    both.questions[case] = question = body_of(asked).findtext("{*}messageId") or ""
    waiting = both.desk_api("GET", f"/cases/{case}")
    assert (waiting["openQuestion"], waiting["handlerTurn"]) == (question, False)

    reply = both.ok(
        case, DESK_UNIT, Step("1177", "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="question")
    )
    both.ok(case, DESK_UNIT, Step("1177", "SUPPLEMENT", "unit", text="Ett intyg.", attach=True))
    view = both.desk_api("GET", f"/cases/{case}")
    assert view["openQuestion"] is None
    assert view["handlerTurn"] is True
    inbound = [e for e in view["timeline"] if e["direction"] == "in"]
    texts = [e["text"] for e in inbound]
    assert REPLY in texts
    assert "Ett intyg." in texts
    assert [e["kind"] for e in inbound][-2:] == ["CITIZEN_REPLY", "SUPPLEMENT"]
    [filed] = inbound[-1]["attachments"]  # the supplement's PDF, shown with it
    assert (filed["fileName"], filed["direction"], filed["size"]) == (
        "komplettering.pdf",
        "from-citizen",
        len(PDF),
    )
    both.settle()
    keys = {a["idempotency_key"] for r in both.receivers.values() for a in r.arrivals()}
    assert f"UpdateCase:{reply}" not in keys  # the desk shows it; nothing is delivered anywhere
    both.desk_act(case, "ANSWER", text="Tack, vi har läst ditt svar.")
    assert _types(both.arrivals("1177", case, 3))[-1] == "ANSWER"


def test_case_started_by_phone_reaches_1177_and_its_sender_handles_it(both: Both) -> None:
    case = f"A-PHONE-{uuid.uuid4().hex[:8]}"
    payload = register_payload(REGISTER_EXAMPLE, case, UNIT, channel="PHONE")
    assert both.register("deviation-a", CASE_SERVICE, payload)["resultCode"] == "OK"
    [registered] = both.arrivals("1177", case, 1)
    assert (registered["operation"], registered["logical_address"]) == ("RegisterCase", CASE_SERVICE)
    assert registered["original_consumer"] == SYSTEM_A
    assert body_of(registered).findtext("{*}channel") == "PHONE"
    assert body_of(registered).findtext("{*}recipient/{*}unit/{*}unitId") == UNIT
    row = case_row(both.db_url, case)
    assert (row["receiving_system"], row["handling_unit"], row["channel"]) == (SYSTEM_A, UNIT, "PHONE")

    both.ok(case, UNIT, Step("deviation-a", "RECEIVED"))
    both.ok(case, UNIT, Step("1177", "SUPPLEMENT", "unit", text="Jag ringde i går."))
    assert _types(both.arrivals("1177", case, 2)) == ["RegisterCase", "RECEIVED"]
    [supplement] = both.arrivals("deviation-a", case, 1)
    assert (_types([supplement]), supplement["logical_address"]) == (["SUPPLEMENT"], UNIT)
    # a repeat of the same registration is answered OK again and changes nothing
    before = stored(both.db_url)["counts"]
    again = register_payload(REGISTER_EXAMPLE, case, UNIT, channel="PHONE")
    assert both.register("deviation-a", CASE_SERVICE, again)["resultCode"] == "OK"
    assert stored(both.db_url)["counts"]["inbox_message"] == before["inbox_message"]


def test_power_of_attorney_reaches_the_receiver_unchanged(both: Both) -> None:
    case = f"FLOW-POA-{uuid.uuid4().hex[:8]}"
    poa = {"kind": "POWER_OF_ATTORNEY", "reference": "FULLMAKT-2026-0042", "validUntil": "20271231"}
    payload = register_payload(REGISTER_EXAMPLE, case, UNIT, power_of_attorney=poa)
    assert both.register("1177", UNIT, payload)["resultCode"] == "OK"
    sent = both.history.last_sent["envelope"].find(f"{{{SOAP}}}Body")[0]
    [arrived] = both.arrivals("deviation-a", case, 1)
    received = body_of(arrived)

    def poa_of(el: etree._Element) -> bytes:
        found = el.find("{*}reporter/{*}powerOfAttorney")
        assert found is not None
        return bytes(etree.tostring(found, method="c14n", exclusive=True))

    assert poa_of(received) == poa_of(sent)
    assert {c.text for c in received.find("{*}reporter/{*}powerOfAttorney")} == set(poa.values())  # type: ignore[union-attr]
    row = case_row(both.db_url, case)
    assert row["reporter_role"] == "REPRESENTATIVE"
    assert row["channel"] == "WEB"


def test_unit_corrected_keeps_the_board_and_records_the_concerned_unit(both: Both) -> None:
    case = f"FLOW-UC-{uuid.uuid4().hex[:8]}"
    both.new_case("board", case)
    both.ok(case, BOARD, Step("deviation-b", "UNIT_CORRECTED", handling_unit=BOARD, concerned_unit=UNIT))
    row = case_row(both.db_url, case)
    assert (row["handling_unit"], row["concerned_unit"]) == (BOARD, UNIT)
    # an old request: the corrected unit in handlingUnit, no concernedUnit
    both.ok(case, BOARD, Step("deviation-b", "UNIT_CORRECTED", handling_unit=DESK_UNIT))
    row = case_row(both.db_url, case)
    assert (row["handling_unit"], row["concerned_unit"]) == (BOARD, DESK_UNIT)
    assert _types(both.arrivals("1177", case, 2)) == ["UNIT_CORRECTED", "UNIT_CORRECTED"]


def test_redirect_chain_from_system_b_to_system_a_to_the_desk(both: Both) -> None:
    case = f"CHAIN-{uuid.uuid4().hex[:8]}"
    both.new_case("board", case)
    [first] = both.arrivals("deviation-b", case, 1)
    assert body_of(first).findtext("{*}incident/{*}locationDescription") == LOCATION
    both.ok(case, BOARD, Step("deviation-b", "RECEIVED"))
    both.ok(case, BOARD, Step("deviation-b", "IN_PROGRESS"))
    both.ok(case, BOARD, Step("deviation-b", "REDIRECTED", handling_unit=UNIT, unit_name=UNIT_NAME))

    [moved] = both.arrivals("deviation-a", case, 1)
    case_a = body_of(moved)
    assert (moved["operation"], moved["logical_address"]) == ("RegisterCase", UNIT)
    assert case_a.findtext("{*}caseId") == case
    assert case_a.findtext("{*}recipient/{*}unit/{*}unitId") == UNIT
    assert case_a.findtext("{*}recipient/{*}unit/{*}unitName") == UNIT_NAME
    assert case_a.findtext("{*}recipient/{*}recipientType") == "CARE_UNIT"
    assert case_a.find("{*}incident/{*}locationDescription") is None
    row = case_row(both.db_url, case)
    assert (row["handling_unit"], row["recipient_type"], row["receiving_system"]) == (
        UNIT,
        "CARE_UNIT",
        SYSTEM_A,
    )

    # the citizen writes to the new unit before its system has said anything: it follows the case there
    both.ok(case, UNIT, Step("1177", "SUPPLEMENT", "unit", text="Jag har fler uppgifter."))
    both.ok(case, UNIT, Step("deviation-a", "RECEIVED", sequence=1))  # numbers from 1: accepted
    _message, late = both.send(case, BOARD, Step("deviation-b", "IN_PROGRESS"))
    assert (late["errorCode"], late["subCode"]) == ("NOT_ALLOWED", "NOT_CASE_RECEIVER")
    both.ok(case, UNIT, Step("deviation-a", "REDIRECTED", handling_unit=DESK_UNIT))
    row = case_row(both.db_url, case)
    assert (row["handling_unit"], row["receiving_system"]) == (DESK_UNIT, "internal")
    view = both.desk_api("GET", f"/cases/{case}")
    assert view["handlingUnit"] == DESK_UNIT
    both.desk_act(case, "ANSWER", text="Vi har utrett ärendet.")

    citizen = both.arrivals("1177", case, 7)
    assert _types(citizen) == [
        "RECEIVED",
        "IN_PROGRESS",
        "REDIRECTED",
        "RECEIVED",
        "REDIRECTED",
        "RECEIVED",
        "ANSWER",
    ]
    assert [a["sequence"] for a in citizen] == [1, 2, 3, 1, 2, 1, 2]
    assert [a["client_hsa_id"] for a in citizen] == ["SE2321000016-GW01"] * 7
    assert [a["original_consumer"] for a in citizen][:5] == [SYSTEM_B] * 3 + [SYSTEM_A] * 2
    # system A got the case, then the supplement, and nothing after the case moved to the desk
    assert _types(both.arrivals("deviation-a", case, 2)) == ["RegisterCase", "SUPPLEMENT"]
    assert _types(both.arrivals("deviation-b", case, 1)) == ["RegisterCase"]
    both.settle()
    check_invariants(both.db_url, list(both.receivers.values()))


def test_redirect_to_a_patient_board_takes_the_kind_from_the_hsa_tree(both: Both) -> None:
    case = f"TO-BOARD-{uuid.uuid4().hex[:8]}"
    both.new_case("care", case)
    both.ok(case, UNIT, Step("deviation-a", "RECEIVED"))
    both.ok(case, UNIT, Step("deviation-a", "REDIRECTED", handling_unit=BOARD))
    [moved] = both.arrivals("deviation-b", case, 1)
    assert (moved["operation"], moved["logical_address"]) == ("RegisterCase", BOARD)
    assert body_of(moved).findtext("{*}recipient/{*}recipientType") == "PATIENT_BOARD"
    assert body_of(moved).findtext("{*}recipient/{*}unit/{*}unitId") == BOARD
    both.ok(case, BOARD, Step("deviation-b", "RECEIVED"))
    row = case_row(both.db_url, case)
    assert (row["recipient_type"], row["handling_unit"], row["receiving_system"]) == (
        "PATIENT_BOARD",
        BOARD,
        SYSTEM_B,
    )
    # the citizen now writes to the board, and the board's system gets it
    both.ok(case, BOARD, Step("1177", "SUPPLEMENT", "unit", text="Ett tillägg till nämnden."))
    assert _types(both.arrivals("deviation-b", case, 2)) == ["RegisterCase", "SUPPLEMENT"]


# -- refusals ---------------------------------------------------------------------------------------------
def _refused_call(both: Both, row: Row, case: str, unit: str) -> dict[str, Any]:
    call = row.call
    if isinstance(call, Register):
        payload = register_payload(REGISTER_EXAMPLE, case, call.unit, channel=call.channel)
        return both.register(call.who, call.to, payload)
    return both.send(case, unit, call)[1]


@pytest.mark.parametrize("row", REFUSALS, ids=[r.name for r in REFUSALS])
def test_refusal_leaves_nothing_stored(both: Both, row: Row) -> None:
    case = f"R-{uuid.uuid4().hex[:10]}"
    unit = {"care": UNIT, "board": BOARD, "none": UNIT}[row.case]
    if row.case != "none":
        both.new_case(row.case, case)
    for step in row.steps:
        both.ok(case, unit, step)
    both.settle()
    before = stored(both.db_url)
    result = _refused_call(both, row, case, unit)
    assert (result["resultCode"], result["errorCode"], result["subCode"]) == (
        "ERROR",
        row.error_code,
        row.sub_code,
    ), result
    assert len(result["logId"]) == 36
    time.sleep(0.2)  # a stray delivery or write would show by now
    assert stored(both.db_url) == before


def test_a_handler_update_addressed_to_its_unit_is_not_taken(both: Both) -> None:
    """The answer is for 1177: addressed to the unit, it is neither stored nor sent back to the handler."""
    case = f"R-TO-UNIT-{uuid.uuid4().hex[:8]}"
    both.new_case("care", case)
    both.ok(case, UNIT, Step("deviation-a", "RECEIVED"))
    both.settle()
    before = stored(both.db_url)
    _message, result = both.send(case, UNIT, Step("deviation-a", "ANSWER", "unit", text="Vårt svar."))
    assert (result["resultCode"], result["errorCode"], result["subCode"]) == (
        "ERROR",
        "INVALID_REQUEST",
        "NOT_CASE_SERVICE",
    ), result
    assert stored(both.db_url) == before


def test_every_caller_in_the_rows_is_a_known_system() -> None:
    for row in REFUSALS:
        assert row.call.who in CALLERS, row.name
        assert all(step.who in CALLERS for step in row.steps), row.name
    assert {r.sub_code for r in REFUSALS} >= {
        "NO_OPEN_QUESTION",
        "CASE_CLOSED",
        "NOT_CITIZEN_SERVICE",
        "ATTACHMENTS_NOT_ALLOWED",
        "NOT_PATIENT_BOARD_CASE",
        "UNKNOWN_UNIT",
        "SUPPLEMENT_EMPTY",
        "NOT_CASE_UNIT",
        "CHANNEL_ADDRESS",
    }
