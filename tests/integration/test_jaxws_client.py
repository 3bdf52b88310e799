"""The JAX-WS RI (Java's reference SOAP stack) as an independent client of the gateway.

``wsimport`` generates Java classes from a temporary copy of ``wsdl/`` (RegisterCase and UpdateCase),
``javac`` compiles them together with the small clients in ``tests/data/jaxws/``, once per session, and the
clients call a real ``gateway serve`` over mutual TLS: the client's certificate and key as a PKCS#12 key
store and the demo CA as a PKCS#12 trust store (``javax.net.ssl.*`` system properties). They go both
ways: 1177's case is stored and delivered, the handling system's update reaches 1177, 1177's SUPPLEMENT the
handling system, and a case registered by phone at 1177's case service (``channel``, a power of attorney)
reaches 1177; refusals read as ERROR results or SOAP faults through the generated classes.

Debian: ``apt-get install jaxws libjaxws-java default-jdk-headless``. Without them the test is skipped with
the reason, unless ``GATEWAY_TEST_REQUIRE_JAVA=1`` (CI sets it), where a missing tool fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import create_engine, select

from contracts import load_registry
from contracts.validation import SchemaValidator
from gateway.cases.records import case_record
from gateway.certs import PKCS12_PASSWORD, ExamplePki, pkcs12_key_store, pkcs12_trust_store
from tests.integration.conftest import inbox_count
from tests.integration.envelopes import SOAP
from tests.integration.harness import ROOT, GatewayProcess
from tests.integration.receivers import ReceiverProcess, catalogue_for

pytestmark = pytest.mark.slow
UNIT, CASE_SERVICE = "SE2321000016-7Q6X", "SE5565594230-CAF1"
CLIENTS = ROOT / "tests" / "data" / "jaxws"
#: the JAX-WS RI runtime of Debian's libjaxws-java; its manifest's Class-Path brings JAXB, SAAJ and the APIs
JAXWS_RT = Path("/usr/share/java/jaxws-rt.jar")
#: Java package of the generated classes -> the contract whose WSDL (from the registry) they come from
PACKAGES = {"caf.registercase": "RegisterCase", "caf.updatecase": "UpdateCase"}
WSIMPORT = ("wsimport", "-Xnocompile", "-keep", "-quiet")
TOOL_SECONDS = 180  # wsimport and javac on a busy 2-core machine take a few seconds each


@dataclass(frozen=True)
class JaxWs:
    """The compiled clients and the WSDL copies they were generated from."""

    work: Path
    classes: Path

    def wsdl(self, package: str) -> Path:
        """The copy of the contract's WSDL file in ``work`` (wsdl/ copied whole, so its imports resolve)."""
        original = load_registry().by_operation(PACKAGES[package]).wsdl_file
        return self.work / original.relative_to(ROOT)


def _run(argv: list[str], what: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_SECONDS, check=False)
    assert done.returncode == 0, (
        f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="session")
def jaxws(tmp_path_factory: pytest.TempPathFactory) -> JaxWs:
    missing = [tool for tool in ("wsimport", "javac", "java") if shutil.which(tool) is None]
    missing += [] if JAXWS_RT.is_file() else [str(JAXWS_RT)]
    if missing:
        reason = (
            f"the JAX-WS RI test needs {', '.join(missing)} "
            "(Debian: apt-get install jaxws libjaxws-java default-jdk-headless)"
        )
        if os.environ.get("GATEWAY_TEST_REQUIRE_JAVA") == "1":
            pytest.fail(f"{reason}; GATEWAY_TEST_REQUIRE_JAVA=1 requires it")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("jaxws")
    shutil.copytree(ROOT / "wsdl", work / "wsdl")
    stubs = JaxWs(work, work / "classes")
    sources = work / "src"
    sources.mkdir()
    stubs.classes.mkdir()
    for package in PACKAGES:
        wsdl = stubs.wsdl(package)
        _run(
            [*WSIMPORT, "-d", str(stubs.classes), "-s", str(sources), "-p", package, str(wsdl)],
            f"wsimport of {wsdl.name}",
            work,
        )
    java_files = sorted(str(p) for p in sources.rglob("*.java")) + sorted(
        str(p) for p in CLIENTS.glob("*.java")
    )
    _run(
        [
            "javac",
            "-encoding",
            "UTF-8",
            "-nowarn",
            "-cp",
            str(JAXWS_RT),
            "-d",
            str(stubs.classes),
            *java_files,
        ],
        "javac of the generated classes and tests/data/jaxws",
        work,
    )
    return stubs


def _java_stores(pki: ExamplePki, who: str, directory: Path) -> list[str]:
    """The javax.net.ssl system properties for client ``who`` of the demo PKI."""
    key_store, trust_store = directory / f"{who}-keys.p12", directory / "trust.p12"
    key_store.write_bytes(pkcs12_key_store(pki.clients[who], pki.ca_cert))
    trust_store.write_bytes(pkcs12_trust_store(pki.ca_cert))
    return [
        f"-Djavax.net.ssl.keyStore={key_store}",
        "-Djavax.net.ssl.keyStoreType=PKCS12",
        f"-Djavax.net.ssl.keyStorePassword={PKCS12_PASSWORD}",
        f"-Djavax.net.ssl.trustStore={trust_store}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
        f"-Djavax.net.ssl.trustStorePassword={PKCS12_PASSWORD}",
    ]


def _call(jaxws: JaxWs, pki: ExamplePki, who: str, main: str, *args: str) -> dict[str, str]:
    """Run a client class as ``who``; its key=value lines."""
    classpath = os.pathsep.join([str(jaxws.classes), str(JAXWS_RT)])
    argv = ["java", *_java_stores(pki, who, jaxws.work), "-cp", classpath, main, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_SECONDS, check=False)
    assert done.returncode == 0, f"{main} as {who} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


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


def _case(db_url: str, case_id: str) -> Any:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(case_record).where(case_record.c.case_id == case_id)).one_or_none()
    finally:
        engine.dispose()


def _assert_valid(body: bytes, operation: str) -> etree._Element:
    """The payload of a delivered envelope, valid against the contract's XSD."""
    soap_body = etree.fromstring(body).find(f"{{{SOAP}}}Body")
    assert soap_body is not None
    payload = soap_body[0]
    contract = load_registry().by_operation(operation)
    assert SchemaValidator().errors(contract, payload) == []
    return payload


def _urls(gateway: GatewayProcess) -> dict[str, str]:
    contracts = load_registry()
    return {op: gateway.url + contracts.by_operation(op).url_path for op in ("RegisterCase", "UpdateCase")}


def test_jaxws_client_registers_a_case_and_both_sides_update_it(
    jaxws: JaxWs, system: dict[str, Any], pki: ExamplePki
) -> None:
    gateway: GatewayProcess = system["gateway"]
    region: ReceiverProcess = system["receivers"]["deviation-a"]
    inera: ReceiverProcess = system["receivers"]["1177-case-service"]
    urls, db_url = _urls(gateway), system["db_url"]
    register, update = str(jaxws.wsdl("caf.registercase")), str(jaxws.wsdl("caf.updatecase"))
    case_id = f"JAXWS-{uuid.uuid4().hex[:8]}"

    result = _call(
        jaxws, pki, "1177", "RegisterCaseCall", register, urls["RegisterCase"], UNIT, UNIT, case_id
    )
    assert (result["resultCode"], result["errorCode"], result["subCode"]) == ("OK", "", "")
    assert len(result["logId"]) == 36
    stored = _case(db_url, case_id)
    assert stored is not None
    assert (stored.handling_unit, stored.receiving_system, stored.route_target, stored.channel) == (
        UNIT,
        "SE2321000016-DEV1",
        "deviation-a",
        "WEB",
    )
    assert inbox_count(db_url) == 1
    delivered = region.wait_for(1)[0]
    assert (delivered["operation"], delivered["case_id"], delivered["logical_address"]) == (
        "RegisterCase",
        case_id,
        UNIT,
    )
    assert _assert_valid(delivered["body"], "RegisterCase").findtext("{*}caseId") == case_id

    # the handling system answers with the generated UpdateCase classes; 1177 receives it
    received = str(uuid.uuid4())
    answer = _call(
        jaxws, pki, "deviation-a", "UpdateCaseCall", update, urls["UpdateCase"], CASE_SERVICE, case_id,
        received, "1", "RECEIVED",
    )  # fmt: skip
    assert (answer["resultCode"], answer["errorCode"]) == ("OK", ""), answer
    assert _case(db_url, case_id).status == "RECEIVED"
    to_1177 = inera.wait_for(1)[0]
    assert (to_1177["operation"], to_1177["case_id"]) == ("UpdateCase", case_id)
    assert _assert_valid(to_1177["body"], "UpdateCase").findtext("{*}messageId") == received

    # 1177 sends the citizen's supplement the other way, numbered on its own, to the case's unit
    supplement = str(uuid.uuid4())
    answer = _call(
        jaxws, pki, "1177", "UpdateCaseCall", update, urls["UpdateCase"], UNIT, case_id,
        supplement, "1", "SUPPLEMENT", "Jag glömde nämna att jag också ringde den 3 november.",
    )  # fmt: skip
    assert (answer["resultCode"], answer["errorCode"], answer["subCode"]) == ("OK", "", ""), answer
    to_region = region.wait_for(2)[1]
    assert (to_region["operation"], to_region["case_id"], to_region["logical_address"]) == (
        "UpdateCase",
        case_id,
        UNIT,
    )
    payload = _assert_valid(to_region["body"], "UpdateCase")
    assert (payload.findtext("{*}messageId"), payload.findtext("{*}updateType")) == (supplement, "SUPPLEMENT")

    # what the state machine refuses reads as an ERROR result through the generated classes too
    reply = _call(
        jaxws, pki, "1177", "UpdateCaseCall", update, urls["UpdateCase"], UNIT, case_id,
        str(uuid.uuid4()), "2", "CITIZEN_REPLY", "Svar utan fråga.",
    )  # fmt: skip
    assert (reply["resultCode"], reply["errorCode"], reply["subCode"]) == (
        "ERROR",
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    )
    unknown = _call(
        jaxws, pki, "deviation-a", "UpdateCaseCall", update, urls["UpdateCase"], CASE_SERVICE, "NO-SUCH-CASE",
        str(uuid.uuid4()), "1", "RECEIVED",
    )  # fmt: skip
    assert (unknown["resultCode"], unknown["errorCode"]) == ("ERROR", "NOT_FOUND")
    assert inbox_count(db_url) == 3  # the refusals stored nothing


def test_jaxws_client_registers_a_case_started_by_phone(
    jaxws: JaxWs, system: dict[str, Any], pki: ExamplePki
) -> None:
    """A region's system registers a phone case at 1177's case service (channel PHONE, a representative
    with a power of attorney); it reaches 1177 with both, and the sender handles the case from then on."""
    gateway: GatewayProcess = system["gateway"]
    inera: ReceiverProcess = system["receivers"]["1177-case-service"]
    urls, db_url = _urls(gateway), system["db_url"]
    register = str(jaxws.wsdl("caf.registercase"))
    case_id = f"DEV1-PHONE-{uuid.uuid4().hex[:8]}"

    result = _call(
        jaxws, pki, "deviation-a", "RegisterCaseCall", register, urls["RegisterCase"], CASE_SERVICE, UNIT,
        case_id, "PHONE",
    )  # fmt: skip
    assert (result["resultCode"], result["errorCode"], result["subCode"]) == ("OK", "", ""), result
    stored = _case(db_url, case_id)
    assert stored is not None
    assert (stored.channel, stored.reporter_role, stored.receiving_system) == (
        "PHONE",
        "REPRESENTATIVE",
        "SE2321000016-DEV1",
    )
    delivered = inera.wait_for(1)[0]
    assert (delivered["operation"], delivered["case_id"], delivered["logical_address"]) == (
        "RegisterCase",
        case_id,
        CASE_SERVICE,
    )
    payload = _assert_valid(delivered["body"], "RegisterCase")
    assert payload.findtext("{*}channel") == "PHONE"
    authority = payload.find("{*}reporter/{*}powerOfAttorney")
    assert authority is not None
    assert [(child.tag.split("}")[1], child.text) for child in authority] == [
        ("kind", "POWER_OF_ATTORNEY"),
        ("reference", "FM-2026-0042"),
        ("validUntil", "20271231"),
    ]

    # the region's system may register cases only at 1177's case service: elsewhere it gets VP007
    refused = _call(
        jaxws, pki, "deviation-a", "RegisterCaseCall", register, urls["RegisterCase"], UNIT, UNIT,
        f"DEV1-PHONE-{uuid.uuid4().hex[:8]}", "PHONE",
    )  # fmt: skip
    assert refused["faultCode"] == "Client"
    assert refused["faultString"].startswith("VP007 SE2321000016-DEV1 is not authorised to call RegisterCase")
    # and a case by phone addressed to a unit, even from 1177, is a mistake
    misaddressed = _call(
        jaxws, pki, "1177", "RegisterCaseCall", register, urls["RegisterCase"], UNIT, UNIT,
        f"1177-PHONE-{uuid.uuid4().hex[:8]}", "PHONE",
    )  # fmt: skip
    assert (misaddressed["resultCode"], misaddressed["errorCode"], misaddressed["subCode"]) == (
        "ERROR",
        "INVALID_REQUEST",
        "CHANNEL_ADDRESS",
    )
    assert inbox_count(db_url) == 1  # the refusals stored nothing
