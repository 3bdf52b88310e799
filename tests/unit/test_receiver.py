"""``gateway receive``'s judge in-process (gateway.soap.receiver.ReceiverCore): what it accepts, refuses,
answers and prints, and its seeded failures. Over real mutual TLS: tests/integration/test_receive.py.

The hostile-request corpus (tests/data/hostile, the gateway's own table of requests and outcomes) is sent
through it: every request the gateway refuses for its form (XML, envelope, dispatch, schema, HTTP headers)
the receiver refuses with the same fault, and it answers OK what only the gateway's routing, domain rules
or storage refuse, since a receiver that plays a producer applies the contract and nothing else.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from contracts import load_registry
from gateway.redact import safe_hsa_id, safe_id
from gateway.soap.envelope import SOAP_ENV_NS
from gateway.soap.receiver import Listener, ReceiverCore
from tests.integration.envelopes import envelope, fault_of
from tests.unit.test_hostile_corpus import HOSTILE, MANIFEST, SENSITIVE

ROOT = Path(__file__).resolve().parents[2]
CALLER = "SE2321000016-GW01"
CORE_NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
#: the gateway refuses these, the receiver need not: it does not route, and stores nothing
ONLY_THE_GATEWAY = {"routing", "rule-register", "rule-update", "state", "accepted"}


def _core(**kw: Any) -> ReceiverCore:
    return ReceiverCore(load_registry(), max_body_bytes=200_000, max_depth=64, clock=lambda: "T", **kw)


def _send(core: ReceiverCore, body: bytes, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "endpoint": "deviation-a",
        "port": 9444,
        "caller": CALLER,
        "content_type": "text/xml; charset=utf-8",
        "soap_action": None,
    }
    return core.handle(body, **{**args, **kw})


def _register(case_id: str = "1177-CASE-0001", address: str = "SE2321000016-7Q6X") -> bytes:
    payload = etree.parse(str(ROOT / "examples" / "register-case.xml")).getroot()
    payload.find("{*}caseId").text = case_id  # type: ignore[union-attr]
    return envelope(payload, address)


def _result(body: bytes) -> dict[str, str]:
    response = etree.fromstring(body).find(f"{{{SOAP_ENV_NS}}}Body")[0]  # type: ignore[index]
    return {etree.QName(c).localname: c.text or "" for c in response.find("{*}result")}  # type: ignore[union-attr]


def _corpus() -> list[Any]:
    # entries about the HTTP framing (Content-Length) are for the listener; see the integration test
    return [
        pytest.param(e, id=e["file"])
        for e in MANIFEST
        if "generate" not in e and "content_length" not in e and "setup" not in e
    ]


@pytest.mark.parametrize("entry", _corpus())
def test_hostile_corpus_is_refused_for_its_form_and_never_echoed(entry: dict[str, Any]) -> None:
    body = (HOSTILE / entry["file"]).read_bytes()
    answer = _send(
        _core(),
        body,
        content_type=entry.get("content_type", "text/xml; charset=utf-8"),
        soap_action=entry.get("soap_action"),
    )
    expect = entry["expect"]
    line = answer.arrival.line()
    if expect["http"] == 500 and entry["category"] not in ONLY_THE_GATEWAY:
        assert answer.status == 500
        faultcode, faultstring = fault_of(answer.body)
        assert faultcode == expect["faultcode"]
        assert faultstring.startswith(expect["platform"] + " ")
        assert f"(logId {answer.arrival.log_id})" in faultstring
        assert " refused " in line
        assert f": {expect['platform']} " in line
    else:
        assert answer.status == 200, answer.arrival.reason
        assert _result(answer.body)["resultCode"] == "OK"
        assert line.endswith(f": OK logId {answer.arrival.log_id}")
    text = line + json.dumps(answer.arrival.as_dict(), ensure_ascii=False) + answer.body.decode()
    for secret in (*SENSITIVE, *entry.get("secrets", [])):
        assert secret not in text
    assert line.count("\n") == 0


def test_register_case_is_answered_ok_with_its_log_id_and_one_line() -> None:
    answer = _send(_core(), _register(), soap_action='"' + _action("RegisterCase") + '"')
    result = _result(answer.body)
    assert answer.status == 200
    assert dict(answer.headers)["Content-Type"].startswith("text/xml")
    assert result["resultCode"] == "OK"
    assert UUID.fullmatch(result["logId"])
    assert answer.arrival.log_id == result["logId"]
    assert answer.arrival.line() == (
        "T deviation-a RegisterCase case 1177-CASE-0001 to SE2321000016-7Q6X from SE2321000016-GW01, "
        f"0 attachments (0 bytes): OK logId {result['logId']}"
    )
    assert answer.arrival.as_dict() == {
        "time": "T",
        "endpoint": "deviation-a",
        "port": 9444,
        "caller": CALLER,
        "status": 200,
        "answer": "OK",
        "logId": result["logId"],
        "operation": "RegisterCase",
        "caseId": "1177-CASE-0001",
        "messageId": None,
        "updateType": None,
        "logicalAddress": "SE2321000016-7Q6X",
        "attachments": 0,
        "attachmentBytes": 0,
        "reason": None,
    }


def test_update_case_line_names_message_id_update_type_and_attachments() -> None:
    body = (ROOT / "examples" / "update-case.xml").read_bytes()
    answer = _send(_core(), envelope(body, "SE5565594230-CAF1"), endpoint="1177-case-service", port=9446)
    assert answer.status == 200
    assert _result(answer.body)["resultCode"] == "OK"
    assert answer.arrival.line().startswith(
        "T 1177-case-service UpdateCase case 1177-CASE-0001 message 6f1c2b7e-3d4a-4e8f-9b21-5a7c0d9e8f14 "
        "ANSWER to SE5565594230-CAF1 from SE2321000016-GW01, 0 attachments (0 bytes): OK logId "
    )
    wrapped = (HOSTILE / "rule-attachments-wrapped-base64-ok.xml").read_bytes()
    data = etree.fromstring(wrapped).iterfind(f".//{{{CORE_NS}}}data")
    size = sum(len(base64.b64decode("".join((d.text or "").split()))) for d in data)
    answer = _send(_core(), wrapped)
    assert (answer.arrival.attachments, answer.arrival.attachment_bytes) == (2, size)
    assert f", 2 attachments ({size} bytes): OK" in answer.arrival.line()


@pytest.mark.parametrize(
    ("change", "platform", "reason"),
    [
        ({"caller": None}, "VP002", "Client certificate has no serialNumber (HSA-id) in its subject"),
        (
            {"content_type": "application/soap+xml"},
            "VP015",
            "SOAP 1.2 (application/soap+xml) is not supported",
        ),
        ({"content_type": None}, "VP015", "Content-Type must be text/xml (SOAP 1.1)"),
        ({"soap_action": "urn:other:Op"}, "VP015", "SOAPAction contradicts the Body element"),
        ({"body": b"<a/>"}, "VP015", "Request is not a SOAP envelope"),
        ({"body": b"x" * 200_001}, "VP015", "Request body exceeds the limit of 200000 bytes"),
    ],
    ids=["no HSA-id", "SOAP 1.2", "no content type", "SOAPAction", "not SOAP", "too large"],
)
def test_refusals_are_faults_with_a_line_saying_why(
    change: dict[str, Any], platform: str, reason: str
) -> None:
    body = change.pop("body", _register())
    answer = _send(_core(), body, **change)
    assert answer.status == 500
    assert fault_of(answer.body)[1].startswith(f"{platform} {reason}")
    line = answer.arrival.line()
    assert line.startswith("T deviation-a refused")
    assert f": {platform} {reason}" in line
    assert line.endswith(f"(logId {answer.arrival.log_id})")


def test_values_that_fail_their_format_check_are_printed_as_short_hashes() -> None:
    answer = _send(_core(), _register(case_id="191212121212"))
    assert answer.status == 200
    assert "191212121212" not in answer.arrival.line()
    assert answer.arrival.case_id == safe_id("191212121212")
    assert re.fullmatch(r"h:[0-9a-f]{8}", answer.arrival.case_id or "")
    assert safe_id("1177-CASE-0001") == "1177-CASE-0001"
    assert safe_id("CASE 1") != "CASE 1"
    assert safe_hsa_id("SE2321000016-7Q6X") == "SE2321000016-7Q6X"
    assert safe_hsa_id("Kim Exempelsson")[:2] == "h:"  # type: ignore[index]


def test_fail_rate_is_seeded_repeatable_and_fails_with_503_or_500() -> None:
    def outcomes(**kw: Any) -> list[int]:
        core = _core(**kw)
        return [_send(core, _register(f"CASE-{i}")).status for i in range(60)]

    first = outcomes(fail_rate=0.3, seed=7)
    assert first == outcomes(fail_rate=0.3, seed=7)
    assert first != outcomes(fail_rate=0.3, seed=8)
    assert set(first) == {200, 500, 503}
    assert 8 <= sum(s != 200 for s in first) <= 30
    assert set(outcomes(fail_rate=1.0, fail_statuses=(503,))) == {503}
    assert set(outcomes(fail_rate=0.0)) == {200}

    core = _core(fail_rate=1.0, fail_statuses=(503,))
    answer = _send(core, _register())
    assert dict(answer.headers)["Retry-After"] == "1"
    assert answer.arrival.line().endswith(f": HTTP 503 (--fail-rate) logId {answer.arrival.log_id}")
    assert "case 1177-CASE-0001" in answer.arrival.line()
    refused = _send(core, b"<a/>")  # an invalid request gets its fault, not a scripted failure
    assert refused.status == 500
    assert fault_of(refused.body)[1].startswith("VP015 ")


def test_delay_waits_before_every_answer() -> None:
    slept: list[float] = []
    core = _core(delay_ms=250, sleep=slept.append)
    assert _send(core, _register()).status == 200
    assert slept == [0.25]


def test_ping_is_answered() -> None:
    payload = (
        b'<PingForConfiguration xmlns="urn:riv:itintegration:monitoring:PingForConfigurationResponder:1">'
        b"<serviceContractNamespace>urn:x</serviceContractNamespace><logicalAddress>SE1</logicalAddress>"
        b"</PingForConfiguration>"
    )
    answer = _send(_core(), envelope(payload, "SE2321000016-7Q6X"))
    assert answer.status == 200
    assert b"PingForConfigurationResponse" in answer.body
    assert answer.arrival.operation == "PingForConfiguration"


def test_listener_names_the_endpoint_by_path_and_else_by_port() -> None:
    single = Listener(9444, {"/complaintsandfeedback/RegisterCase/1/rivtabp21": "deviation-a"})
    assert single.name_for("/complaintsandfeedback/RegisterCase/1/rivtabp21/") == "deviation-a"
    assert single.name_for("/elsewhere?x=1") == "deviation-a"  # callers route on the Body, not the path
    shared = Listener(9500, {"/a": "one", "/b": "two"})
    assert (shared.name_for("/b"), shared.name_for("/c")) == ("two", "port 9500")
    assert shared.label == "one, two"
    assert Listener(9501, {}).name_for("/") == "port 9501"


def _action(operation: str) -> str:
    return load_registry().by_operation(operation).soap_action


def test_an_unexpected_error_is_a_server_fault_not_a_dropped_connection() -> None:
    class Broken:
        def errors(self, _contract: Any, _payload: Any) -> list[str]:
            raise RuntimeError("191212121212 must never show")

    core = ReceiverCore(load_registry(), max_body_bytes=200_000, max_depth=64, validator=Broken())  # type: ignore[arg-type]
    answer = _send(core, _register())
    assert answer.status == 500
    assert fault_of(answer.body) == (
        "soap:Server",
        f"VP009 Internal error in the receiver (logId {answer.arrival.log_id})",
    )
    assert "191212121212" not in answer.arrival.line()
