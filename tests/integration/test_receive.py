"""``gateway receive`` as an operator runs it: a subprocess playing the catalogue's endpoints over real
mutual TLS, receiving deliveries from a real gateway (gunicorn, outbox worker), failing a seeded share of
them so the outbox retries, refusing what is invalid, and stopping on Ctrl-C. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine, select

from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from outbox.schema import outbox_attempt, outbox_message
from tests.integration.conftest import REGISTER_EXAMPLE, UPDATE_EXAMPLE, session_for
from tests.integration.envelopes import envelope
from tests.integration.harness import GatewayProcess, free_port
from tests.integration.receivers import catalogue_for

pytestmark = pytest.mark.slow
UNIT, BOARD, CASE_SERVICE = "SE2321000016-7Q6X", "SE2321000016-PN01", "SE5565594230-CAF1"
FAIL_RATE, SEED = 0.5, 1
CASES = ["RECEIVE-1", "RECEIVE-2", "RECEIVE-3"]
MAX_BODY = 100_000  # above the largest legal body of the config below
#: the other catalogue endpoint each receiver's port plays (examples/routing.yaml)
PLAYS = {
    "deviation-a": "deviation-a-update-case",
    "deviation-b": "deviation-b-update-case",
    "1177-case-service": "1177-register-case",
}
PORT_A = "deviation-a, deviation-a-update-case"  # how notes name deviation-a's port


@dataclass
class _Port:
    port: int

    def url(self, operation: str) -> str:
        return f"https://localhost:{self.port}/complaintsandfeedback/{operation}/1/rivtabp21"


class Receive:
    """A ``gateway receive`` subprocess; its stdout lines (JSON arrivals) and stderr notes, as they come."""

    def __init__(self, config: Path, *args: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "receive", *args],
            cwd=config.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.arrivals: list[dict[str, Any]] = []
        self.notes: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None  # noqa: PT018
        self._errors: queue.Queue[str] = queue.Queue()
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self._errors), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def _drain(self) -> None:
        while True:
            try:
                self.arrivals.append(json.loads(self.lines.get_nowait()))
            except queue.Empty:
                break
        while True:
            try:
                self.notes.append(self._errors.get_nowait())
            except queue.Empty:
                break

    def wait(self, done: Callable[[], bool], timeout: float = 45.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain()
            if done():
                return
            assert self.process.poll() is None, "\n".join(self.notes)
            time.sleep(0.05)
        raise AssertionError(f"timed out; arrivals {self.arrivals}, notes {self.notes}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            for pump in self._pumps:
                pump.join(timeout=5)  # the pipes end with the process
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        self._drain()
        return code


@pytest.fixture
def demo(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from _demo(db_url, pki, tmp_path, "--fail-rate", str(FAIL_RATE), "--seed", str(SEED))


@pytest.fixture
def steady(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The demo without failures: every valid arrival is answered OK."""
    yield from _demo(db_url, pki, tmp_path)


def _demo(db_url: str, pki: ExamplePki, tmp_path: Path, *receive_args: str) -> Iterator[dict[str, Any]]:
    ports = {"deviation-a": _Port(free_port()), "deviation-b": _Port(free_port())}
    ports["1177-case-service"] = _Port(free_port())
    gateway = GatewayProcess(
        pki,
        db_url,
        tmp_path,
        catalogue=catalogue_for(tmp_path, ports),  # type: ignore[arg-type]
        extra={
            "outbox": {
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                "poll_ms": 50,
                "retry_base_ms": 200,
                "retry_cap_ms": 1000,
                "breaker_threshold": 50,
            },
            # the largest legal body then is about 30 KB: 16 KiB outside attachments, 10 x 1 KiB of base64
            "soap": {"max_envelope_bytes": 16384, "max_attachment_bytes": 1024},
        },
    ).start()
    receive = Receive(tmp_path / "gateway.toml", "--json", *receive_args)
    try:
        receive.wait(lambda: any("Ctrl-C stops" in n for n in receive.notes), timeout=30)
        yield {"gateway": gateway, "receive": receive, "ports": ports, "db_url": db_url}
    finally:
        receive.stop(signal.SIGKILL)
        gateway.stop()


def _client(pki: ExamplePki, gateway: GatewayProcess, who: str) -> SoapClient:
    ident = pki.clients[who]
    return SoapClient(gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=10)


def _payload(path: Path, **changes: str) -> etree._Element:
    root = etree.parse(str(path)).getroot()
    for name, value in changes.items():
        found = root.find(f".//{{*}}{name}")
        assert found is not None
        found.text = value
    return root


def test_receive_plays_the_catalogue_and_the_outbox_retries_its_failures(
    demo: dict[str, Any], pki: ExamplePki
) -> None:
    gateway, receive = demo["gateway"], demo["receive"]
    assert random.Random(SEED).random() < FAIL_RATE  # the seed fails the first delivery: the outbox retries
    for note, (name, port) in zip(
        receive.notes, sorted(demo["ports"].items(), key=lambda p: p[1].port), strict=False
    ):
        label = f"{name}, {PLAYS[name]}"  # a system's RegisterCase and UpdateCase endpoints share its port
        assert (
            note
            == f"gateway receive: receiving as {label} on https://localhost:{port.port} (routing version 1)"
        )
    for case in CASES:
        answer = as_dict(
            _client(pki, gateway, "1177").call("RegisterCase", UNIT, _payload(REGISTER_EXAMPLE, caseId=case))
        )
        assert answer["result"]["resultCode"] == "OK"
    update = _payload(UPDATE_EXAMPLE, caseId=CASES[0])
    assert (
        as_dict(_client(pki, gateway, "deviation-a").call("UpdateCase", CASE_SERVICE, update))["result"][
            "resultCode"
        ]
        == "OK"
    )

    def ok(operation: str) -> set[str]:
        return {a["caseId"] for a in receive.arrivals if a["operation"] == operation and a["answer"] == "OK"}

    receive.wait(lambda: ok("RegisterCase") == set(CASES) and ok("UpdateCase") == {CASES[0]})
    failed = [a for a in receive.arrivals if a["answer"] != "OK"]
    assert failed, receive.arrivals
    assert receive.arrivals[0]["answer"] in ("HTTP 503", "HTTP 500")
    assert {a["status"] for a in failed} <= {500, 503}
    for arrival in receive.arrivals:
        assert arrival["caller"] == "SE2321000016-GW01"  # the gateway's outbound certificate
        assert arrival["port"] == demo["ports"][arrival["endpoint"]].port
        assert arrival["attachments"] == 0
    first = next(a for a in receive.arrivals if a["operation"] == "RegisterCase" and a["answer"] == "OK")
    assert (first["endpoint"], first["logicalAddress"]) == ("deviation-a", UNIT)
    answer = next(a for a in receive.arrivals if a["operation"] == "UpdateCase" and a["answer"] == "OK")
    assert answer["endpoint"] == "1177-case-service"
    assert (answer["logicalAddress"], answer["updateType"]) == (CASE_SERVICE, "ANSWER")
    assert answer["messageId"] == "6f1c2b7e-3d4a-4e8f-9b21-5a7c0d9e8f14"
    # every message was delivered, the failed ones after a retry that the attempt log shows
    engine = create_engine(demo["db_url"])
    deadline = time.monotonic() + 20
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(outbox_message.c.stream, outbox_message.c.status, outbox_message.c.attempts)
                ).all()
                outcomes = conn.execute(select(outbox_attempt.c.outcome, outbox_attempt.c.http_status)).all()
            if all(r.status == "done" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert sorted(r.status for r in rows) == ["done"] * 4
    assert sum(r.attempts for r in rows) == len(receive.arrivals)
    assert sorted(s for _o, s in outcomes if s != 200) == sorted(a["status"] for a in failed)

    assert receive.stop(signal.SIGINT) == 130
    assert receive.notes[-1] == f"gateway receive: stopped after {len(receive.arrivals)} arrival(s)"
    assert not any("Traceback" in n for n in receive.notes)


def test_receive_refuses_what_is_invalid_and_a_port_in_use(
    demo: dict[str, Any], pki: ExamplePki, tmp_path: Path
) -> None:
    receive = demo["receive"]
    port = demo["ports"]["deviation-a"].port
    url = f"https://localhost:{port}/complaintsandfeedback/RegisterCase/1/rivtabp21"
    with session_for(pki, "1177") as session:
        answer = session.post(url, data=b"<RegisterCase/>", headers={"Content-Type": "text/xml"}, timeout=10)
        assert answer.status_code == 500
        assert b"<faultcode>soap:Client</faultcode>" in answer.content
        assert b"VP015 Request is not a SOAP envelope" in answer.content
        huge = session.post(
            url, data=b"x" * (MAX_BODY + 50_000), headers={"Content-Type": "text/xml"}, timeout=30
        )
        assert huge.status_code == 500
        assert b"exceeds the limit" in huge.content
    with pytest.raises(requests.exceptions.SSLError):
        session_for(pki, None).post(url, data=b"<a/>", timeout=10)
    with pytest.raises(requests.exceptions.RequestException):
        session_for(pki, "revoked").post(url, data=b"<a/>", timeout=10)
    receive.wait(lambda: len(receive.arrivals) == 2 and sum("TLS handshake" in n for n in receive.notes) == 2)
    refused = receive.arrivals[0]
    assert (refused["answer"], refused["status"], refused["caller"]) == ("fault", 500, "SE5565594230-1177")
    assert refused["reason"] == "VP015 Request is not a SOAP envelope"
    assert refused["endpoint"] == "deviation-a"
    assert "exceeds the limit" in receive.arrivals[1]["reason"]
    handshakes = [n for n in receive.notes if "TLS handshake" in n]
    assert (
        handshakes[0]
        == f"gateway receive: TLS handshake on {PORT_A} refused: PEER_DID_NOT_RETURN_A_CERTIFICATE"
    )
    assert handshakes[1] == f"gateway receive: TLS handshake on {PORT_A} refused: certificate revoked"

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(tmp_path / "gateway.toml"),
            "receive",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
        },
    )
    assert second.returncode == 5
    assert second.stderr.splitlines()[-1] == (
        f"gateway: cannot listen on 127.0.0.1:{port} for {PORT_A}: address already in use; "
        "stop what holds the port, or choose others with --endpoint or --port"
    )
    assert "Traceback" not in second.stderr

    assert receive.stop(signal.SIGTERM) == 0


def _supplement(case_id: str) -> etree._Element:
    """1177's SUPPLEMENT for ``case_id``: the example update, the other way (1177 numbers its own)."""
    return _payload(UPDATE_EXAMPLE, caseId=case_id, messageId=str(uuid.uuid4()), updateType="SUPPLEMENT")


def _phone_case(case_id: str) -> etree._Element:
    """The example case as a region's system registers it after a phone call."""
    root = _payload(REGISTER_EXAMPLE, caseId=case_id)
    etree.SubElement(root, f"{{{etree.QName(root).namespace}}}channel").text = "PHONE"
    return root


def test_receive_plays_both_directions_of_both_contracts(steady: dict[str, Any], pki: ExamplePki) -> None:
    """UpdateCase arrives at a deviation system's UpdateCase endpoint (1177's messages to the handling
    system) and RegisterCase at 1177's (a case started outside 1177): posted directly, the receiver names the
    endpoint by the URL path, validates against the contract and answers OK; sent through the gateway, the
    outbox delivers each to the endpoint the catalogue routes it to."""
    receive, ports, gateway = steady["receive"], steady["ports"], steady["gateway"]
    sent = [
        ("deviation-a", "UpdateCase", _supplement("RECEIVE-S1"), UNIT),
        ("deviation-b", "UpdateCase", _supplement("RECEIVE-S2"), BOARD),
        ("1177-case-service", "RegisterCase", _phone_case("RECEIVE-P1"), CASE_SERVICE),
        ("1177-case-service", "UpdateCase", etree.parse(str(UPDATE_EXAMPLE)).getroot(), CASE_SERVICE),
    ]
    with session_for(pki, "gateway") as session:
        for port_name, operation, payload, address in sent:
            answer = session.post(
                ports[port_name].url(operation),
                data=envelope(payload, address),
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            assert b"<core:resultCode>OK</core:resultCode>" in answer.content
    receive.wait(lambda: len(receive.arrivals) == len(sent))
    seen = [
        (a["endpoint"], a["operation"], a["updateType"], a["logicalAddress"], a["answer"])
        for a in receive.arrivals
    ]
    assert seen == [
        ("deviation-a-update-case", "UpdateCase", "SUPPLEMENT", UNIT, "OK"),
        ("deviation-b-update-case", "UpdateCase", "SUPPLEMENT", BOARD, "OK"),
        ("1177-register-case", "RegisterCase", None, CASE_SERVICE, "OK"),
        ("1177-case-service", "UpdateCase", "ANSWER", CASE_SERVICE, "OK"),
    ]
    assert {a["caller"] for a in receive.arrivals} == {"SE2321000016-GW01"}

    # through the gateway: 1177's case and its SUPPLEMENT to deviation-a, deviation-a's phone case to 1177
    inera, region = _client(pki, gateway, "1177"), _client(pki, gateway, "deviation-a")
    calls = [
        (inera, "RegisterCase", UNIT, _payload(REGISTER_EXAMPLE, caseId="RECEIVE-G1")),
        (inera, "UpdateCase", UNIT, _supplement("RECEIVE-G1")),
        (region, "RegisterCase", CASE_SERVICE, _phone_case("DEV1-RECEIVE-G2")),
    ]
    for client, operation, address, payload in calls:
        assert as_dict(client.call(operation, address, payload))["result"]["resultCode"] == "OK"
    receive.wait(lambda: len(receive.arrivals) == len(sent) + len(calls))
    delivered = {
        (a["endpoint"], a["operation"], a["caseId"], a["updateType"], a["logicalAddress"], a["answer"])
        for a in receive.arrivals[len(sent) :]
    }
    assert delivered == {
        ("deviation-a", "RegisterCase", "RECEIVE-G1", None, UNIT, "OK"),
        ("deviation-a-update-case", "UpdateCase", "RECEIVE-G1", "SUPPLEMENT", UNIT, "OK"),
        ("1177-register-case", "RegisterCase", "DEV1-RECEIVE-G2", None, CASE_SERVICE, "OK"),
    }
    # one case's messages leave in order: the case before the citizen's supplement to it
    assert [a["operation"] for a in receive.arrivals[len(sent) :] if a["caseId"] == "RECEIVE-G1"] == [
        "RegisterCase",
        "UpdateCase",
    ]
    assert receive.stop(signal.SIGTERM) == 0
