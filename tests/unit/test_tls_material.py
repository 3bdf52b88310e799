"""``gateway check-config`` loads the TLS material: each problem is one line naming the file, exit code 6.

Data-driven: each case changes one file of a working configuration and names the exit code, the line on
stderr (error or warning) and the status of its check in ``--json``. ``check-config`` runs as a subprocess,
as an operator runs it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.certs import ExamplePki
from gateway.config import Config, TlsConfig, load_config
from gateway.errors import TlsMaterialError
from gateway.logs import RepeatFilter
from gateway.soap.tls import log_refusal
from gateway.tlscheck import NO_CRL_WARNING, TlsMonitor, check_tls_material
from tests.tlsfiles import issue, write_crl

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)

#: prepares the case's files in the directory and returns the settings it changes: {"tls.crl": path, ...}
Prepare = Callable[[ExamplePki, Path], dict[str, str]]


@dataclass(frozen=True)
class Case:
    id: str
    prepare: Prepare
    exit_code: int
    #: a regex the case's line on stderr must match; {file} stands for the changed file
    line: str
    check: str
    status: str
    extra: dict[str, str] = field(default_factory=dict)


def _write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def _server(**kwargs: object) -> Prepare:
    def prepare(pki: ExamplePki, d: Path) -> dict[str, str]:
        cert, key = issue(pki, d, "server-test", **kwargs)  # type: ignore[arg-type]
        return {"tls.certificate": str(cert), "tls.private_key": str(key)}

    return prepare


def _client(**kwargs: object) -> Prepare:
    def prepare(pki: ExamplePki, d: Path) -> dict[str, str]:
        cert, key = issue(pki, d, "client-test", server=False, **kwargs)  # type: ignore[arg-type]
        return {"outbox.client_certificate": str(cert), "outbox.client_key": str(key)}

    return prepare


def _crl(**kwargs: object) -> Prepare:
    def prepare(pki: ExamplePki, d: Path) -> dict[str, str]:
        return {"tls.crl": str(write_crl(pki, d / "test-crl.pem", **kwargs))}  # type: ignore[arg-type]

    return prepare


def _encrypted_key(pki: ExamplePki, d: Path) -> dict[str, str]:
    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), password=None)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    return {"tls.private_key": _write(d, "encrypted.key", data)}


_NOT_A_CERT = r"not a certificate \(expected PEM or DER X\.509\)"
CASES = [
    Case("working", lambda pki, d: {}, 0, r"^$", "tls.certificate", "ok"),
    Case(
        "garbage-certificate",
        lambda pki, d: {"tls.certificate": _write(d, "garbage.pem", b"garbage\n")},
        6,
        rf"^gateway: tls\.certificate: {{file}}: {_NOT_A_CERT}$",
        "tls.certificate",
        "error",
    ),
    Case(
        "pem-garbage-certificate",
        lambda pki, d: {
            "tls.certificate": _write(
                d, "broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            )
        },
        6,
        rf"^gateway: tls\.certificate: {{file}}: {_NOT_A_CERT}$",
        "tls.certificate",
        "error",
    ),
    Case(
        "key-of-another-certificate",
        lambda pki, d: {"tls.private_key": str(pki.clients["1177"].key)},
        6,
        r"^gateway: tls\.private_key: {file}: does not belong to the certificate in tls\.certificate "
        r"\(.*server\.pem\)$",
        "tls.private_key",
        "error",
    ),
    Case(
        "encrypted-key",
        _encrypted_key,
        6,
        r"^gateway: tls\.private_key: {file}: the key is encrypted; the gateway needs it unencrypted",
        "tls.private_key",
        "error",
    ),
    Case(
        "certificate-of-a-foreign-ca",
        _server(issuer="foreign"),
        6,
        r"^gateway: tls\.certificate: {file}: the server certificate is not issued by a CA in "
        r"tls\.trust_store "
        r"\(its issuer is CN=Foreign Demo CA,O=Foreign Demo Org,C=SE\)$",
        "tls.certificate",
        "error",
    ),
    Case(
        "expired-certificate",
        _server(valid_from=-30 * DAY, valid_until=-DAY),
        6,
        r"^gateway: tls\.certificate: {file}: the server certificate expired on \d{4}-\d\d-\d\d "
        r"\d\d:\d\d UTC \(notAfter\)$",
        "tls.certificate",
        "error",
    ),
    Case(
        "certificate-not-yet-valid",
        _server(valid_from=2 * DAY, valid_until=300 * DAY),
        6,
        r"^gateway: tls\.certificate: {file}: the server certificate is not valid before .* \(notBefore\)$",
        "tls.certificate",
        "error",
    ),
    Case(
        "certificate-expiring-soon",
        _server(valid_until=10 * DAY),
        0,
        r"^warning: tls\.certificate: {file}: the server certificate expires in (9|10) days, on .*: "
        r"renew it$",
        "tls.certificate",
        "warning",
    ),
    Case(
        "public-url-not-in-the-certificate",
        lambda pki, d: {"server.public_url": "https://gateway.example:8443"},
        0,
        r"^warning: tls\.certificate: .*server\.pem: the server certificate does not name gateway\.example, "
        r"the host of server\.public_url: callers that use it will refuse the certificate "
        r"\(host name mismatch\)$",
        "tls.certificate",
        "warning",
    ),
    Case(
        "garbage-trust-store",
        lambda pki, d: {"tls.trust_store": _write(d, "ca-garbage.pem", b"\x00\x01garbage")},
        6,
        rf"^gateway: tls\.trust_store: {{file}}: {_NOT_A_CERT}$",
        "tls.trust_store",
        "error",
    ),
    Case(
        "garbage-crl",
        lambda pki, d: {"tls.crl": _write(d, "crl-garbage.pem", b"garbage")},
        6,
        r"^gateway: tls\.crl: {file}: not a CRL \(expected PEM or DER X\.509 CRL\): every caller is refused "
        r"until it is fixed$",
        "tls.crl",
        "error",
    ),
    Case(
        "certificate-given-as-crl",
        lambda pki, d: {"tls.crl": str(pki.ca_cert)},
        6,
        r"^gateway: tls\.crl: {file}: holds no CRL .*: every caller is refused until it is fixed$",
        "tls.crl",
        "error",
    ),
    Case(
        "expired-crl",
        _crl(last_update=-10 * DAY, next_update=-DAY),
        6,
        r"^gateway: tls\.crl: {file}: expired on .* \(nextUpdate\): every caller is refused until a new CRL "
        r"is installed$",
        "tls.crl",
        "error",
    ),
    Case(
        "crl-of-a-foreign-ca",
        _crl(issuer="foreign"),
        6,
        r"^gateway: tls\.crl: {file}: issued by CN=Foreign Demo CA,O=Foreign Demo Org,C=SE, which is "
        r"not a CA "
        r"in tls\.trust_store: every caller is refused$",
        "tls.crl",
        "error",
    ),
    Case(
        "crl-not-yet-valid",
        _crl(last_update=DAY, next_update=10 * DAY),
        6,
        r"^gateway: tls\.crl: {file}: not valid before .* \(thisUpdate\)$",
        "tls.crl",
        "error",
    ),
    Case(
        "crl-expiring-soon",
        _crl(next_update=timedelta(hours=6)),
        0,
        r"^warning: tls\.crl: {file}: expires in [56] hours, on .* \(nextUpdate\): renew it$",
        "tls.crl",
        "warning",
    ),
    Case(
        "no-crl",
        lambda pki, d: {"tls.crl": ""},
        0,
        rf"^warning: {re.escape(NO_CRL_WARNING)}$",
        "tls.crl",
        "warning",
    ),
    Case(
        "expired-outbound-client-certificate",
        _client(valid_from=-30 * DAY, valid_until=-DAY),
        6,
        r"^gateway: outbox\.client_certificate: {file}: the gateway's client certificate expired on "
        r".* \(notAfter\)$",
        "outbox.client_certificate",
        "error",
    ),
    Case(
        "outbound-client-certificate-of-a-foreign-ca",
        _client(issuer="foreign"),
        6,
        r"^gateway: outbox\.client_certificate: {file}: the gateway's client certificate is not "
        r"issued by a CA "
        r"in tls\.trust_store or outbox\.trust_store",
        "outbox.client_certificate",
        "error",
    ),
    Case(
        "outbound-client-key-of-another-certificate",
        lambda pki, d: {"outbox.client_key": str(pki.clients["1177"].key)},
        6,
        r"^gateway: outbox\.client_key: {file}: does not belong to the certificate in "
        r"outbox\.client_certificate",
        "outbox.client_key",
        "error",
    ),
    Case(
        "outbound-client-certificate-expiring-soon",
        _client(valid_until=5 * DAY),
        0,
        r"^warning: outbox\.client_certificate: {file}: the gateway's client certificate expires in "
        r"[45] days",
        "outbox.client_certificate",
        "warning",
    ),
]


def _config(pki: ExamplePki, directory: Path, changes: dict[str, str]) -> Path:
    settings = {
        "tls.certificate": str(pki.server.cert),
        "tls.private_key": str(pki.server.key),
        "tls.trust_store": str(pki.ca_cert),
        "tls.crl": str(pki.crl),
        "outbox.client_certificate": str(pki.clients["gateway"].cert),
        "outbox.client_key": str(pki.clients["gateway"].key),
        "database.url": f"sqlite:///{directory / 'gateway.db'}",
        **changes,
    }
    sections: dict[str, list[str]] = {}
    for key, value in settings.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"{name} = {json.dumps(value)}")
    path = directory / "gateway.toml"
    path.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    return path


def _check_config(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "check-config", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_config_names_each_tls_problem(case: Case, pki: ExamplePki, tmp_path: Path) -> None:
    changes = case.prepare(pki, tmp_path)
    config = _config(pki, tmp_path, {**changes, **case.extra})
    changed = changes.get(case.check) or ""
    line = case.line.replace("{file}", re.escape(changed))

    result = _check_config(config, "--json")  # the same lines on stderr as without --json
    assert result.returncode == case.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if case.line == r"^$":
        assert lines == []
    else:
        assert len(lines) == 1, lines  # one line, whatever the problem
        assert re.match(line, lines[0]), lines[0]
    checks = json.loads(result.stdout)["tls"]
    statuses = {c["check"]: c["status"] for c in checks}
    assert statuses[case.check] == case.status, checks
    assert all(c["status"] in ("ok", "warning", "error") for c in checks)


@pytest.mark.parametrize(("broken", "code"), [(False, 0), (True, 6)])
def test_check_config_text_output(broken: bool, code: int, pki: ExamplePki, tmp_path: Path) -> None:
    changes = {"tls.crl": _write(tmp_path, "crl-garbage.pem", b"garbage")} if broken else {}
    result = _check_config(_config(pki, tmp_path, changes))
    assert result.returncode == code
    if broken:
        assert result.stdout == ""
        assert result.stderr.startswith("gateway: tls.crl: ")
    else:
        assert result.stdout.startswith("configuration OK (")
        assert result.stderr == ""


def test_an_error_names_how_many_more_there_are(pki: ExamplePki, tmp_path: Path) -> None:
    changes = {
        "tls.certificate": _write(tmp_path, "garbage.pem", b"garbage"),
        "tls.crl": _write(tmp_path, "crl-garbage.pem", b"garbage"),
    }
    config = load_config(_config(pki, tmp_path, changes), env={})
    report = check_tls_material(config)
    assert [f.check for f in report.errors] == ["tls.certificate", "tls.crl"]
    with pytest.raises(TlsMaterialError, match=r"\(and 1 more: see gateway check-config\)$") as caught:
        report.raise_for_errors()
    assert caught.value.exit_code == 6


def test_readiness_check_follows_the_files_and_the_clock(pki: ExamplePki, tmp_path: Path) -> None:
    crl = write_crl(pki, tmp_path / "crl.pem")
    tls = TlsConfig(certificate=pki.server.cert, private_key=pki.server.key, trust_store=pki.ca_cert, crl=crl)
    ticks = [0.0]
    now = [datetime.now(UTC)]
    monitor = TlsMonitor(Config(tls=tls), max_age=60, clock=lambda: ticks[0], now=lambda: now[0])
    assert monitor() == (True, "ok")
    write_crl(pki, crl, issuer="foreign")  # replaced on disk: seen on the next poll
    ready, detail = monitor()
    assert not ready
    assert detail.startswith(f"tls.crl: {crl}: issued by CN=Foreign Demo CA")
    write_crl(pki, crl, next_update=2 * DAY)
    assert monitor() == (True, "ok")
    now[0] += 3 * DAY  # the CRL expires with nothing changed on disk: seen once the cached answer is old
    assert monitor() == (True, "ok")
    ticks[0] += 61
    ready, detail = monitor()
    assert not ready
    assert "expired on" in detail


def test_repeated_handshake_refusals_are_counted_not_logged_each_time() -> None:
    lines: list[str] = []
    ticks = [0.0]

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    handler.addFilter(RepeatFilter(30, clock=lambda: ticks[0]))
    logger = logging.getLogger("gateway.tls")
    logger.addHandler(handler)
    try:
        for _ in range(50):
            log_refusal("10.0.0.7", "client certificate revoked")
        log_refusal("10.0.0.7", "no client certificate")  # another cause: a line of its own
        ticks[0] += 31
        log_refusal("10.0.0.8", "client certificate revoked")
    finally:
        logger.removeHandler(handler)
    assert lines == [
        "TLS handshake refused: client certificate revoked",
        "TLS handshake refused: no client certificate",
        "TLS handshake refused: client certificate revoked (repeated 50 times in the last 31 s)",
    ]
