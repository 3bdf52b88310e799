"""A real ``gateway serve`` logs no personal identity number wherever a caller puts one, and keeps its files
readable by its own user alone.

Requests carry marked personal identity numbers (``MARKERS``) in the LogicalAddress, the caseId, the
``x-skltp-correlation-id`` and ``x-rivta-original-serviceconsumer-hsaid`` headers, the SOAPAction, an
extension element's name and namespace, a schema-invalid element's name, an unknown request element and a
mustUnderstand header. Then the whole log file of the gateway (master, workers, delivery worker, operations
listener) is scanned: no marker may appear, and every line must be one JSON object (gunicorn's own lines
included). Fault strings of schema refusals carry the same safe form on the wire.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from lxml import etree

from gateway.certs import ExamplePki
from tests.integration.conftest import REGISTER_EXAMPLE, session_for
from tests.integration.envelopes import SOAP, envelope, fault_of
from tests.integration.harness import ROOT, GatewayProcess, publish_catalogue

pytestmark = pytest.mark.slow
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
DESK_UNIT = "SE2321000016-9K2M"  # routed to the gateway's case desk: nothing is delivered outside
RC = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1"
ACTION = f"{RC}:RegisterCase"
#: the three shapes of a personal identity number; the test personnummer 19121212-1212 in each
MARKERS = ("191212121212", "19121212-1212", "1212121212")


def _register(case_id: str = "LOG-PRIVACY-1", unit: str = DESK_UNIT) -> etree._Element:
    payload = etree.parse(str(REGISTER_EXAMPLE)).getroot()
    payload.find(f"{{{RC}}}caseId").text = case_id  # type: ignore[union-attr]
    payload.find(".//{*}recipient/{*}unit/{*}unitId").text = unit  # type: ignore[union-attr]
    return payload


def _with_extension(name: str, namespace: str) -> bytes:
    payload = _register("LOG-PRIVACY-EXT")
    etree.SubElement(payload, f"{{{namespace}}}{name}").text = "extension"
    return envelope(payload, DESK_UNIT)


def _with_invalid_element(name: str) -> bytes:
    payload = _register("LOG-PRIVACY-BAD")
    payload.insert(1, etree.Element(f"{{{RC}}}{name}"))  # in the contract's namespace, not declared there
    return envelope(payload, DESK_UNIT)


def _with_foreign_element_out_of_place(name: str) -> bytes:
    payload = _register("LOG-PRIVACY-BAD2")
    payload.insert(1, etree.Element(f"{{urn:x-{MARKERS[1]}}}{name}"))  # xs:any is only allowed at the end
    return envelope(payload, DESK_UNIT)


def _must_understand(name: str) -> bytes:
    root = etree.fromstring(envelope(_register("LOG-PRIVACY-MU"), DESK_UNIT))
    header = root.find(f"{{{SOAP}}}Header")
    assert header is not None
    block = etree.SubElement(header, f"{{urn:x:{MARKERS[2]}}}{name}")
    block.set(f"{{{SOAP}}}mustUnderstand", "1")
    return etree.tostring(root)


def _unknown_request() -> bytes:
    return envelope(etree.Element(f"{{urn:q:{MARKERS[0]}}}Register{MARKERS[2]}"), DESK_UNIT)


def _requests() -> list[tuple[str, bytes, dict[str, str], int]]:
    """(what, body, extra headers, expected HTTP status)."""
    return [
        (
            "ok with marked headers",
            envelope(_register(), DESK_UNIT),
            {
                "x-skltp-correlation-id": MARKERS[1],
                "x-rivta-original-serviceconsumer-hsaid": MARKERS[2],
            },
            200,
        ),
        ("caseId", envelope(_register(f"CASE-{MARKERS[0]}"), DESK_UNIT), {}, 200),
        ("caseId with a dash", envelope(_register(f"CASE {MARKERS[1]}"), DESK_UNIT), {}, 200),
        (
            "HSA-id-shaped LogicalAddress",
            envelope(_register(unit=f"SE{MARKERS[0]}"), f"SE{MARKERS[0]}"),
            {},
            500,
        ),
        ("LogicalAddress", envelope(_register(unit=MARKERS[1]), MARKERS[1]), {}, 500),
        ("LogicalAddress, 10 digits", envelope(_register(unit=MARKERS[2]), MARKERS[2]), {}, 500),
        ("extension element", _with_extension(f"e{MARKERS[0]}", f"urn:ext:{MARKERS[1]}"), {}, 200),
        ("invalid element", _with_invalid_element(f"x{MARKERS[0]}"), {}, 500),
        ("foreign element out of place", _with_foreign_element_out_of_place(f"y{MARKERS[1]}"), {}, 500),
        ("mustUnderstand header", _must_understand(f"h{MARKERS[0]}"), {}, 500),
        ("unknown request element", _unknown_request(), {}, 500),
        (
            "SOAPAction",
            envelope(_register("LOG-PRIVACY-SA"), DESK_UNIT),
            {"SOAPAction": f'"{MARKERS[0]}"'},
            500,
        ),
        (
            "original consumer shaped like an HSA-id",
            envelope(_register("LOG-PRIVACY-OC"), DESK_UNIT),
            {"x-rivta-original-serviceconsumer-hsaid": f"SE{MARKERS[1]}", "x-skltp-correlation-id": "a b"},
            200,
        ),
    ]


def _post(
    session: requests.Session, gateway: GatewayProcess, body: bytes, headers: dict[str, str]
) -> requests.Response:
    return session.post(
        gateway.url + PATH,
        data=body,
        headers={"Content-Type": "text/xml; charset=utf-8", **headers},
        timeout=20,
    )


def test_marked_personal_numbers_never_reach_the_log(
    db_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(db_url)
    with session_for(pki, "1177") as session:
        for what, body, headers, status in _requests():
            response = _post(session, gateway, body, headers)
            assert response.status_code == status, (what, response.text[:500])
            if status == 500:
                code, text = fault_of(response.content)
                assert code.startswith("soap:"), what
                if what in ("invalid element", "foreign element out of place", "mustUnderstand header"):
                    # refusals that name the caller's elements use the same safe form on the wire
                    assert not any(m in text for m in MARKERS), (what, text)
    gateway.stop()  # every process has written and flushed its last line
    log = gateway.log_text()
    for marker in MARKERS:
        assert marker not in log, f"{marker} reached the log:\n" + "\n".join(
            line for line in log.splitlines() if marker in line
        )
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one JSON object
    loggers = {e["logger"] for e in entries}
    assert "gunicorn.error" in loggers, loggers  # gunicorn's own lines went through the same formatter
    requests_logged = [e for e in entries if e["msg"] == "soap request"]
    assert len(requests_logged) == len(_requests())
    levels = {(e["outcome"], e["level"]) for e in requests_logged}
    assert ("OK", "info") in levels
    assert ("VP004", "warning") in levels
    assert ("VP015", "warning") in levels
    shown = [e for e in requests_logged if e.get("correlationId") or e.get("originalConsumer")]
    assert all(e.get("correlationId", "h:")[:2] == "h:" for e in shown), shown
    assert any(e.get("caseId") == "LOG-PRIVACY-1" for e in requests_logged)  # a clean id is shown as it is


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_of_a_running_gateway_are_readable_by_its_user_only(pki: ExamplePki, tmp_path: Path) -> None:
    """gateway serve makes its database (and SQLite's files beside it) and the routing snapshot 0600.

    The database directory does not exist before, so serve creates it (0700); a snapshot left 0644 by an
    older version is tightened with a warning. The test process itself runs with umask 022, as a shell would.
    """
    old_umask = os.umask(0o022)
    try:
        var = tmp_path / "var" / "data"
        db_url = f"sqlite:///{var / 'gateway.db'}"
        gateway = GatewayProcess(pki, db_url, tmp_path, catalogue=None)
        snapshot = tmp_path / "routing-snapshot.json"
        snapshot.write_text("{}")
        snapshot.chmod(0o644)
        with gateway:
            publish_catalogue(db_url, ROOT / "examples" / "routing.yaml")  # picked up by the routing poll
            with session_for(pki, "1177") as session:
                for _attempt in range(100):
                    response = _post(session, gateway, envelope(_register("LOG-FILES-1"), DESK_UNIT), {})
                    if response.status_code == 200:
                        break
                    time.sleep(0.1)
                assert response.status_code == 200, response.text[:500]
            files = {
                "database": var / "gateway.db",
                "wal": var / "gateway.db-wal",
                "shm": var / "gateway.db-shm",
                "snapshot": snapshot,
            }
            modes = {name: f"{_mode(path):04o}" for name, path in files.items()}
            assert modes == dict.fromkeys(files, "0600"), modes
            lock = var / "gateway.db-writers.lock"
            if lock.exists():
                assert _mode(lock) == 0o600
            assert _mode(var) == 0o700
            assert _mode(var.parent) == 0o700
            for path in var.iterdir():
                assert _mode(path) & 0o077 == 0, path
    finally:
        os.umask(old_umask)
    assert "routing-snapshot.json was readable by others" in gateway.log_text()
