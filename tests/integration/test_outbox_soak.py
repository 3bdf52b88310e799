"""A randomised soak with a fixed seed: thousands of messages over hundreds of cases, several workers
killed at random, a receiver failing a fifth of the calls; the invariants must hold at the end."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.certs import ExamplePki
from gateway.db import make_engine
from outbox import NewMessage, enqueue, now_ms
from outbox.schema import outbox_message
from tests.integration.conftest import REGISTER_EXAMPLE
from tests.integration.faults import DeliverySystem
from tests.integration.invariants import check_invariants

pytestmark = pytest.mark.slow
CASES, PER_CASE, WORKERS, LIMIT_S = 200, 10, 3, 150


def _payload(case_id: str) -> bytes:
    root = etree.parse(str(REGISTER_EXAMPLE)).getroot()
    el = root.find("{*}caseId")
    assert el is not None
    el.text = case_id
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=False))


def test_soak_random_kills_and_failures(db_url: str, pki: ExamplePki, tmp_path: Path) -> None:
    rng = random.Random(20261126)
    system = DeliverySystem(
        pki,
        db_url,
        tmp_path,
        outbox={
            "lease_ms": 1500,
            "retry_base_ms": 50,
            "retry_cap_ms": 1000,
            "breaker_threshold": 50,
            "poll_ms": 20,
            "threads": 8,
            # a message in flight at two random kills must not wait minutes in quarantine here
            "quarantine_backoff_ms": 1000,
            "quarantine_max_backoff_ms": 2000,
        },
    ).start()
    try:
        assert system.region is not None
        system.region.set_mode(mode="ok", fail_rate=0.2, fail_mode="500", seed=7)
        engine = make_engine(db_url, pool_size=1)
        with engine.begin() as conn:
            for n in range(PER_CASE):  # interleaved, as cases really progress side by side
                for c in range(CASES):
                    case = f"SOAK-{c:04d}"
                    enqueue(
                        conn,
                        NewMessage(
                            case,
                            "RegisterCase",
                            "deviation-a",
                            "SE2321000016-7Q6X",
                            _payload(case),
                            f"corr-{c}-{n}",
                            f"soak:{case}:{n}",
                            "SE5565594230-1177",
                        ),
                        now_ms(),
                    )
        engine.dispose()
        for _ in range(WORKERS):
            system.worker()
        total, kills = CASES * PER_CASE, 0
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline:
            counts = system.counts()
            if counts.get("done", 0) + counts.get("dead", 0) == total:
                break
            time.sleep(rng.uniform(1.0, 2.5))
            alive = [w for w in system.workers if w.alive]
            if alive:
                rng.choice(alive).kill()
                kills += 1
            system.worker()
        counts = system.wait_settled(total, timeout=30)
        result = check_invariants(db_url, [system.region])
        # A message in flight at random kills is quarantined, not buried: only a message in flight alone at
        # three kills in a row (poison evidence) may be a dead letter, with the ones it holds back.
        engine = make_engine(db_url, pool_size=1)
        with engine.connect() as conn:
            reasons = (
                conn.execute(select(outbox_message.c.dead_reason).where(outbox_message.c.status == "dead"))
                .scalars()
                .all()
            )
        engine.dispose()
        assert all(r.startswith(("poison:", "blocked:")) for r in reasons), reasons
        assert counts.get("done", 0) >= total * 0.98, counts
        assert kills >= 3
        assert result["arrivals"] >= total
    finally:
        system.stop()
