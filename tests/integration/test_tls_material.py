"""TLS material in use, through a real gateway: readiness tells a total outage, a broken CRL refuses by
handshake and is logged once, serve warns that without a CRL revoked certificates pass, and every failed
handshake names its cause on both sides (``gateway send`` and the gateway's log; the outbox's last error).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select

from gateway.certs import ExamplePki
from outbox.schema import outbox_attempt, outbox_message
from tests.integration.conftest import REGISTER_EXAMPLE, inbox_count, session_for
from tests.integration.envelopes import envelope, fault_of
from tests.integration.harness import ROOT, GatewayProcess
from tests.integration.receivers import ReceiverProcess, catalogue_for
from tests.tlsfiles import issue, write_crl

pytestmark = pytest.mark.slow
UNIT = "SE2321000016-7Q6X"
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
DAY = timedelta(days=1)


def _readiness(gateway: GatewayProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(gateway.ops_url + "/health/ready", timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def _wait_readiness(gateway: GatewayProcess, status: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = _readiness(gateway)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.2)


def _wait_log(gateway: GatewayProcess, pattern: str, timeout: float = 15) -> list[dict[str, Any]]:
    """The gateway's JSON log lines whose message matches ``pattern``, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for line in gateway.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and re.search(
                pattern, str(record.get("msg") or record.get("message"))
            ):
                found.append(record)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _copy_tls(pki: ExamplePki, directory: Path) -> dict[str, Path]:
    """Copies of the server's files that a test may replace while the gateway runs."""
    files = {
        "certificate": pki.server.cert,
        "private_key": pki.server.key,
        "trust_store": pki.ca_cert,
        "crl": pki.crl,
    }
    copies = {}
    for key, source in files.items():
        target = directory / f"live-{source.name}"
        shutil.copy(source, target)
        copies[key] = target
    return copies


def _replace(target: Path, source: Path) -> None:
    tmp = target.with_name(target.name + ".new")
    shutil.copy(source, tmp)
    tmp.replace(target)


def _send(
    gateway: GatewayProcess, pki: ExamplePki, client: str | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``gateway send register-case`` as an operator runs it against this gateway."""
    args = [sys.executable, "-m", "gateway.cli", "--config", str(gateway.workdir / "gateway.toml")]
    args += ["send", "register-case", str(REGISTER_EXAMPLE), "--url", gateway.url, "--timeout", "20"]
    if client is not None:
        args += ["--cert", str(pki.clients[client].cert), "--key", str(pki.clients[client].key)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [*args, *extra], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )


def _post(pki: ExamplePki, gateway: GatewayProcess, client: str) -> requests.Response:
    with session_for(pki, client) as session:  # a new connection, so a new handshake
        return session.post(
            gateway.url + PATH, data=envelope(REGISTER_EXAMPLE, UNIT), headers=HEADERS, timeout=20
        )


def test_an_expired_crl_makes_readiness_false_and_says_why(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path, start_gateway: Callable[..., GatewayProcess]
) -> None:
    files = _copy_tls(pki, tmp_path)
    gateway = start_gateway(sqlite_url, tls={"crl": files["crl"]})
    assert _wait_readiness(gateway, 200)["checks"]["tls"] == "ok"

    write_crl(pki, files["crl"], last_update=-10 * DAY, next_update=-DAY)
    body = _wait_readiness(gateway, 503)
    assert body["ready"] is False
    assert re.match(
        rf"tls\.crl: {re.escape(str(files['crl']))}: expired on .* \(nextUpdate\)", body["checks"]["tls"]
    )
    # every caller is refused meanwhile, by the handshake, and both sides say why
    sent = _send(gateway, pki, "1177")
    assert sent.returncode == 1
    assert "the server refused our client certificate (alert: expired)" in sent.stderr
    assert _wait_log(gateway, r"^TLS handshake refused: tls\.crl has expired")
    assert inbox_count(sqlite_url) == 0

    write_crl(pki, files["crl"])  # a new CRL: ready again, callers accepted, without a restart
    assert _wait_readiness(gateway, 200)["checks"]["tls"] == "ok"
    assert _post(pki, gateway, "1177").status_code == 200


@pytest.mark.parametrize("breakage", ["garbage", "missing"])
def test_an_unusable_crl_at_runtime_refuses_by_handshake_and_is_logged_once(
    breakage: str,
    sqlite_url: str,
    pki: ExamplePki,
    tmp_path: Path,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    files = _copy_tls(pki, tmp_path)
    gateway = start_gateway(sqlite_url, tls={"crl": files["crl"]})
    assert _post(pki, gateway, "1177").status_code == 200

    if breakage == "garbage":
        files["crl"].write_text("not a CRL\n")
    else:
        files["crl"].unlink()
    for _ in range(4):
        # never an answer in plain HTTP (it was a 403 before): the handshake itself fails
        with pytest.raises(requests.exceptions.SSLError):
            _post(pki, gateway, "1177")
    body = _wait_readiness(gateway, 503)
    expected = "not a CRL" if breakage == "garbage" else "file not found"
    assert body["checks"]["tls"].startswith(f"tls.crl: {files['crl']}: {expected}")
    unusable = _wait_log(gateway, r"^TLS material unusable: tls\.crl .* cannot be loaded")
    assert 1 <= len(unusable) <= gateway.workers  # once per server process, not once per connection
    assert str(unusable[0]["level"]).lower() == "error"
    refused = _wait_log(gateway, r"^TLS handshake refused: refused while the TLS material is unusable")
    assert len(refused) <= gateway.workers  # four refusals from one address: counted, not logged each
    assert "Traceback" not in gateway.log_text()
    assert inbox_count(sqlite_url) == 1

    _replace(files["crl"], pki.crl)
    assert _wait_readiness(gateway, 200)["checks"]["tls"] == "ok"
    assert _post(pki, gateway, "1177").status_code == 200


def test_without_a_crl_a_revoked_caller_is_accepted_but_serve_warned(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url, tls={"crl": ""})
    warned = _wait_log(gateway, r"^revoked certificates are accepted: tls\.crl is not set$")
    assert len(warned) == 1
    assert str(warned[0]["level"]).lower() == "warning"
    body = _wait_readiness(gateway, 200)
    assert body["checks"]["tls"] == "ok; warning: revoked certificates are accepted: tls.crl is not set"
    # what the warning is about: the revoked certificate passes the handshake and reaches the application,
    # which knows the caller by it (and refuses it only because the catalogue gives it no permission)
    response = _post(pki, gateway, "revoked")
    code, text = fault_of(response.content)
    assert (response.status_code, code) == (500, "soap:Client")
    assert text.startswith("VP007 "), text
    assert '"consumer":"SE2321000016-RVK1"' in gateway.log_text().replace(" ", "")


def test_serve_refuses_to_start_with_unusable_material(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("garbage")
    workdir = tmp_path / "gw"
    workdir.mkdir()
    gateway = GatewayProcess(pki, sqlite_url, workdir, extra={"tls": {"certificate": garbage}})
    with pytest.raises(RuntimeError, match="gateway exited with 6"):
        gateway.start(timeout=60)
    assert f"gateway: tls.certificate: {garbage}: not a certificate" in gateway.log_text()
    assert "Traceback" not in gateway.log_text()


# what the client is given, and the cause `gateway send` names and the gateway logs
CLIENT_CAUSES: list[tuple[str, str | None, tuple[str, ...], str, str]] = [
    (
        "wrong-ca",
        "1177",
        ("--ca", "{foreign_ca}"),
        "server certificate not trusted (unknown CA)",
        "the client does not trust our server certificate (unknown CA)",
    ),
    (
        "no-client-certificate",
        None,
        (),
        "the server requires a client certificate and none was sent",
        "no client certificate",
    ),
    (
        "revoked-client-certificate",
        "revoked",
        (),
        "the server refused our client certificate (alert: revoked)",
        "client certificate revoked",
    ),
    (
        "expired-client-certificate",
        "expired",
        (),
        "the server refused our client certificate (alert: expired)",
        "client certificate expired",
    ),
    (
        "client-certificate-of-a-foreign-ca",
        "foreign",
        (),
        "the server refused our client certificate (alert: unknown CA)",
        "client certificate from an unknown CA",
    ),
]


def test_each_tls_failure_is_named_by_gateway_send_and_by_the_gateway(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path, start_gateway: Callable[..., GatewayProcess]
) -> None:
    files = _copy_tls(pki, tmp_path)
    gateway = start_gateway(
        sqlite_url, tls={"certificate": files["certificate"], "private_key": files["private_key"]}
    )
    host = f"localhost:{gateway.port}"
    for name, client, extra, says, logged in CLIENT_CAUSES:
        args = tuple(a.replace("{foreign_ca}", str(pki.foreign_ca_cert)) for a in extra)
        sent = _send(gateway, pki, client, *args)
        assert sent.returncode == 1, (name, sent.stdout, sent.stderr)
        lines = sent.stderr.splitlines()
        assert len(lines) == 1, (name, lines)
        assert lines[0].startswith(f"gateway: calling {host}: TLS handshake failed: "), (name, lines)
        assert says in lines[0], (name, lines)
        assert _wait_log(gateway, rf"^TLS handshake refused: {re.escape(logged)}$"), (name, logged)

    # the server's own certificate: one for another host name, then an expired one, swapped in while it runs
    for name, cert_options, says, logged in [
        (
            "host-name-mismatch",
            {"hosts": ("gateway.example",)},
            "server certificate does not match the host name (OpenSSL: Hostname mismatch",
            "the client refused our server certificate",
        ),
        (
            "expired-server-certificate",
            {"valid_from": -30 * DAY, "valid_until": -DAY},
            "server certificate expired (OpenSSL: certificate has expired)",
            "the client finds our server certificate expired",
        ),
    ]:
        cert, key = issue(pki, tmp_path, name, **cert_options)  # type: ignore[arg-type]
        _replace(files["private_key"], key)
        _replace(files["certificate"], cert)
        sent = _send(gateway, pki, "1177")
        assert sent.returncode == 1, (name, sent.stderr)
        assert says in sent.stderr, (name, sent.stderr)
        assert _wait_log(gateway, rf"^TLS handshake refused: {re.escape(logged)}"), (name, logged)
    body = _wait_readiness(gateway, 503)  # an expired server certificate: not ready, and why
    assert re.search(r"tls\.certificate: .*: the server certificate expired on", body["checks"]["tls"])
    assert inbox_count(sqlite_url) == 0
    assert "Traceback" not in gateway.log_text()


def test_the_outbox_keeps_the_cause_of_a_failed_delivery(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    receiver = ReceiverProcess(pki, tmp_path, "deviation-a").start()
    gateway = GatewayProcess(
        pki,
        sqlite_url,
        tmp_path,
        catalogue=catalogue_for(tmp_path, {"deviation-a": receiver}),
        extra={
            "outbox": {
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                # the receivers' certificates are checked against a CA that did not sign them
                "trust_store": pki.foreign_ca_cert,
                "poll_ms": 50,
                "retry_base_ms": 200,
            }
        },
    )
    gateway.start()
    try:
        assert _post(pki, gateway, "1177").status_code == 200
        engine = create_engine(sqlite_url)
        deadline = time.monotonic() + 30
        errors: list[Any] = []
        while time.monotonic() < deadline and not errors:
            with engine.connect() as conn:
                errors = list(conn.execute(select(outbox_message.c.last_error)).scalars())
                errors = [e for e in errors if e]
                details = list(conn.execute(select(outbox_attempt.c.detail)).scalars())
            time.sleep(0.1)
        engine.dispose()
    finally:
        gateway.stop()
        receiver.stop()
    expected = "TLS handshake failed: server certificate not trusted (unknown CA)"
    assert errors, "no delivery failed within 30 s"
    assert errors[0].startswith(expected), errors
    assert details, "no attempt logged"
    assert all(d.startswith(expected) for d in details), details
    assert receiver.arrivals() == []
