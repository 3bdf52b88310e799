"""The case desk end to end on the wire: 1177 registers a case for a desk unit over mutual TLS (a real
gateway, tests/integration/harness.py), a handler acts on it through ``gateway desk`` (subprocesses on the
gateway's configuration), and 1177's receiver gets RECEIVED, PARTIAL_ANSWER, ANSWER (a standard answer and
a PDF), CLOSED in that order, numbered 1 to 4, each valid against the UpdateCase schema. Then the cut-over:
the unit's route moves to a deviation system and ``gateway desk hand-over`` delivers its open case there.
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from contracts import load_registry
from contracts.validation import SchemaValidator
from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from tests.integration.conftest import REGISTER_EXAMPLE
from tests.integration.harness import GatewayProcess
from tests.integration.receivers import ReceiverProcess, catalogue_for

pytestmark = pytest.mark.slow
DESK_UNIT = "SE2321000016-9K2M"
CASE_SERVICE = "SE5565594230-CAF1"
HANDLER = "SE2321000016-HND1"
PDF = b"%PDF-1.4\n% brev till invanaren\n%%EOF\n"
REGISTRY = load_registry()
VALIDATOR = SchemaValidator()


@pytest.fixture
def system(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[dict[str, Any]]:
    receivers = {
        "deviation-a": ReceiverProcess(pki, tmp_path, "deviation-a").start(),
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
                "threads": 2,
            }
        },
    )
    gateway.start()
    try:
        yield {"gateway": gateway, "receivers": receivers, "workdir": tmp_path}
    finally:
        gateway.stop()
        for receiver in receivers.values():
            receiver.stop()


def desk(system: dict[str, Any], *argv: str) -> str:
    """``gateway desk ARGV`` on the running gateway's configuration; its output."""
    gateway: GatewayProcess = system["gateway"]
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
            *argv,
        ],
        cwd=system["workdir"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def register(pki: ExamplePki, gateway: GatewayProcess, case_id: str) -> None:
    payload = etree.parse(str(REGISTER_EXAMPLE)).getroot()
    for name, value in (("caseId", case_id), ("unitId", DESK_UNIT)):
        el = payload.find(f".//{{*}}{name}")
        assert el is not None
        el.text = value
    ident = pki.clients["1177"]
    client = SoapClient(gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=10)
    assert as_dict(client.call("RegisterCase", DESK_UNIT, payload))["result"]["resultCode"] == "OK"


def update_of(arrival: dict[str, Any]) -> etree._Element:
    body = etree.fromstring(arrival["body"]).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None
    [update] = list(body)
    assert VALIDATOR.errors(REGISTRY.by_operation("UpdateCase"), update) == []
    return update


def test_a_desk_case_from_registration_to_closed_reaches_1177_in_order(
    system: dict[str, Any], pki: ExamplePki
) -> None:
    gateway: GatewayProcess = system["gateway"]
    inera: ReceiverProcess = system["receivers"]["1177-case-service"]
    desk(system, "grant", HANDLER, DESK_UNIT, "handler")
    register(pki, gateway, "DESK-WIRE-1")
    letter = system["workdir"] / "brev.pdf"
    letter.write_bytes(PDF)

    def version() -> int:
        return int(json.loads(desk(system, "show", "DESK-WIRE-1", "--as", HANDLER, "--json"))["version"])

    desk(
        system,
        "act",
        "DESK-WIRE-1",
        "PARTIAL_ANSWER",
        "--version",
        str(version()),
        "--text",
        "Vi utreder.",
        "--as",
        HANDLER,
    )
    desk(
        system,
        "act",
        "DESK-WIRE-1",
        "ANSWER",
        "--version",
        str(version()),
        "--standard-answer",
        "2",
        "--text",
        "Med vänlig hälsning, Vårdcentralen Desk",
        "--attach",
        str(letter),
        "--as",
        HANDLER,
    )
    desk(system, "act", "DESK-WIRE-1", "CLOSED", "--version", str(version()), "--as", HANDLER)

    arrivals = inera.wait_for(4, timeout=60)
    updates = [update_of(a) for a in arrivals]
    assert [u.findtext("{*}updateType") for u in updates] == [
        "RECEIVED",
        "PARTIAL_ANSWER",
        "ANSWER",
        "CLOSED",
    ]
    assert [u.findtext("{*}sequenceNumber") for u in updates] == ["1", "2", "3", "4"]
    assert {a["logical_address"] for a in arrivals} == {CASE_SERVICE}
    assert {a["case_id"] for a in arrivals} == {"DESK-WIRE-1"}
    assert len({a["idempotency_key"] for a in arrivals}) == 4
    answer = updates[2]
    assert answer.findtext("{*}message/{*}standardAnswer/{*}code") == "2"
    assert (answer.findtext("{*}message/{*}text") or "").endswith("Med vänlig hälsning, Vårdcentralen Desk")
    assert base64.b64decode(answer.findtext("{*}attachment/{*}data") or "") == PDF
    assert updates[3].findtext("{*}closedAt")
    view = json.loads(desk(system, "show", "DESK-WIRE-1", "--as", HANDLER, "--json"))
    assert view["status"] == "CLOSED"
    deliveries = [e["delivery"] for e in view["timeline"] if e["direction"] == "out"]
    assert len(deliveries) == 4 and set(deliveries) <= {"done", "inflight", "pending"}  # noqa: PT018


def test_hand_over_delivers_the_open_desk_case_to_the_units_new_system(
    system: dict[str, Any], pki: ExamplePki
) -> None:
    gateway: GatewayProcess = system["gateway"]
    region: ReceiverProcess = system["receivers"]["deviation-a"]
    register(pki, gateway, "DESK-WIRE-2")
    system["receivers"]["1177-case-service"].wait_for(1, timeout=30)  # its RECEIVED
    cli = [sys.executable, "-m", "gateway.cli", "--config", str(gateway.workdir / "gateway.toml"), "routes"]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
    }
    for step in (
        ["add-route", "RegisterCase", DESK_UNIT, "deviation-a", "--replace"],
        ["publish", "-m", "the desk unit integrates"],
    ):
        done = subprocess.run(
            [*cli, *step], env=env, cwd=system["workdir"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    moved = json.loads(desk(system, "hand-over", "--unit", DESK_UNIT, "--json"))
    assert moved == {"unit": DESK_UNIT, "cases": ["DESK-WIRE-2"]}
    arrived = region.wait_for(1, timeout=60)[0]
    assert (arrived["operation"], arrived["case_id"], arrived["logical_address"]) == (
        "RegisterCase",
        "DESK-WIRE-2",
        DESK_UNIT,
    )
    assert arrived["original_consumer"] == "SE5565594230-1177"
