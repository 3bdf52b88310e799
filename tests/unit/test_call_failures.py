"""A failed outbound call names its cause, on both sides of real handshakes on loopback.

The server is the gateway's own TLS server socket (``ServerContextFactory``: its handshake logging and the
pause that lets a refused client read the alert), serving one tiny HTTP answer per connection; the client
is the outbox's ``SoapTransport``, whose ``Delivery.detail`` becomes ``last_error`` and the attempt log.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.certs import ExamplePki
from gateway.config import TlsConfig
from gateway.logs import RepeatFilter
from gateway.soap.tls import ServerContextFactory
from outbox import ClientIdentity, EndpointSpec, Kind, SoapTransport
from outbox.store import Claimed
from tests.tlsfiles import issue

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class _Recorder(logging.Handler):
    """The causes of the refused handshakes logged, through the gateway's repeat filter (as in serve)."""

    def __init__(self) -> None:
        super().__init__()
        self.causes: list[str] = []
        self.addFilter(RepeatFilter(60))

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if "cause" in fields and "repeated" not in fields:
            self.causes.append(fields["cause"])


@dataclass
class Server:
    port: int
    causes: _Recorder
    factory: ServerContextFactory

    def logged(self, count: int) -> list[str]:
        """The causes logged, once there are ``count`` (the server may finish after the client gave up)."""
        deadline = time.monotonic() + 10
        while len(self.causes.causes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # and no more than that
        return self.causes.causes


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def _serve(tls: TlsConfig) -> Iterator[Server]:
    recorder = _Recorder()
    logger = logging.getLogger("gateway.tls")
    logger.addHandler(recorder)
    factory = ServerContextFactory(tls)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        try:
            with factory().wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls_conn:
                tls_conn.settimeout(5)
                tls_conn.do_handshake()  # as gunicorn does
                _read_request(tls_conn)
                tls_conn.sendall(_OK)
        except OSError:
            conn.close()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield Server(listener.getsockname()[1], recorder, factory)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        logger.removeHandler(recorder)


@pytest.fixture
def server(pki: ExamplePki) -> Iterator[Server]:
    yield from _serve(
        TlsConfig(
            certificate=pki.server.cert, private_key=pki.server.key, trust_store=pki.ca_cert, crl=pki.crl
        )
    )


def _message() -> Claimed:
    return Claimed(
        id=1,
        stream="CASE-1",
        seq=1,
        operation="RegisterCase",
        destination="test",
        logical_address="SE2321000016-7Q6X",
        payload=b"<x/>",
        correlation_id="c",
        original_consumer=None,
        idempotency_key="k",
        attempts=1,
        created_ms=0,
        lease_token="t",
    )


def _deliver(
    pki: ExamplePki, port: int, client: str | None, ca: Path | None = None, host: str = "localhost"
) -> str:
    identity = pki.clients[client] if client else None
    transport = SoapTransport(
        ClientIdentity(
            identity.cert if identity else None, identity.key if identity else None, ca or pki.ca_cert
        ),
        {},
    )
    try:
        outcome = transport.deliver(
            EndpointSpec("test", f"https://{host}:{port}/", read_timeout=10), _message()
        )
    finally:
        transport.close()
    assert outcome.kind is Kind.TRANSIENT
    return outcome.detail


# client, trust store (None: the demo CA), the cause the client names, the cause the server logs
CAUSES = [
    (
        "no-client-certificate",
        None,
        None,
        "the server requires a client certificate and none was sent",
        "no client certificate",
    ),
    (
        "revoked",
        "revoked",
        None,
        "the server refused our client certificate (alert: revoked)",
        "client certificate revoked",
    ),
    (
        "expired",
        "expired",
        None,
        "the server refused our client certificate (alert: expired)",
        "client certificate expired",
    ),
    (
        "foreign",
        "foreign",
        None,
        "the server refused our client certificate (alert: unknown CA)",
        "client certificate from an unknown CA",
    ),
    (
        "server-not-trusted",
        "1177",
        "foreign",
        "server certificate not trusted (unknown CA)",
        "the client does not trust our server certificate (unknown CA)",
    ),
]


@pytest.mark.parametrize(
    ("name", "client", "ca", "client_says", "server_says"), CAUSES, ids=[c[0] for c in CAUSES]
)
def test_both_sides_name_the_cause(
    name: str,
    client: str | None,
    ca: str | None,
    client_says: str,
    server_says: str,
    server: Server,
    pki: ExamplePki,
) -> None:
    trust = pki.foreign_ca_cert if ca == "foreign" else None
    detail = _deliver(pki, server.port, client, trust)
    assert detail.startswith("TLS handshake failed: ")
    assert client_says in detail
    assert server.logged(1) == [server_says]
    # a second identical failure is counted, not logged again
    _deliver(pki, server.port, client, trust)
    assert server.logged(1) == [server_says]


def test_the_good_client_gets_through(server: Server, pki: ExamplePki) -> None:
    transport = SoapTransport(
        ClientIdentity(pki.clients["gateway"].cert, pki.clients["gateway"].key, pki.ca_cert), {}
    )
    outcome = transport.deliver(EndpointSpec("test", f"https://localhost:{server.port}/"), _message())
    transport.close()
    assert outcome.http_status == 200  # the tiny server's body is no SOAP answer, but the call went through
    assert server.causes.causes == []


def test_expired_server_certificate_and_hostname_mismatch(pki: ExamplePki, tmp_path: Path) -> None:
    from datetime import timedelta

    expired_cert, expired_key = issue(
        pki, tmp_path, "expired-server", valid_from=timedelta(days=-30), valid_until=timedelta(days=-1)
    )
    other_cert, other_key = issue(pki, tmp_path, "other-host", hosts=("gateway.example",))
    for cert, key, expected in [
        (expired_cert, expired_key, "server certificate expired (OpenSSL: certificate has expired)"),
        (
            other_cert,
            other_key,
            "server certificate does not match the host name (OpenSSL: Hostname mismatch",
        ),
    ]:
        tls = TlsConfig(certificate=cert, private_key=key, trust_store=pki.ca_cert, crl=pki.crl)
        for srv in _serve(tls):
            assert expected in _deliver(pki, srv.port, "gateway")


def test_connection_refused_and_our_own_unusable_files(pki: ExamplePki, tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert _deliver(pki, port, "gateway") == "connection refused (nothing listens at that address and port)"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("garbage")
    transport = SoapTransport(ClientIdentity(garbage, garbage, pki.ca_cert), {})
    outcome = transport.deliver(EndpointSpec("test", f"https://localhost:{port}/"), _message())
    assert outcome.detail.startswith("our TLS files cannot be loaded: ")


def test_an_unusable_crl_refuses_every_caller_by_handshake_and_is_logged_once(
    pki: ExamplePki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.crl.read_bytes())
    tls = TlsConfig(certificate=pki.server.cert, private_key=pki.server.key, trust_store=pki.ca_cert, crl=crl)
    for srv in _serve(tls):
        assert _deliver(pki, srv.port, "gateway") == "HTTP 200 without a valid response"  # the tiny server...
        crl.write_text("garbage")  # ...until the CRL is replaced by something that is not a CRL
        with caplog.at_level(logging.WARNING, logger="gateway.tls"):
            for _ in range(3):
                detail = _deliver(pki, srv.port, "gateway")
                assert detail.startswith("TLS handshake failed: the server refused our client certificate"), (
                    detail
                )
        unusable = [r for r in caplog.records if r.getMessage().startswith("TLS material unusable")]
        assert len(unusable) == 1
        assert f"tls.crl {crl} cannot be loaded" in unusable[0].getMessage()
        assert len(srv.logged(1)) == 1  # three refusals from one address: one line
        assert srv.causes.causes[0].startswith(f"refused while the TLS material is unusable: tls.crl {crl}")
