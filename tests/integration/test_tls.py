"""Caller identity over real TLS handshakes: every refused caller leaves nothing in the database."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests

from gateway.certs import ExamplePki
from tests.integration.conftest import REGISTER_EXAMPLE, inbox_count, session_for
from tests.integration.envelopes import envelope, fault_of
from tests.integration.harness import GatewayProcess

pytestmark = pytest.mark.slow
UNIT = "SE2321000016-7Q6X"
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


@pytest.mark.parametrize("client", [None, "foreign", "revoked", "expired"])
def test_handshake_refused(
    client: str | None, sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    """No certificate, a foreign CA, a revoked or an expired certificate: the TLS handshake fails."""
    gateway = start_gateway(sqlite_url)
    with session_for(pki, client) as session, pytest.raises(requests.exceptions.ConnectionError):
        # requests reports a failed handshake as SSLError (a ConnectionError) or as a reset connection
        session.post(gateway.url + PATH, data=envelope(REGISTER_EXAMPLE, UNIT), headers=HEADERS, timeout=10)
    assert inbox_count(sqlite_url) == 0
    with session_for(pki, "1177") as session:  # the server is still healthy for good callers
        ok = session.post(
            gateway.url + PATH, data=envelope(REGISTER_EXAMPLE, UNIT), headers=HEADERS, timeout=10
        )
    assert ok.status_code == 200
    assert inbox_count(sqlite_url) == 1


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_versions_offered(
    version: ssl.TLSVersion, sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    """TLS 1.2 and 1.3 are served (older versions are below the server context's minimum, see unit tests)."""
    gateway = start_gateway(sqlite_url)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.clients["1177"].cert), str(pki.clients["1177"].key))
    ctx.minimum_version = ctx.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert (
            tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        )


def test_certificate_without_serial_number_is_vp002(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url)
    with session_for(pki, "no-serial") as session:
        response = session.post(
            gateway.url + PATH, data=envelope(REGISTER_EXAMPLE, UNIT), headers=HEADERS, timeout=10
        )
    assert response.status_code == 500
    code, text = fault_of(response.content)
    assert code == "soap:Client"
    assert text.startswith("VP002 ")
    assert "logId" in text
    assert inbox_count(sqlite_url) == 0


def _pem_header(pki: ExamplePki, who: str) -> str:
    return quote(pki.clients[who].cert.read_text())


def _post_forwarding(pki: ExamplePki, gateway: GatewayProcess, forwarded: str) -> requests.Response:
    """Post as a proxy would: its own client certificate, the caller's certificate in the header."""
    with session_for(pki, "deviation-a") as session:
        return session.post(
            gateway.url + PATH,
            data=envelope(REGISTER_EXAMPLE, UNIT),
            headers={**HEADERS, "X-SSL-Client-Cert": _pem_header(pki, forwarded)},
            timeout=10,
        )


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param({"proxy": {"enabled": True, "trusted_cidrs": ["10.99.0.0/16"]}}, id="untrusted-address"),
        pytest.param({}, id="proxy-mode-off"),
    ],
)
def test_forwarded_certificate_header_is_refused(
    proxy: dict[str, Any], sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url, **proxy)
    response = _post_forwarding(pki, gateway, "1177")
    code, text = fault_of(response.content)
    assert (response.status_code, code) == (500, "soap:Client")
    assert text.startswith("VP002 ")
    assert inbox_count(sqlite_url) == 0


@pytest.mark.parametrize(
    ("forwarded", "accepted"),
    [("1177", True), ("revoked", False), ("expired", False), ("foreign", False), ("no-serial", False)],
)
def test_trusted_proxy_forwards_the_caller_certificate(
    forwarded: str,
    accepted: bool,
    sqlite_url: str,
    pki: ExamplePki,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    """From a trusted network the forwarded certificate names the caller, after the same checks as TLS."""
    gateway = start_gateway(sqlite_url, proxy={"enabled": True, "trusted_cidrs": ["127.0.0.0/8"]})
    response = _post_forwarding(pki, gateway, forwarded)
    if accepted:
        assert response.status_code == 200, response.text
        assert '"consumer":"SE5565594230-1177"' in gateway.log_text()
        assert inbox_count(sqlite_url) == 1
    else:
        code, text = fault_of(response.content)
        assert (response.status_code, code) == (500, "soap:Client")
        assert text.startswith("VP002 ")
        assert inbox_count(sqlite_url) == 0
