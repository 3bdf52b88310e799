"""kill -9 of the delivery worker while it delivers a citizen's reply (issue 15), on SQLite and PostgreSQL.

1177's CITIZEN_REPLY is acknowledged (OK) by a real gateway, then a separately started ``gateway worker``
posts it to the case's handling system, whose scripted receiver answers slowly; the worker is killed with
SIGKILL while the call is open. A new worker delivers it again once the dead worker's lease has run out:
the reply reaches the handling system exactly once in effect. The receiver may have seen it twice, but
both times with the same idempotency key and the same bytes, so a system that dedupes by the key
(x-caf-idempotency-key) acts on it once; the outbox ends ``done`` with the lost lease in its attempt log,
and the delivery invariants hold (tests/integration/invariants.py).
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from gateway.certs import ExamplePki
from gateway.soap.client import ClientTls, SoapClient, as_dict
from outbox.schema import outbox_attempt, outbox_message
from tests.integration.both_directions_data import (
    ASK,
    CASE_SERVICE,
    REPLY,
    UNIT,
    catalogue,
    register_payload,
    unsettled,
    update_kwargs,
)
from tests.integration.conftest import REGISTER_EXAMPLE
from tests.integration.faults import WorkerProcess
from tests.integration.harness import GatewayProcess
from tests.integration.invariants import check_invariants
from tests.integration.receivers import ReceiverProcess

pytestmark = pytest.mark.slow
LEASE_MS = 2000
SLOW_MS = 4000  # below the endpoint's read timeout (5 s): the call is still open when the worker dies


def _wait(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def system(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[dict[str, Any]]:
    receivers = {
        name: ReceiverProcess(pki, tmp_path, name).start() for name in ("deviation-a", "deviation-b", "1177")
    }
    gateway = GatewayProcess(
        pki,
        db_url,
        tmp_path,
        catalogue=catalogue(tmp_path, receivers),
        extra={
            "outbox": {
                "run_in_serve": False,
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                "lease_ms": LEASE_MS,
                "poll_ms": 50,
                "retry_base_ms": 200,
                "retry_cap_ms": 2000,
            }
        },
    )
    workers: list[WorkerProcess] = []
    try:
        gateway.start()
        yield {"gateway": gateway, "receivers": receivers, "workers": workers, "workdir": tmp_path}
    finally:
        for worker in workers:
            worker.kill()
        gateway.stop()
        for receiver in receivers.values():
            receiver.stop()


def _client(pki: ExamplePki, gateway: GatewayProcess, who: str) -> SoapClient:
    ident = pki.clients[who]
    return SoapClient(gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=15)


def _update(client: SoapClient, to: str, kwargs: dict[str, Any]) -> None:
    result = as_dict(client.invoke("UpdateCase", to, kwargs))["result"]
    assert result["resultCode"] == "OK", result


def _message(db_url: str, key: str) -> tuple[str, list[str]]:
    """(status, attempt outcomes) of the outbox message with idempotency key ``key``."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(outbox_message.c.id, outbox_message.c.status).where(
                    outbox_message.c.idempotency_key == key
                )
            ).one()
            outcomes = (
                conn.execute(
                    select(outbox_attempt.c.outcome)
                    .where(outbox_attempt.c.message_id == row.id)
                    .order_by(outbox_attempt.c.id)
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    return str(row.status), [str(o) for o in outcomes]


def test_kill_9_mid_delivery_of_an_acknowledged_citizen_reply(
    system: dict[str, Any], db_url: str, pki: ExamplePki
) -> None:
    gateway: GatewayProcess = system["gateway"]
    region: ReceiverProcess = system["receivers"]["deviation-a"]
    workers: list[WorkerProcess] = system["workers"]
    config = gateway.workdir / "gateway.toml"

    def worker() -> WorkerProcess:
        started = WorkerProcess(config, system["workdir"] / f"worker{len(workers)}.log").start()
        workers.append(started)
        return started

    case = f"KILL-{uuid.uuid4().hex[:8]}"
    citizen, handler = _client(pki, gateway, "1177"), _client(pki, gateway, "deviation-a")
    result = as_dict(citizen.call("RegisterCase", UNIT, register_payload(REGISTER_EXAMPLE, case, UNIT)))[
        "result"
    ]
    assert result["resultCode"] == "OK", result
    question = str(uuid.uuid4())
    _update(handler, CASE_SERVICE, update_kwargs(case, 1, "QUESTION", message_id=question, text=ASK))
    first = worker()
    _wait("the case and the question delivered", lambda: unsettled(db_url) == 0, 30)

    region.set_mode(mode="ok", by_case={case: f"slow:{SLOW_MS}"})
    reply = str(uuid.uuid4())
    _update(
        citizen,
        UNIT,
        update_kwargs(case, 1, "CITIZEN_REPLY", message_id=reply, text=REPLY, in_reply_to=question),
    )  # acknowledged: from here on it must arrive
    key = f"UpdateCase:{reply}"

    def reply_arrived() -> bool:
        return any(a["idempotency_key"] == key for a in region.arrivals())

    _wait("the reply's delivery under way", reply_arrived, 20)
    assert _message(db_url, key)[0] == "inflight"
    first.signal(signal.SIGKILL)
    assert first.process is not None
    first.process.wait(timeout=10)
    region.set_mode(mode="ok")
    worker()
    _wait("the reply delivered again", lambda: _message(db_url, key)[0] == "done", 60)

    status, outcomes = _message(db_url, key)
    assert status == "done"
    assert "lease-lost" in outcomes, outcomes
    assert outcomes[-1] == "success", outcomes
    arrivals = [a for a in region.arrivals() if a["idempotency_key"] == key]
    assert len(arrivals) >= 2, "the killed call reached the receiver, and the redelivery too"
    assert {bytes(a["body"]) for a in arrivals} == {bytes(arrivals[0]["body"])}  # the same message each time
    assert {a["operation"] for a in arrivals} == {"UpdateCase"}
    distinct = {a["idempotency_key"] for a in region.arrivals() if a["case_id"] == case}
    assert len(distinct) == 2  # deduped by the key: the case once, the reply once
    _wait("everything delivered", lambda: unsettled(db_url) == 0, 30)
    result_of = check_invariants(db_url, list(system["receivers"].values()))
    assert result_of["duplicates"] == 1
