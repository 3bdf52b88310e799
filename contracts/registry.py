"""The contract registry: what the files in ``wsdl/`` say, read from the files themselves.

For every ``*_RIVTABP21.wsdl`` under ``wsdl/`` the registry records the operation, the request and response
element QNames, the SOAPAction, the responder schema file and the URL path the contract is served on. Nothing
here is typed in by hand: dropping in the official contract files means no Python change beyond the mapping
module of that contract. This module never touches the network and never loads a file outside ``wsdl/``.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

__all__ = ["Contract", "ContractRegistry", "load_registry", "wsdl_root"]

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XS_NS = "http://www.w3.org/2001/XMLSchema"
_NS = {"wsdl": WSDL_NS, "soap": SOAP_BINDING_NS, "xs": XS_NS}


class ContractFileError(Exception):
    """A contract file does not follow the expected RIV-TA shape."""


@dataclass(frozen=True)
class Contract:
    """One service contract (one operation), as described by its WSDL."""

    operation: str
    service_namespace: str
    request: etree.QName
    response: etree.QName
    soap_action: str
    wsdl_file: Path
    schema_file: Path
    url_path: str

    @property
    def responder_namespace(self) -> str:
        return str(self.request.namespace)

    @property
    def name(self) -> str:
        """Short name used in logs and metrics, e.g. ``RegisterCase``."""
        return self.operation


def wsdl_root() -> Path:
    """The directory holding the contract files (package data ``wsdl``)."""
    here = Path(__file__).resolve().parent.parent / "wsdl"
    if here.is_dir():
        return here
    resource = importlib.resources.files("wsdl")
    return Path(str(resource))


def _secure_file_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


def _qname(element: etree._Element, value: str) -> etree.QName:
    prefix, _, local = value.rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    if namespace is None:
        raise ContractFileError(f"unknown namespace prefix in {value!r}")
    return etree.QName(namespace, local)


def _read_contract(path: Path) -> Contract:
    tree = etree.parse(str(path), _secure_file_parser())
    root = tree.getroot()
    tns = root.get("targetNamespace")
    if not tns:
        raise ContractFileError(f"{path.name}: no targetNamespace")
    operations = root.findall("wsdl:binding/wsdl:operation", _NS)
    if len(operations) != 1:
        raise ContractFileError(f"{path.name}: expected exactly one bound operation")
    op = operations[0]
    operation = op.get("name", "")
    soap_op = op.find("soap:operation", _NS)
    soap_action = soap_op.get("soapAction", "") if soap_op is not None else ""

    port_op = root.find(f"wsdl:portType/wsdl:operation[@name='{operation}']", _NS)
    if port_op is None:
        raise ContractFileError(f"{path.name}: portType has no operation {operation}")

    def parameters_of(kind: str) -> etree.QName:
        ref = port_op.find(f"wsdl:{kind}", _NS)
        if ref is None:
            raise ContractFileError(f"{path.name}: operation without {kind}")
        message_name = _qname(ref, ref.get("message", "")).localname
        part = root.find(f"wsdl:message[@name='{message_name}']/wsdl:part[@name='parameters']", _NS)
        if part is None:
            raise ContractFileError(f"{path.name}: message {message_name} has no 'parameters' part")
        return _qname(part, part.get("element", ""))

    request = parameters_of("input")
    response = parameters_of("output")
    schema_file: Path | None = None
    for imp in root.iterfind("wsdl:types/xs:schema/xs:import", _NS):
        if imp.get("namespace") == request.namespace:
            schema_file = (path.parent / imp.get("schemaLocation", "")).resolve()
    if schema_file is None or not schema_file.is_file():
        raise ContractFileError(f"{path.name}: responder schema for {request.namespace} not found")
    # The URL path is derived from the WSDL namespace: ...:<domain>:<Operation>:<major>:rivtabp21
    parts = tns.split(":")
    url_path = "/" + "/".join(parts[-4:])
    return Contract(
        operation=operation,
        service_namespace=tns,
        request=request,
        response=response,
        soap_action=soap_action,
        wsdl_file=path.resolve(),
        schema_file=schema_file,
        url_path=url_path,
    )


class ContractRegistry(Mapping[str, Contract]):
    """Contracts by request element (Clark notation ``{ns}Local``), with lookups by URL path."""

    def __init__(self, root: Path, contracts: list[Contract]) -> None:
        self.root = root
        self._by_request = {c.request.text: c for c in contracts}
        self._by_path = {c.url_path: c for c in contracts}
        self._by_operation = {c.operation: c for c in contracts}

    def __getitem__(self, request_clark: str) -> Contract:
        return self._by_request[request_clark]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_request)

    def __len__(self) -> int:
        return len(self._by_request)

    def by_path(self, url_path: str) -> Contract | None:
        return self._by_path.get(url_path.rstrip("/"))

    def by_operation(self, operation: str) -> Contract:
        return self._by_operation[operation]

    def contracts(self) -> list[Contract]:
        return list(self._by_request.values())


@functools.cache
def load_registry(root: Path | None = None) -> ContractRegistry:
    """Read every RIV-TA BP 2.1 WSDL under ``root`` (default: the packaged ``wsdl/``)."""
    base = (root or wsdl_root()).resolve()
    contracts = [_read_contract(p) for p in sorted(base.rglob("*_RIVTABP21.wsdl"))]
    if not contracts:
        raise ContractFileError(f"no *_RIVTABP21.wsdl files under {base}")
    return ContractRegistry(base, contracts)
