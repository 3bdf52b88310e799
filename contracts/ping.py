"""Mapping for PingForConfiguration (the RIV-TA monitoring contract)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from contracts.model import Reader

__all__ = ["CORE_NAMESPACE", "NAMESPACE", "Ping", "build_response", "parse"]

NAMESPACE = "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1"
CORE_NAMESPACE = "urn:riv:itintegration:monitoring:1"
_r = Reader(NAMESPACE)
_core = "{" + CORE_NAMESPACE + "}"


@dataclass(frozen=True)
class Ping:
    service_contract_namespace: str
    logical_address: str


def parse(el: etree._Element) -> Ping:
    f = _r.fields(el)
    return Ping(f.req("serviceContractNamespace"), f.req("logicalAddress"))


def build_response(
    version: str, ping_date_time: str, configuration: Iterable[tuple[str, str]]
) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}PingForConfigurationResponse", nsmap={None: NAMESPACE, "core": CORE_NAMESPACE}
    )
    etree.SubElement(response, _r.ns + "version").text = version
    etree.SubElement(response, _r.ns + "pingDateTime").text = ping_date_time
    for name, value in configuration:
        item = etree.SubElement(response, _r.ns + "configuration")
        # ConfigurationType is declared in the monitoring core schema, so its children are in that namespace.
        etree.SubElement(item, _core + "name").text = name
        etree.SubElement(item, _core + "value").text = value
    return response
