"""Supervision of `gateway serve`'s children, on SQLite and PostgreSQL, with real processes.

A real `gateway serve` runs its own delivery worker (outbox.run_in_serve) and delivers over mutual TLS to a
slow scripted receiver. kill -9 of the worker child mid-delivery: readiness turns 503 naming the worker,
then 200 when the supervisor has started it again, and every acknowledged case arrives without a restart
of the gateway. kill -9 of the operations child: readiness comes back. And a message left in flight by a
dead worker returns to the queue with no worker running at all (the operations listener reaps it).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from gateway.certs import ExamplePki
from outbox.schema import outbox_attempt, outbox_message
from tests.integration.faults import DeliverySystem
from tests.integration.harness import GatewayProcess
from tests.integration.invariants import check_invariants
from tests.integration.receivers import ReceiverProcess, catalogue_for

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def _wait(what: str, predicate: Any, timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s")


def _child_pid(gateway: GatewayProcess, role: str) -> int:
    """The pid of a child once the supervisor has seen it up."""

    def running() -> int | None:
        _status, body = _get(gateway.ops_url + "/status")
        child = body["children"][role]
        return int(child["pid"]) if child["state"] == "running" else None

    return int(_wait(f"{role} running", running, 10))


def _inflight(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(select(outbox_message.c.id).where(outbox_message.c.status == "inflight")).all()
            )
    finally:
        engine.dispose()


@pytest.fixture
def served(db_url: str, pki: ExamplePki, tmp_path: Path) -> Iterator[DeliverySystem]:
    """A gateway whose `serve` runs the delivery worker itself, and a receiver that answers slowly."""
    system = DeliverySystem(pki, db_url, tmp_path)
    system.region = ReceiverProcess(pki, tmp_path, "deviation-a").start()
    system.region.set_mode(mode="ok", delay_ms=400)
    system.gateway = GatewayProcess(
        pki,
        db_url,
        tmp_path,
        catalogue=catalogue_for(tmp_path, {"deviation-a": system.region}),
        extra={
            # generous pauses so a test sees the child down; a real one starts after 1 s
            "server": {"restart_delay_ms": 2000, "restart_max_delay_ms": 4000},
            "outbox": {
                "run_in_serve": True,
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                "lease_ms": 2000,
                "poll_ms": 50,
                "threads": 2,
                "retry_base_ms": 200,
                "retry_cap_ms": 2000,
            },
        },
    )
    try:
        system.gateway.start()
        yield system
    finally:
        system.stop()


def test_kill_9_of_the_worker_child_mid_delivery(served: DeliverySystem) -> None:
    system = served
    gateway = system.gateway
    assert gateway is not None
    assert gateway.process is not None
    assert system.region is not None
    cases = [f"SUP-{n}" for n in range(8)]
    for case in cases:
        system.submit(case)
    worker = _child_pid(gateway, "worker")
    _wait("a message in flight", lambda: _inflight(system.db_url) > 0, 20, 0.02)
    os.kill(worker, signal.SIGKILL)

    def down() -> Any:
        status, body = _get(gateway.ops_url + "/health/ready")
        check = body["checks"].get("deliveryWorker", "") if isinstance(body, dict) else ""
        return (status, check) if status == 503 and check.startswith("restarting in") else None

    _status, check = _wait("readiness 503 naming the worker", down, 10)
    assert check.endswith("(killed by SIGKILL, 0 restarts)"), check
    _wait("readiness 200 again", gateway.ready, 30, 0.1)
    assert _child_pid(gateway, "worker") != worker
    system.wait_settled(len(cases), timeout=60)
    result = check_invariants(system.db_url, [system.region])
    assert result["done"] == len(cases)  # every acknowledged case arrived
    assert gateway.process.poll() is None  # and the gateway itself never restarted
    log = gateway.log_text()
    exits = [json.loads(line) for line in log.splitlines() if '"child process exited; restarting it"' in line]
    assert any(
        e["role"] == "worker" and e["childPid"] == worker and e["exit"] == "killed by SIGKILL" for e in exits
    )
    _status, metrics = _get(gateway.ops_url + "/metrics")
    assert 'caf_child_up{role="worker"} 1' in metrics
    assert 'caf_child_restarts_total{role="worker"} 1' in metrics


def test_kill_9_of_the_ops_child(served: DeliverySystem) -> None:
    gateway = served.gateway
    assert gateway is not None
    assert gateway.process is not None
    ops = _child_pid(gateway, "ops")
    os.kill(ops, signal.SIGKILL)
    _wait("the operations listener gone", lambda: not gateway.ready(), 10)
    _wait("readiness back", gateway.ready, 30, 0.1)
    _status, body = _get(gateway.ops_url + "/status")
    assert body["children"]["ops"]["restarts"] == 1
    assert body["children"]["ops"]["lastExit"] == "killed by SIGKILL"
    assert body["children"]["ops"]["pid"] != ops
    assert gateway.process.poll() is None


def test_inflight_message_of_a_dead_worker_is_reaped_with_no_worker_running(
    db_url: str, pki: ExamplePki, tmp_path: Path
) -> None:
    system = DeliverySystem(pki, db_url, tmp_path, outbox={"lease_ms": 2000}).start()  # no worker in serve
    try:
        assert system.gateway is not None
        assert system.region is not None
        system.submit("R-1")
        doomed = system.worker(failpoints="kill-before-send=R-1")
        _wait("the worker killed itself holding R-1", lambda: not doomed.alive, 20)
        assert not any(w.alive for w in system.workers)
        assert system.counts() == {"inflight": 1}
        died = time.monotonic()
        _wait("R-1 back in the queue", lambda: system.counts() == {"pending": 1}, 15, 0.1)
        assert time.monotonic() - died < 2.0 + 5.0  # about a lease time
        engine = create_engine(system.db_url)
        try:
            with engine.connect() as conn:
                message = conn.execute(select(outbox_message)).one()
                outcomes = conn.execute(select(outbox_attempt.c.outcome)).scalars().all()
        finally:
            engine.dispose()
        assert (message.lease_owner, message.lease_expiries) == (None, 1)
        assert outcomes == ["lease-lost"]
        _status, body = _get(system.gateway.ops_url + "/status")
        assert body["outbox"]["quarantine"]["count"] == 1
        assert body["outbox"]["quarantine"]["messages"][0]["case"] == "R-1"
        _status, metrics = _get(system.gateway.ops_url + "/metrics")
        assert "caf_outbox_quarantined 1" in metrics
        system.worker()
        system.wait_settled(1)
        check_invariants(system.db_url, [system.region])
    finally:
        system.stop()
