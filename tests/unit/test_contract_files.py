"""Mechanical checks of the service contract files in ``wsdl/`` and the example payloads in ``examples/``.

Every check runs over the files found by globbing, so an official contract dropped into ``wsdl/`` is held to
the same RIV-TA Basic Profile 2.1 rules as the project's own files. Nothing here touches the network: schemas
are loaded from local files only, and zeep gets a transport that refuses http(s).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import pytest
import xmlschema
import zeep
from lxml import etree
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap11Binding

REPO = Path(__file__).parents[2]
WSDL_DIR = REPO / "wsdl"
EXAMPLES_DIR = REPO / "examples"

XS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
NS = {"xs": XS, "wsdl": WSDL_NS, "soap": SOAP11_BINDING_NS}

REGISTRY_NS = "urn:riv:itintegration:registry:1"
CAF = "urn:riv-application:supportprocess:logistics:complaintsandfeedback"
CAF_CORE_NS = f"{CAF}:1"
REGISTER_NS = f"{CAF}:RegisterCaseResponder:1"
UPDATE_NS = f"{CAF}:UpdateCaseResponder:1"
PING_NS = "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1"
PING_CORE_NS = "urn:riv:itintegration:monitoring:1"
FOREIGN_NS = "urn:example:extension:1"

EXPECTED_WSDLS = (
    "complaintsandfeedback/interactions/RegisterCaseInteraction/RegisterCaseInteraction_1.0_RIVTABP21.wsdl",
    "complaintsandfeedback/interactions/UpdateCaseInteraction/UpdateCaseInteraction_1.0_RIVTABP21.wsdl",
    "itintegration/monitoring/interactions/PingForConfigurationInteraction/"
    "PingForConfigurationInteraction_1.0_RIVTABP21.wsdl",
)
EXPECTED_XSDS = (
    "core_components/itintegration_registry_1.0.xsd",
    "complaintsandfeedback/core_components/complaintsandfeedback_1.0.xsd",
    "complaintsandfeedback/interactions/RegisterCaseInteraction/RegisterCaseResponder_1.0.xsd",
    "complaintsandfeedback/interactions/UpdateCaseInteraction/UpdateCaseResponder_1.0.xsd",
    "itintegration/monitoring/core_components/itintegration_monitoring_1.0.xsd",
    "itintegration/monitoring/interactions/PingForConfigurationInteraction/PingForConfigurationResponder_1.0.xsd",
)

XSD_FILES = sorted(WSDL_DIR.rglob("*.xsd"))
WSDL_FILES = sorted(WSDL_DIR.rglob("*.wsdl"))
CONTRACT_FILES = XSD_FILES + WSDL_FILES

WSDL_NAME = re.compile(
    r"^(?P<op>[A-Z][A-Za-z0-9]*)Interaction_(?P<major>[0-9]+)\.(?P<minor>[0-9]+)_RIVTABP21\.wsdl$"
)
EXTENSION_SLOT = {
    "namespace": "##other",
    "processContents": "lax",
    "minOccurs": "0",
    "maxOccurs": "unbounded",
}


def _rel(path: Path) -> str:
    return path.relative_to(WSDL_DIR).as_posix()


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@cache
def _tree(path: Path) -> etree._ElementTree:
    return etree.parse(str(path), _parser())


@cache
def _lxml_schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(_tree(path))


@cache
def _xmlschema_schema(path: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(path), allow="local")


def _qname(context: etree._Element, prefixed: str) -> etree.QName:
    """Resolve a ``prefix:local`` attribute value against the namespaces in scope at ``context``."""
    prefix, _, local = prefixed.rpartition(":")
    namespace = context.nsmap.get(prefix or None)
    assert namespace is not None, f"unbound prefix in {prefixed!r}"
    return etree.QName(namespace, local)


def _schema_roots(path: Path) -> list[etree._Element]:
    """The xs:schema elements of a file: the root of an XSD, the wsdl:types schemas of a WSDL."""
    root = _tree(path).getroot()
    if root.tag == f"{{{XS}}}schema":
        return [root]
    return root.findall("wsdl:types/xs:schema", NS)


class NoNetworkTransport(Transport):
    """A zeep transport that loads local files only and records what it loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def load(self, url: str) -> bytes:
        if urlparse(url).scheme not in ("", "file"):
            raise AssertionError(f"contract files must not reference the network: {url}")
        self.loaded.append(url)
        return super().load(url)


@dataclass(frozen=True)
class Interaction:
    """What a BP 2.1 WSDL file name promises, and the files and names that follow from it."""

    wsdl: Path
    op: str
    major: str
    minor: str

    @property
    def root(self) -> etree._Element:
        return _tree(self.wsdl).getroot()

    @property
    def responder_xsd(self) -> Path:
        return self.wsdl.parent / f"{self.op}Responder_{self.major}.{self.minor}.xsd"

    @property
    def responder_ns(self) -> str:
        return _tree(self.responder_xsd).getroot().get("targetNamespace", "")


def _interaction(path: Path) -> Interaction:
    match = WSDL_NAME.match(path.name)
    assert match, f"{path.name} is not named <Op>Interaction_<M>.<m>_RIVTABP21.wsdl"
    return Interaction(path, match["op"], match["major"], match["minor"])


def _single(root: etree._Element, xpath: str) -> etree._Element:
    found = root.findall(xpath, NS)
    assert len(found) == 1, f"expected exactly one {xpath}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------------------------------
# Presence
# ---------------------------------------------------------------------------------------------------------


def test_expected_contract_files_exist() -> None:
    for rel in EXPECTED_WSDLS + EXPECTED_XSDS:
        assert (WSDL_DIR / rel).is_file(), f"missing wsdl/{rel}"
    assert {_rel(p) for p in WSDL_FILES} >= set(EXPECTED_WSDLS)
    assert all(WSDL_NAME.match(p.name) for p in WSDL_FILES), "every WSDL must follow the BP 2.1 file name"


def test_wsdl_directory_holds_contract_data_only() -> None:
    python_files = sorted(_rel(p) for p in WSDL_DIR.rglob("*.py"))
    assert python_files == []


# ---------------------------------------------------------------------------------------------------------
# Every XSD loads, with both schema processors
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", XSD_FILES, ids=_rel)
def test_xsd_loads_with_xmlschema(path: Path) -> None:
    schema = xmlschema.XMLSchema(str(path), allow="local")
    assert schema.target_namespace == _tree(path).getroot().get("targetNamespace")


@pytest.mark.parametrize("path", XSD_FILES, ids=_rel)
def test_xsd_loads_with_lxml(path: Path) -> None:
    etree.XMLSchema(file=str(path))


@pytest.mark.parametrize("path", XSD_FILES, ids=_rel)
def test_xsd_schema_attributes(path: Path) -> None:
    root = _tree(path).getroot()
    assert root.tag == f"{{{XS}}}schema"
    assert root.get("targetNamespace"), "a RIV-TA schema has a target namespace"
    assert root.get("elementFormDefault") == "qualified"
    assert root.get("attributeFormDefault", "unqualified") == "unqualified"
    assert root.get("version"), "the schema must carry a version attribute"


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=_rel)
def test_schema_references_are_relative_and_resolve(path: Path) -> None:
    for schema in _schema_roots(path):
        for ref in schema.findall("xs:import", NS) + schema.findall("xs:include", NS):
            location = ref.get("schemaLocation", "")
            assert location, "every import names its schemaLocation"
            assert not urlparse(location).scheme, f"{location} must be a relative path"
            assert not location.startswith("/"), f"{location} must be a relative path"
            target = (path.parent / location).resolve()
            assert target.is_file(), f"{location} does not resolve to a file"
            assert target.is_relative_to(WSDL_DIR.resolve()), f"{location} points outside wsdl/"
            if ref.tag == f"{{{XS}}}import":
                assert ref.get("namespace") == _tree(target).getroot().get("targetNamespace")


def _content_sequence(complex_type: etree._Element) -> etree._Element | None:
    """The xs:sequence that is the content model of a complex type, directly or through derivation."""
    for xpath in (
        "xs:sequence",
        "xs:complexContent/xs:extension/xs:sequence",
        "xs:complexContent/xs:restriction/xs:sequence",
    ):
        found = complex_type.find(xpath, NS)
        if found is not None:
            return found
    return None


def _particles(sequence: etree._Element) -> list[etree._Element]:
    return [child for child in sequence if isinstance(child.tag, str) and child.tag != f"{{{XS}}}annotation"]


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=_rel)
def test_every_complex_sequence_ends_with_extension_slot(path: Path) -> None:
    for schema in _schema_roots(path):
        for complex_type in schema.iter(f"{{{XS}}}complexType"):
            label = complex_type.get("name") or f"anonymous type on line {complex_type.sourceline}"
            sequence = _content_sequence(complex_type)
            if sequence is None:
                continue
            particles = _particles(sequence)
            assert particles, f"{label}: empty sequence"
            last = particles[-1]
            assert last.tag == f"{{{XS}}}any", f"{label}: the last particle must be xs:any"
            assert {key: last.get(key) for key in EXTENSION_SLOT} == EXTENSION_SLOT, label


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=_rel)
def test_names_and_enumeration_values_are_ascii(path: Path) -> None:
    root = _tree(path).getroot()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        values = {key: el.get(key) for key in ("name", "targetNamespace", "namespace", "type", "element")}
        if el.tag == f"{{{XS}}}enumeration":
            values["enumeration"] = el.get("value")
        for key, value in values.items():
            assert value is None or value.isascii(), f"line {el.sourceline}: non-ASCII {key} {value!r}"


@pytest.mark.parametrize("path", XSD_FILES, ids=_rel)
def test_types_are_venetian_blind(path: Path) -> None:
    """Global elements and named types only at top level; elements inside types are local and named."""
    root = _tree(path).getroot()
    for el in root.iter(f"{{{XS}}}element"):
        if el.getparent() is root:
            assert el.get("name"), f"line {el.sourceline}: global element without a name"
            assert el.get("type"), f"line {el.sourceline}: global element needs a named type"
        else:
            assert el.get("ref") is None, f"line {el.sourceline}: use local elements, not ref"
    for kind in ("complexType", "simpleType"):
        for el in root.findall(f"xs:{kind}", NS):
            assert el.get("name"), f"line {el.sourceline}: top-level {kind} without a name"


# ---------------------------------------------------------------------------------------------------------
# WSDLs: zeep loads them offline, and they follow RIV-TA Basic Profile 2.1
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_loads_with_zeep_offline(path: Path) -> None:
    it = _interaction(path)
    transport = NoNetworkTransport()
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    client = zeep.Client(wsdl=str(path), settings=settings, transport=transport)

    for url in transport.loaded:
        assert Path(url).resolve().is_relative_to(WSDL_DIR.resolve()), f"loaded a file outside wsdl/: {url}"
    assert it.responder_xsd.resolve() in {Path(url).resolve() for url in transport.loaded}

    port = client.wsdl.services[f"{it.op}ResponderService"].ports[f"{it.op}ResponderPort"]
    assert isinstance(port.binding, Soap11Binding)
    operation = port.binding.get(it.op)
    assert operation.soapaction == f"{it.responder_ns}:{it.op}"
    assert [name for name, _ in operation.input.header.type.elements] == ["LogicalAddress"]
    assert operation.input.body.qname == etree.QName(it.responder_ns, it.op)
    assert operation.output.body.qname == etree.QName(it.responder_ns, f"{it.op}Response")


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_file_names_and_namespaces(path: Path) -> None:
    it = _interaction(path)
    assert it.responder_xsd.is_file(), f"missing {it.responder_xsd.name} next to {path.name}"
    assert path.parent.name == f"{it.op}Interaction"
    tns = it.root.get("targetNamespace", "")
    assert tns.endswith(f":{it.op}:{it.major}:rivtabp21")
    assert it.responder_ns.endswith(f":{it.op}Responder:{it.major}")
    # Both namespaces share the service domain prefix.
    assert tns.removesuffix(f":{it.op}:{it.major}:rivtabp21") == it.responder_ns.removesuffix(
        f":{it.op}Responder:{it.major}"
    )
    assert _tree(it.responder_xsd).getroot().get("version") == f"{it.major}.{it.minor}"


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_types_import_responder_and_registry(path: Path) -> None:
    it = _interaction(path)
    imports = {
        imp.get("namespace"): (path.parent / imp.get("schemaLocation", "")).resolve()
        for imp in it.root.findall("wsdl:types/xs:schema/xs:import", NS)
    }
    assert imports.get(it.responder_ns) == it.responder_xsd.resolve()
    assert imports.get(REGISTRY_NS) == (WSDL_DIR / "core_components/itintegration_registry_1.0.xsd").resolve()


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_component_names(path: Path) -> None:
    it = _interaction(path)
    root = it.root
    port_type = _single(root, "wsdl:portType")
    binding = _single(root, "wsdl:binding")
    service = _single(root, "wsdl:service")
    port = _single(service, "wsdl:port")
    assert port_type.get("name") == f"{it.op}ResponderInterface"
    assert binding.get("name") == f"{it.op}ResponderBinding"
    assert service.get("name") == f"{it.op}ResponderService"
    assert port.get("name") == f"{it.op}ResponderPort"
    tns = root.get("targetNamespace")
    assert _qname(binding, binding.get("type", "")) == etree.QName(tns, port_type.get("name"))
    assert _qname(port, port.get("binding", "")) == etree.QName(tns, binding.get("name"))
    assert [op.get("name") for op in port_type.findall("wsdl:operation", NS)] == [it.op]
    assert [op.get("name") for op in binding.findall("wsdl:operation", NS)] == [it.op]
    assert _single(port, "soap:address").get("location"), "a (placeholder) address is required"


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_messages(path: Path) -> None:
    it = _interaction(path)
    root = it.root
    tns = root.get("targetNamespace")
    port_op = _single(root, "wsdl:portType/wsdl:operation")
    input_ref = _single(port_op, "wsdl:input")
    output_ref = _single(port_op, "wsdl:output")
    assert _qname(input_ref, input_ref.get("message", "")) == etree.QName(tns, f"{it.op}Request")
    assert _qname(output_ref, output_ref.get("message", "")) == etree.QName(tns, f"{it.op}Response")

    request_parts = _single(root, f"wsdl:message[@name='{it.op}Request']").findall("wsdl:part", NS)
    assert [p.get("name") for p in request_parts] == ["LogicalAddress", "parameters"]
    header_part, body_part = request_parts
    assert _qname(header_part, header_part.get("element", "")) == etree.QName(REGISTRY_NS, "LogicalAddress")
    assert _qname(body_part, body_part.get("element", "")) == etree.QName(it.responder_ns, it.op)

    response_parts = _single(root, f"wsdl:message[@name='{it.op}Response']").findall("wsdl:part", NS)
    assert [p.get("name") for p in response_parts] == ["parameters"]
    response_part = response_parts[0]
    assert _qname(response_part, response_part.get("element", "")) == etree.QName(
        it.responder_ns, f"{it.op}Response"
    )


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_wsdl_soap11_document_literal_binding(path: Path) -> None:
    it = _interaction(path)
    root = it.root
    tns = root.get("targetNamespace")
    assert SOAP12_BINDING_NS not in etree.tostring(root).decode(), "RIV-TA BP 2.1 is SOAP 1.1 only"
    binding = _single(root, "wsdl:binding")
    soap_binding = _single(binding, "soap:binding")
    assert soap_binding.get("style") == "document"
    assert soap_binding.get("transport") == SOAP_HTTP_TRANSPORT

    operation = _single(binding, "wsdl:operation")
    soap_operation = _single(operation, "soap:operation")
    assert soap_operation.get("soapAction") == f"{it.responder_ns}:{it.op}"
    assert soap_operation.get("style") == "document"

    binding_input = _single(operation, "wsdl:input")
    header = _single(binding_input, "soap:header")
    assert _qname(header, header.get("message", "")) == etree.QName(tns, f"{it.op}Request")
    assert header.get("part") == "LogicalAddress"
    assert header.get("use") == "literal"
    body = _single(binding_input, "soap:body")
    assert body.get("use") == "literal"
    assert body.get("parts") == "parameters"
    output_body = _single(operation, "wsdl:output/soap:body")
    assert output_body.get("use") == "literal"
    assert output_body.get("parts") in (None, "parameters")


@pytest.mark.parametrize("path", WSDL_FILES, ids=_rel)
def test_responder_declares_request_and_response_elements(path: Path) -> None:
    it = _interaction(path)
    schema = _tree(it.responder_xsd).getroot()
    global_elements = {el.get("name") for el in schema.findall("xs:element", NS)}
    assert {it.op, f"{it.op}Response"} <= global_elements


def test_zeep_puts_logical_address_in_the_soap_header() -> None:
    path = WSDL_DIR / EXPECTED_WSDLS[2]
    client = zeep.Client(wsdl=str(path), settings=zeep.Settings(strict=True), transport=NoNetworkTransport())
    envelope = client.create_message(
        client.service,
        "PingForConfiguration",
        serviceContractNamespace=REGISTER_NS,
        logicalAddress="SE2321000016-7Q6X",
        _soapheaders={"LogicalAddress": "X"},
    )
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    assert envelope.tag == f"{{{soap}}}Envelope"
    assert envelope.findtext(f"{{{soap}}}Header/{{{REGISTRY_NS}}}LogicalAddress") == "X"
    assert envelope.find(f"{{{soap}}}Body/{{{PING_NS}}}PingForConfiguration") is not None


# ---------------------------------------------------------------------------------------------------------
# Payloads validate against the responder schemas
# ---------------------------------------------------------------------------------------------------------


def _responder_xsd(op: str) -> Path:
    [wsdl] = [p for p in WSDL_FILES if _interaction(p).op == op]
    return _interaction(wsdl).responder_xsd


def _add(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        child.text = text
    return child


def _core(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    return _add(parent, CAF_CORE_NS, name, text)


def _cv(parent: etree._Element, ns: str, name: str, code: str, code_system: str) -> etree._Element:
    cv = _add(parent, ns, name)
    _core(cv, "code", code)
    _core(cv, "codeSystem", code_system)
    return cv


def _unit(parent: etree._Element, ns: str, name: str, hsa_id: str) -> etree._Element:
    unit = _add(parent, ns, name)
    _core(unit, "unitId", hsa_id)
    return unit


def _person_id(parent: etree._Element) -> None:
    person_id = _core(parent, "personId")
    _core(person_id, "id", "191212121212")
    _core(person_id, "type", "1.2.752.129.2.1.3.1")


def _attachment(parent: etree._Element, ns: str, number: int) -> None:
    attachment = _add(parent, ns, "attachment")
    _core(attachment, "attachmentId", f"att-{number}")
    _core(attachment, "fileName", f"bilaga-{number}.pdf")
    _core(attachment, "mimeType", "application/pdf")
    _core(attachment, "data", base64.b64encode(b"%PDF-1.4 fictional").decode())


def minimal_register_case() -> etree._Element:
    ns = REGISTER_NS
    root = etree.Element(f"{{{ns}}}RegisterCase", nsmap={None: ns, "core": CAF_CORE_NS})
    _add(root, ns, "caseId", "1177-CASE-0001")
    _add(root, ns, "caseCategory", "FEEDBACK")
    _add(root, ns, "submittedAt", "20261125093000")
    recipient = _add(root, ns, "recipient")
    _core(recipient, "recipientType", "CARE_UNIT")
    _unit(recipient, CAF_CORE_NS, "unit", "SE2321000016-7Q6X")
    _person_id(_add(root, ns, "subjectOfCare"))
    reporter = _add(root, ns, "reporter")
    _core(reporter, "role", "SUBJECT_OF_CARE")
    _person_id(_core(reporter, "person"))
    incident = _add(root, ns, "incident")
    _core(incident, "eventDate", "20261101")
    _core(incident, "description", "Bra bemötande.")
    _core(_add(root, ns, "contactPreference"), "replyWanted", "false")
    return root


def minimal_update_case() -> etree._Element:
    ns = UPDATE_NS
    root = etree.Element(f"{{{ns}}}UpdateCase", nsmap={None: ns, "core": CAF_CORE_NS})
    _add(root, ns, "caseId", "1177-CASE-0001")
    _add(root, ns, "messageId", "0b8f7c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e")
    _add(root, ns, "sequenceNumber", "1")
    _add(root, ns, "updateType", "RECEIVED")
    _add(root, ns, "createdAt", "20261126101500")
    return root


def minimal_ping() -> etree._Element:
    root = etree.Element(f"{{{PING_NS}}}PingForConfiguration", nsmap={None: PING_NS})
    _add(root, PING_NS, "serviceContractNamespace", REGISTER_NS)
    _add(root, PING_NS, "logicalAddress", "SE2321000016-7Q6X")
    return root


def _response(op: str, ns: str, result_code: str, error_code: str | None = None) -> etree._Element:
    root = etree.Element(f"{{{ns}}}{op}Response", nsmap={None: ns, "core": CAF_CORE_NS})
    result = _add(root, ns, "result")
    _core(result, "resultCode", result_code)
    if error_code:
        _core(result, "errorCode", error_code)
    _core(result, "logId", "5f0c6a0e-95a1-4c1e-9b6f-2e0a3c4d5e6f")
    return root


def ping_response() -> etree._Element:
    root = etree.Element(
        f"{{{PING_NS}}}PingForConfigurationResponse", nsmap={None: PING_NS, "core": PING_CORE_NS}
    )
    _add(root, PING_NS, "version", "0.1.0")
    _add(root, PING_NS, "pingDateTime", "20261126101500")
    configuration = _add(root, PING_NS, "configuration")
    _add(configuration, PING_CORE_NS, "name", "database")
    _add(configuration, PING_CORE_NS, "value", "ok")
    return root


PAYLOADS: dict[str, tuple[str, Callable[[], etree._Element]]] = {
    "RegisterCase": ("RegisterCase", minimal_register_case),
    "UpdateCase": ("UpdateCase", minimal_update_case),
    "PingForConfiguration": ("PingForConfiguration", minimal_ping),
    "RegisterCaseResponse-OK": ("RegisterCase", lambda: _response("RegisterCase", REGISTER_NS, "OK")),
    "UpdateCaseResponse-ERROR": (
        "UpdateCase",
        lambda: _response("UpdateCase", UPDATE_NS, "ERROR", "NOT_FOUND"),
    ),
    "PingForConfigurationResponse": ("PingForConfiguration", ping_response),
}


def _assert_valid(op: str, payload: etree._Element) -> None:
    schema = _lxml_schema(_responder_xsd(op))
    assert schema.validate(payload), str(schema.error_log)
    # A second, independent processor must agree.
    _xmlschema_schema(_responder_xsd(op)).validate(etree.tostring(payload).decode())


def _is_valid(op: str, payload: etree._Element) -> bool:
    lxml_says = _lxml_schema(_responder_xsd(op)).validate(payload)
    xmlschema_says = _xmlschema_schema(_responder_xsd(op)).is_valid(etree.tostring(payload).decode())
    assert lxml_says == xmlschema_says, "lxml and xmlschema disagree"
    return lxml_says


@pytest.mark.parametrize("name", PAYLOADS)
def test_minimal_payload_validates(name: str) -> None:
    op, build = PAYLOADS[name]
    _assert_valid(op, build())


def test_foreign_namespace_extension_is_accepted() -> None:
    payload = minimal_register_case()
    _add(payload, FOREIGN_NS, "futureField", "minor version addition")
    # The extension slots of the core types take foreign elements too.
    _add(payload.find(f"{{{REGISTER_NS}}}incident"), FOREIGN_NS, "severity", "3")
    assert _is_valid("RegisterCase", payload)


@pytest.mark.parametrize("namespace", [REGISTER_NS, None], ids=["responder-namespace", "no-namespace"])
def test_unknown_element_outside_foreign_namespace_is_rejected(namespace: str | None) -> None:
    payload = minimal_register_case()
    etree.SubElement(
        payload, etree.QName(namespace, "futureField") if namespace else "futureField"
    ).text = "x"
    assert not _is_valid("RegisterCase", payload)


@pytest.mark.parametrize(
    ("op", "build", "limit"),
    [("RegisterCase", minimal_register_case, 5), ("UpdateCase", minimal_update_case, 10)],
)
def test_attachment_limits(op: str, build: Callable[[], etree._Element], limit: int) -> None:
    ns = build().nsmap[None]

    def with_attachments(count: int) -> etree._Element:
        payload = build()
        for number in range(count):
            _attachment(payload, ns, number)
        return payload

    assert _is_valid(op, with_attachments(limit))
    assert not _is_valid(op, with_attachments(limit + 1))


def _set_text(xpath: str, value: str) -> Callable[[etree._Element], None]:
    def mutate(payload: etree._Element) -> None:
        found = payload.find(xpath, {"r": REGISTER_NS, "c": CAF_CORE_NS})
        assert found is not None, xpath
        found.text = value

    return mutate


INVALID_REGISTER_CASES: dict[str, Callable[[etree._Element], None]] = {
    "hsa-id-with-space": _set_text("r:recipient/c:unit/c:unitId", "SE2321000016 7Q6X"),
    "hsa-id-too-long": _set_text("r:recipient/c:unit/c:unitId", "S" * 65),
    "case-id-empty": _set_text("r:caseId", ""),
    "unknown-category": _set_text("r:caseCategory", "PRAISE"),
    "timestamp-with-separators": _set_text("r:submittedAt", "2026-11-25T09:30"),
    "date-with-non-ascii-digits": _set_text(
        "r:incident/c:eventDate", "\u0662\u0660\u0662\u0666\u0661\u0661\u0660\u0661"
    ),
    "person-id-11-digits": _set_text("r:subjectOfCare/c:personId/c:id", "19121212121"),
    "description-empty": _set_text("r:incident/c:description", ""),
    "description-too-long": _set_text("r:incident/c:description", "x" * 20001),
    "reply-wanted-not-boolean": _set_text("r:contactPreference/c:replyWanted", "ja"),
    "missing-incident": lambda p: p.remove(p.find(f"{{{REGISTER_NS}}}incident")),
}


@pytest.mark.parametrize("mutation", INVALID_REGISTER_CASES)
def test_invalid_register_case_is_rejected(mutation: str) -> None:
    payload = minimal_register_case()
    INVALID_REGISTER_CASES[mutation](payload)
    assert not _is_valid("RegisterCase", payload)


@pytest.mark.parametrize(
    ("field", "value"),
    [("messageId", "not-a-uuid"), ("sequenceNumber", "0"), ("sequenceNumber", "-1"), ("updateType", "DONE")],
)
def test_invalid_update_case_is_rejected(field: str, value: str) -> None:
    payload = minimal_update_case()
    payload.find(f"{{{UPDATE_NS}}}{field}").text = value
    assert not _is_valid("UpdateCase", payload)


def test_response_log_id_is_required() -> None:
    payload = _response("RegisterCase", REGISTER_NS, "OK")
    result = payload.find(f"{{{REGISTER_NS}}}result")
    result.remove(result.find(f"{{{CAF_CORE_NS}}}logId"))
    assert not _is_valid("RegisterCase", payload)


# ---------------------------------------------------------------------------------------------------------
# Example documents
# ---------------------------------------------------------------------------------------------------------

EXAMPLES = {"register-case.xml": "RegisterCase", "update-case.xml": "UpdateCase"}


@pytest.mark.parametrize(("file_name", "op"), EXAMPLES.items())
def test_example_validates(file_name: str, op: str) -> None:
    document = etree.parse(str(EXAMPLES_DIR / file_name), _parser()).getroot()
    responder_xsd = _responder_xsd(op)
    namespace = _tree(responder_xsd).getroot().get("targetNamespace")
    assert document.tag == f"{{{namespace}}}{op}", "the example is the request element itself"
    _assert_valid(op, document)
    _xmlschema_schema(responder_xsd).validate(str(EXAMPLES_DIR / file_name))


def test_examples_describe_the_same_case() -> None:
    register = etree.parse(str(EXAMPLES_DIR / "register-case.xml"), _parser()).getroot()
    update = etree.parse(str(EXAMPLES_DIR / "update-case.xml"), _parser()).getroot()
    assert register.findtext(f"{{{REGISTER_NS}}}caseId") == update.findtext(f"{{{UPDATE_NS}}}caseId")
    unit_id = register.findtext(f"{{{REGISTER_NS}}}recipient/{{{CAF_CORE_NS}}}unit/{{{CAF_CORE_NS}}}unitId")
    assert unit_id == "SE2321000016-7Q6X"
