"""Envelope rules, faults and TLS contexts as units (the hostile corpus covers them end to end)."""

from __future__ import annotations

import ssl
import uuid
from typing import Any

import pytest
from lxml import etree

from contracts import registercase, updatecase
from contracts.model import Result
from gateway.certs import ExamplePki
from gateway.config import TlsConfig
from gateway.errors import InvalidRequestError, NotAuthorisedError, ServerFault
from gateway.soap.envelope import (
    SOAP_ENV_NS,
    OkEnvelope,
    fault_envelope,
    parse_envelope,
    parse_xml,
    response_envelope,
)
from gateway.soap.tls import ServerContextFactory, server_context


def test_fault_envelope_shape() -> None:
    log_id = str(uuid.uuid4())
    fault = NotAuthorisedError("SE1 may not call RegisterCase at SE2", detail="exact SE2: no permission")
    root = etree.fromstring(fault_envelope(fault, log_id))
    body = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{SOAP_ENV_NS}}}Fault")
    assert body is not None
    assert body.findtext("faultcode") == "soap:Client"
    assert body.findtext("faultstring") == f"VP007 SE1 may not call RegisterCase at SE2 (logId {log_id})"
    assert body.findtext("detail/{*}gatewayFault/{*}logId") == log_id
    assert body.findtext("detail/{*}gatewayFault/{*}trace") == "exact SE2: no permission"
    assert body.findtext("detail/{*}gatewayFault/{*}retryable") == "false"


def test_server_fault_is_retryable() -> None:
    root = etree.fromstring(fault_envelope(ServerFault("down"), "x"))
    assert root.findtext(".//faultcode") == "soap:Server"
    assert root.findtext(".//{*}retryable") == "true"


def test_depth_limit_counts_every_level() -> None:
    def nested(levels: int) -> bytes:
        return ("<a>" * levels + "</a>" * levels).encode()

    parse_xml(nested(16), max_depth=16)
    with pytest.raises(InvalidRequestError, match="deeper than 16"):
        parse_xml(nested(17), max_depth=16)


def test_envelope_keeps_payload_and_address() -> None:
    root = parse_xml(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
        b'<LogicalAddress xmlns="urn:riv:itintegration:registry:1">SE1</LogicalAddress></s:Header>'
        b'<s:Body><x:P xmlns:x="urn:x"/></s:Body></s:Envelope>',
        max_depth=64,
    )
    env = parse_envelope(root)
    assert env.logical_address == "SE1"
    assert env.payload.tag == "{urn:x}P"


def test_server_context_requires_client_certificates_and_tls12(pki: ExamplePki) -> None:
    tls = TlsConfig(pki.server.cert, pki.server.key, pki.ca_cert, pki.crl, "1.2")
    ctx = server_context(tls)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert server_context(
        TlsConfig(pki.server.cert, pki.server.key, pki.ca_cert, None, "1.3")
    ).minimum_version == (ssl.TLSVersion.TLSv1_3)


def test_server_context_factory_rebuilds_when_crl_changes(pki: ExamplePki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.crl.read_bytes())
    factory = ServerContextFactory(TlsConfig(pki.server.cert, pki.server.key, pki.ca_cert, crl, "1.2"))
    first = factory()
    assert factory() is first  # cached while nothing changes
    crl.write_bytes(pki.crl.read_bytes())
    import os

    stat = crl.stat()
    os.utime(crl, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert factory() is not first


@pytest.mark.parametrize("build", [registercase.build_response, updatecase.build_response])
def test_ok_envelope_template_is_the_builders_own_answer(build: Any) -> None:
    log_id = "0b9d4c8e-5a1f-4c33-9f7e-2d6a1e0c4b71"
    template = OkEnvelope(build)
    assert template(log_id) == response_envelope(build(Result.ok(log_id)))
