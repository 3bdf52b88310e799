"""zeep, built only from the wsdl/ files, calls every operation over real mutual TLS against gateway serve."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from lxml import etree
from zeep import Client, Settings
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from contracts import load_registry
from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from tests.integration.conftest import REGISTER_EXAMPLE, UPDATE_EXAMPLE, inbox_count, session_for
from tests.integration.envelopes import SOAP, envelope
from tests.integration.harness import GatewayProcess

pytestmark = pytest.mark.slow
UNIT = "SE2321000016-7Q6X"
CASE_SERVICE = "SE5565594230-CAF1"


def _schema_for(operation: str) -> etree.XMLSchema:
    contract = load_registry().by_operation(operation)
    return etree.XMLSchema(etree.parse(str(contract.schema_file)))


def _assert_response_valid(history: HistoryPlugin, operation: str) -> etree._Element:
    received = history.last_received["envelope"]
    body = received.find(f"{{{SOAP}}}Body")
    payload = body[0]
    schema = _schema_for(operation)
    assert schema.validate(payload), schema.error_log
    return payload


def _client(pki: ExamplePki, gateway: GatewayProcess, who: str, history: HistoryPlugin) -> SoapClient:
    ident = pki.clients[who]
    return SoapClient(
        gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=10, plugins=[history]
    )


def test_zeep_calls_every_operation_over_mutual_tls(
    db_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(db_url)
    history = HistoryPlugin()

    ping = _client(pki, gateway, "1177", history)
    response = as_dict(
        ping.invoke(
            "PingForConfiguration",
            CASE_SERVICE,
            {
                "serviceContractNamespace": ping.registry.by_operation("RegisterCase").responder_namespace,
                "logicalAddress": CASE_SERVICE,
            },
        )
    )
    _assert_response_valid(history, "PingForConfiguration")
    settings = {c["name"]: c["value"] for c in response["configuration"]}
    assert settings["ready"] == "true"
    assert settings["serviceContractKnown"] == "true"
    assert inbox_count(db_url) == 0  # a ping writes nothing

    register = as_dict(ping.call("RegisterCase", UNIT, etree.parse(str(REGISTER_EXAMPLE)).getroot()))
    _assert_response_valid(history, "RegisterCase")
    assert register["result"]["resultCode"] == "OK"
    assert len(register["result"]["logId"]) == 36

    region = _client(pki, gateway, "deviation-a", history)
    update = as_dict(region.call("UpdateCase", CASE_SERVICE, etree.parse(str(UPDATE_EXAMPLE)).getroot()))
    _assert_response_valid(history, "UpdateCase")
    assert update["result"]["resultCode"] == "OK"
    assert inbox_count(db_url) == 2


def test_wsdl_served_over_tls_is_usable_by_zeep(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    """The served WSDL names the public URL and its ?xsd= imports resolve: zeep needs nothing else."""
    gateway = start_gateway(sqlite_url)
    session = session_for(pki, "1177")
    for contract in load_registry().contracts():
        client = Client(
            f"{gateway.url}{contract.url_path}?wsdl",
            transport=Transport(session=session, timeout=10, operation_timeout=10),
            settings=Settings(strict=True, forbid_dtd=True, forbid_entities=True),
        )
        service = next(iter(client.wsdl.services.values()))
        port = next(iter(service.ports.values()))
        assert port.binding_options["address"] == f"{gateway.url}{contract.url_path}"
    register = Client(
        f"{gateway.url}{load_registry().by_operation('RegisterCase').url_path}?wsdl",
        transport=Transport(session=session, timeout=10, operation_timeout=10),
    )
    element = register.get_element(load_registry().by_operation("RegisterCase").request.text)
    value = element.parse(etree.parse(str(REGISTER_EXAMPLE)).getroot(), register.wsdl.types)
    result = register.service.RegisterCase(
        _soapheaders={"LogicalAddress": UNIT}, **{k: value[k] for k in value}
    )
    assert result["result"]["resultCode"] == "OK"
    missing = session.get(
        f"{gateway.url}{load_registry().contracts()[0].url_path}?xsd=../../../../etc/passwd"
    )
    assert missing.status_code == 404


def test_duplicate_register_case_ten_concurrent_submissions(
    db_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(db_url)
    body = envelope(REGISTER_EXAMPLE, UNIT)
    url = gateway.url + "/complaintsandfeedback/RegisterCase/1/rivtabp21"

    def send(_: int) -> tuple[int, str]:
        with session_for(pki, "1177") as session:
            response = session.post(
                url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=20
            )
        root = etree.fromstring(response.content)
        return response.status_code, root.findtext(".//{*}resultCode") or ""

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(send, range(10)))
    assert answers == [(200, "OK")] * 10
    assert inbox_count(db_url) == 1


def test_ping_writes_nothing_and_health_endpoints(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url)
    live = requests.get(gateway.ops_url + "/health/live", timeout=5)
    ready = requests.get(gateway.ops_url + "/health/ready", timeout=5)
    status = requests.get(gateway.ops_url + "/status", timeout=5).json()
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "schema": "ok",
        "soapListener": "ok",
        "servingCapacity": "ok",  # a serving thread was free within server.saturation_ms
        "tls": "ok",  # the server's certificate, key, trust store and CRL are usable
        "soapServer": "ok",  # serve's children
        "deliveryWorker": "ok",
    }
    assert status["publicUrl"] == gateway.url
    # the operations listener is plain HTTP on loopback; the SOAP port does not serve it
    with session_for(pki, "1177") as session:
        assert session.get(gateway.url + "/health/live", timeout=5).status_code == 404


def test_extension_element_passes_through_validation(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    """RIV-TA minor versions add optional elements in the xs:any slot: they must be accepted."""
    gateway = start_gateway(sqlite_url)
    payload = etree.parse(str(REGISTER_EXAMPLE)).getroot()
    extended = copy.deepcopy(payload)
    etree.SubElement(extended, "{urn:example:extension:1}futureField").text = "x"
    with session_for(pki, "1177") as session:
        response = session.post(
            gateway.url + "/any/path",
            data=envelope(extended, UNIT),
            headers={"Content-Type": "text/xml", "SOAPAction": '""'},
            timeout=10,
        )
    assert response.status_code == 200, response.text
    assert b"<core:resultCode>OK</core:resultCode>" in response.content
