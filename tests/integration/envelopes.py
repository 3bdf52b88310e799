"""Build SOAP 1.1 envelopes around payload files, for tests that post raw bytes."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY = "urn:riv:itintegration:registry:1"


def envelope(payload: etree._Element | Path | bytes, logical_address: str) -> bytes:
    if isinstance(payload, Path):
        payload = payload.read_bytes()
    if isinstance(payload, bytes):
        payload = etree.fromstring(payload)
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    header = etree.SubElement(env, f"{{{SOAP}}}Header")
    etree.SubElement(header, f"{{{REGISTRY}}}LogicalAddress", nsmap={None: REGISTRY}).text = logical_address
    etree.SubElement(env, f"{{{SOAP}}}Body").append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def fault_of(response_body: bytes) -> tuple[str, str]:
    root = etree.fromstring(response_body)
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, response_body[:500]
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""
