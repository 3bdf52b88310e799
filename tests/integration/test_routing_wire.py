"""The routing catalogue on the wire: VP004/VP007 before anything is stored, the route recorded, new
versions picked up by every worker of a real multi-worker server within 2 s, and the local snapshot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine, select

from gateway.cases.inbox import inbox_message
from gateway.certs import ExamplePki
from gateway.db import make_engine
from routing import CatalogueStore
from routing.model import LogicalAddress, Route
from tests.integration.conftest import REGISTER_EXAMPLE, inbox_count, session_for
from tests.integration.envelopes import envelope, fault_of
from tests.integration.harness import GatewayProcess

pytestmark = pytest.mark.slow
RC = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1"
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
PING_NS = "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1"


def _register_for(unit: str) -> bytes:
    payload = etree.parse(str(REGISTER_EXAMPLE)).getroot()
    unit_id = payload.find(".//{*}recipient/{*}unit/{*}unitId")
    assert unit_id is not None
    unit_id.text = unit
    return envelope(payload, unit)


def _post(pki: ExamplePki, gateway: GatewayProcess, who: str, body: bytes) -> requests.Response:
    with session_for(pki, who) as session:
        return session.post(gateway.url + PATH, data=body, headers=HEADERS, timeout=10)


def test_unroutable_and_unauthorised_calls_store_nothing(
    db_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(db_url)
    no_route = _post(pki, gateway, "1177", _register_for("SE2321000016-NONE"))
    code, text = fault_of(no_route.content)
    assert (no_route.status_code, code) == (500, "soap:Client")
    assert text.startswith("VP004 ")
    assert b"wildcard *: no route" in no_route.content  # the trace is in the fault detail

    not_allowed = _post(pki, gateway, "deviation-a", _register_for("SE2321000016-7Q6X"))
    code, text = fault_of(not_allowed.content)
    assert text.startswith("VP007 ")
    assert "SE2321000016-DEV1" in text
    assert inbox_count(db_url) == 0

    accepted = _post(pki, gateway, "1177", _register_for("SE2321000016-9K2M"))
    assert accepted.status_code == 200, accepted.text
    engine = create_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                inbox_message.c.route_target, inbox_message.c.route_address, inbox_message.c.routing_version
            )
        ).one()
    engine.dispose()
    assert tuple(row) == ("internal", "SE2321000016-9K2M", 1)


def _ping_versions(pki: ExamplePki, gateway: GatewayProcess, calls: int) -> dict[str, str]:
    """routingVersion seen per worker process, over fresh connections (each may land on another worker)."""
    body = envelope(
        f'<PingForConfiguration xmlns="{PING_NS}"><serviceContractNamespace>{RC}</serviceContractNamespace>'
        f"<logicalAddress>SE</logicalAddress></PingForConfiguration>".encode(),
        "SE",
    )
    seen: dict[str, str] = {}
    for _ in range(calls):
        with session_for(pki, "1177") as session:
            response = session.post(gateway.url + "/ping", data=body, headers=HEADERS, timeout=5)
        root = etree.fromstring(response.content)
        config = {c.findtext("{*}name"): c.findtext("{*}value") for c in root.iterfind(".//{*}configuration")}
        seen[str(config["process"])] = f"{config['routingVersion']}/{config['routingHash']}"
    return seen


def _worker_pids(
    pki: ExamplePki, gateway: GatewayProcess, count: int, timeout: float = 20.0
) -> dict[str, str]:
    """Ping over fresh connections until every worker has answered (gunicorn does not round-robin)."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        seen.update(_ping_versions(pki, gateway, 10))
    return seen


def _loaded_at(gateway: GatewayProcess, version: int) -> dict[int, float]:
    """When each process logged that it serves ``version`` (epoch seconds, by pid)."""
    loaded: dict[int, float] = {}
    for line in gateway.log_text().splitlines():
        if '"routing version loaded"' not in line:
            continue
        entry = json.loads(line)
        if entry.get("version") == version:
            loaded.setdefault(int(entry["pid"]), datetime.fromisoformat(entry["ts"]).timestamp())
    return loaded


def test_publish_and_rollback_reach_every_worker_within_two_seconds(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    gateway = GatewayProcess(pki, sqlite_url, tmp_path, workers=3, threads=2)
    with gateway:
        before = _worker_pids(pki, gateway, 3)
        assert len(before) == 3, f"expected to reach all three workers: {before}"
        assert {v.split("/")[0] for v in before.values()} == {"1"}
        workers = {int(pid) for pid in before}

        engine = make_engine(sqlite_url, pool_size=1)
        store = CatalogueStore(engine)
        store.add("routes", Route(RC, "SE2321000016-VG01", "internal"), "test")
        info = store.publish("test", "route the care provider to the desk")
        published = time.time()
        time.sleep(2.5)
        loaded = _loaded_at(gateway, info.version)
        assert workers <= set(loaded), (workers, loaded)
        assert all(loaded[pid] - published <= 2.0 for pid in workers), (published, loaded)
        expected = f"{info.version}/{info.content_hash[:12]}"
        assert set(_worker_pids(pki, gateway, 3).values()) == {expected}
        status = requests.get(gateway.ops_url + "/status", timeout=5).json()
        assert status["routing"] == {"version": info.version, "hash": info.content_hash}

        rolled = store.rollback(1, "test")
        rolled_back = time.time()
        time.sleep(2.5)
        loaded = _loaded_at(gateway, rolled.version)
        assert all(loaded[pid] - rolled_back <= 2.0 for pid in workers), (rolled_back, loaded)
        target = f"{rolled.version}/{rolled.content_hash[:12]}"
        assert set(_worker_pids(pki, gateway, 3).values()) == {target}
        assert rolled.content_hash == store.history()[0].content_hash
        engine.dispose()


def test_validity_window_takes_effect_without_publish(
    sqlite_url: str, pki: ExamplePki, start_gateway: Callable[..., GatewayProcess]
) -> None:
    gateway = start_gateway(sqlite_url)
    engine = make_engine(sqlite_url, pool_size=1)
    store = CatalogueStore(engine)
    cut_over = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    store.add("addresses", LogicalAddress("SE2321000016-CUT1"), "test")
    store.add("routes", Route(RC, "SE2321000016-CUT1", "internal", valid_from=cut_over), "test")
    store.publish("test", "scheduled cut-over")
    engine.dispose()
    time.sleep(1)
    early = _post(pki, gateway, "1177", _register_for("SE2321000016-CUT1"))
    assert fault_of(early.content)[1].startswith("VP004 ")
    while datetime.now(UTC) < cut_over + timedelta(milliseconds=200):
        time.sleep(0.1)
    late = _post(pki, gateway, "1177", _register_for("SE2321000016-CUT1"))
    assert late.status_code == 200, late.text


def test_database_unreachable_at_start_serves_local_snapshot(
    sqlite_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    first = GatewayProcess(pki, sqlite_url, tmp_path)
    with first:
        assert _ping_versions(pki, first, 3)
    snapshot = tmp_path / "routing-snapshot.json"
    assert snapshot.is_file()

    # Nothing listens on port 9: every connection attempt is refused at once.
    down = GatewayProcess(pki, "postgresql+psycopg://postgres@127.0.0.1:9/none", tmp_path, catalogue=None)
    down.start(wait_ready=False)
    try:
        seen = _ping_versions(pki, down, 4)
        assert {v.split("/")[0] for v in seen.values()} == {"1"}
        assert "serving routing version from the local snapshot" in down.log_text()
        refused = _post(pki, down, "1177", _register_for("SE2321000016-9K2M"))
        code, text = fault_of(refused.content)
        assert (refused.status_code, code) == (500, "soap:Server")  # retryable: nothing was acknowledged
        assert text.startswith("VP009 ")
        ready = requests.get(down.ops_url + "/health/ready", timeout=5)
        assert ready.status_code == 503
    finally:
        down.stop()
