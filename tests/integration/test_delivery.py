"""End to end through the outbox: 1177 → gateway → deviation system, and its answer → gateway → 1177,
over real mutual TLS with scripted receivers; internal routes stay in the case desk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine, select

from gateway.cases.records import case_record
from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from outbox.schema import outbox_message
from tests.integration.conftest import REGISTER_EXAMPLE, UPDATE_EXAMPLE
from tests.integration.harness import GatewayProcess
from tests.integration.receivers import ReceiverProcess, catalogue_for

pytestmark = pytest.mark.slow
UNIT = "SE2321000016-7Q6X"
DESK_UNIT = "SE2321000016-9K2M"
CASE_SERVICE = "SE5565594230-CAF1"


@pytest.fixture
def system(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[dict[str, Any]]:
    receivers = {
        "deviation-a": ReceiverProcess(pki, tmp_path, "deviation-a").start(),
        "deviation-b": ReceiverProcess(pki, tmp_path, "deviation-b").start(),
        "1177-case-service": ReceiverProcess(pki, tmp_path, "1177").start(),
    }
    gateway = GatewayProcess(
        pki,
        db_url,
        tmp_path,
        catalogue=catalogue_for(tmp_path, receivers),
        extra={
            "outbox": {
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                "poll_ms": 50,
                "threads": 4,
            }
        },
    )
    gateway.start()
    try:
        yield {"gateway": gateway, "receivers": receivers, "db_url": db_url}
    finally:
        gateway.stop()
        for receiver in receivers.values():
            receiver.stop()


def wait_statuses(db_url: str, expected: list[str], timeout: float = 10.0) -> list[str]:
    """Outbox statuses in message order, once they equal ``expected`` (acks follow arrivals closely)."""
    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                statuses = list(
                    conn.execute(select(outbox_message.c.status).order_by(outbox_message.c.id)).scalars()
                )
            if statuses == expected or time.monotonic() > deadline:
                return statuses
            time.sleep(0.05)
    finally:
        engine.dispose()


def _client(pki: ExamplePki, gateway: GatewayProcess, who: str) -> SoapClient:
    ident = pki.clients[who]
    return SoapClient(gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=10)


def _payload(path: Path, **changes: str) -> etree._Element:
    root = etree.parse(str(path)).getroot()
    for name, value in changes.items():
        el = root.find(f".//{{*}}{name}")
        assert el is not None
        el.text = value
    return root


def test_case_reaches_region_and_answer_reaches_1177(system: dict[str, Any], pki: ExamplePki) -> None:
    gateway: GatewayProcess = system["gateway"]
    region: ReceiverProcess = system["receivers"]["deviation-a"]
    inera: ReceiverProcess = system["receivers"]["1177-case-service"]

    result = as_dict(_client(pki, gateway, "1177").call("RegisterCase", UNIT, _payload(REGISTER_EXAMPLE)))
    assert result["result"]["resultCode"] == "OK"
    arrived = region.wait_for(1)[0]
    assert arrived["operation"] == "RegisterCase"
    assert arrived["case_id"] == "1177-CASE-0001"
    assert arrived["logical_address"] == UNIT
    assert arrived["original_consumer"] == "SE5565594230-1177"
    assert arrived["client_hsa_id"] == "SE2321000016-GW01"  # the gateway's own outbound certificate
    assert arrived["correlation_id"]
    assert arrived["idempotency_key"].startswith("RegisterCase:")
    assert arrived["soap_action"] == (
        '"urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1:RegisterCase"'
    )
    # the payload arrives as validated: same caseId, same personal data, untouched
    assert b"191212121212" in arrived["body"]

    answer = as_dict(
        _client(pki, gateway, "deviation-a").call("UpdateCase", CASE_SERVICE, _payload(UPDATE_EXAMPLE))
    )
    assert answer["result"]["resultCode"] == "OK"
    update = inera.wait_for(1)[0]
    assert update["operation"] == "UpdateCase"
    assert update["logical_address"] == CASE_SERVICE
    assert update["original_consumer"] == "SE2321000016-DEV1"
    assert update["idempotency_key"] == "UpdateCase:6f1c2b7e-3d4a-4e8f-9b21-5a7c0d9e8f14"

    statuses = wait_statuses(system["db_url"], ["done", "done"])
    metrics = requests.get(gateway.ops_url + "/metrics", timeout=5).text
    assert "caf_up 1" in metrics
    assert 'caf_outbox_messages{destination="deviation-a",status="done"} 1' in metrics
    assert 'caf_requests_accepted_total{operation="RegisterCase"} 1' in metrics
    assert "caf_routing_version 1" in metrics
    engine = create_engine(system["db_url"])
    with engine.connect() as conn:
        case = conn.execute(select(case_record)).one()._mapping
    engine.dispose()
    assert case["status"] == "ANSWERED"
    assert case["receiving_system"] == "SE2321000016-DEV1"
    assert case["subject_age"] == 113  # born 1912-12-12, submitted 2026-11-25; the personnummer is not stored
    assert case["main_problem"] == "1"
    assert statuses == ["done", "done"]


def test_internal_route_stays_in_the_desk_is_confirmed_and_others_may_not_answer(
    system: dict[str, Any], pki: ExamplePki
) -> None:
    gateway: GatewayProcess = system["gateway"]
    payload = _payload(REGISTER_EXAMPLE, unitId=DESK_UNIT, caseId="1177-CASE-DESK")
    assert (
        as_dict(_client(pki, gateway, "1177").call("RegisterCase", DESK_UNIT, payload))["result"][
            "resultCode"
        ]
        == "OK"
    )
    update = _payload(UPDATE_EXAMPLE, caseId="1177-CASE-DESK")
    refused = as_dict(_client(pki, gateway, "deviation-a").call("UpdateCase", CASE_SERVICE, update))
    assert refused["result"]["resultCode"] == "ERROR"
    assert refused["result"]["errorCode"] == "NOT_ALLOWED"
    engine = create_engine(system["db_url"])
    with engine.connect() as conn:
        case = conn.execute(select(case_record)).one()._mapping
        messages = conn.execute(select(outbox_message)).all()
    engine.dispose()
    assert case["route_target"] == "internal"
    assert case["receiving_system"] == "internal"
    # the desk confirms the case to 1177 at once; nothing goes to a deviation system
    assert [(m.operation, m.destination, m.seq) for m in messages] == [("UpdateCase", "1177-case-service", 1)]
    received = system["receivers"]["1177-case-service"].wait_for(1)[0]
    assert (received["operation"], received["case_id"], received["sequence"]) == (
        "UpdateCase",
        "1177-CASE-DESK",
        1,
    )
    assert etree.fromstring(received["body"]).findtext(".//{*}UpdateCase/{*}updateType") == "RECEIVED"
    assert system["receivers"]["deviation-a"].arrivals() == []


def test_redirect_moves_the_case_to_the_new_units_system(system: dict[str, Any], pki: ExamplePki) -> None:
    gateway: GatewayProcess = system["gateway"]
    board: ReceiverProcess = system["receivers"]["deviation-b"]
    as_dict(_client(pki, gateway, "1177").call("RegisterCase", UNIT, _payload(REGISTER_EXAMPLE)))
    system["receivers"]["deviation-a"].wait_for(1)
    redirect = _payload(UPDATE_EXAMPLE, updateType="REDIRECTED")
    unit = etree.SubElement(
        redirect,
        "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:UpdateCaseResponder:1}handlingUnit",
    )
    # handlingUnit comes right after createdAt in the schema
    redirect.remove(unit)
    created = redirect.find("{*}createdAt")
    assert created is not None
    created.addnext(unit)
    etree.SubElement(
        unit, "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:1}unitId"
    ).text = "SE2321000016-PN01"
    answer = as_dict(_client(pki, gateway, "deviation-a").call("UpdateCase", CASE_SERVICE, redirect))
    assert answer["result"]["resultCode"] == "OK", answer
    moved = board.wait_for(1)[0]
    assert moved["operation"] == "RegisterCase"
    assert moved["logical_address"] == "SE2321000016-PN01"
    assert (
        b"<core:unitId>SE2321000016-PN01</core:unitId>" in moved["body"]
        or b"SE2321000016-PN01" in moved["body"]
    )
    system["receivers"]["1177-case-service"].wait_for(1)
