"""The outbox state machine on SQLite and PostgreSQL, with an injected clock: ordering, leases, fencing,
dead letters, operator actions, breakers, and a ten-minute outage simulated in milliseconds."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select, text

from outbox import BreakerPolicy, Delivery, Kind, NewMessage, OutboxStore, RetryPolicy, enqueue
from outbox.schema import outbox_message


@dataclass
class Clock:
    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_store(engine: Engine, clock: Clock, **kw: object) -> OutboxStore:
    retry = RetryPolicy(base_ms=1000, cap_ms=300_000, max_attempts=25, rng=random.Random(7))
    return OutboxStore(engine, lease_ms=10_000, retry=retry, clock=clock, **kw)  # type: ignore[arg-type]


def put(engine: Engine, clock: Clock, stream: str, n: int = 1, destination: str = "dest") -> list[int]:
    ids = []
    with engine.begin() as conn:
        for _ in range(n):
            key = f"{stream}:{len(ids)}:{clock.now}:{random.random()}"
            ids.append(
                enqueue(
                    conn,
                    NewMessage(stream, "RegisterCase", destination, "SE1", b"<x/>", "corr", key, "SE0"),
                    clock.now,
                )
            )
    return ids


def statuses(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(outbox_message.c.id, outbox_message.c.status)).all())


OK = Delivery(Kind.SUCCESS, "OK")
DOWN = Delivery(Kind.TRANSIENT, "connection refused")
REFUSED = Delivery(Kind.PERMANENT, "SOAP fault Client")


def test_one_message_per_case_in_flight_and_in_order(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    a = put(engine, clock, "case-a", 3)
    b = put(engine, clock, "case-b", 2)
    first = store.claim("w1", 10)
    assert [c.id for c in first] == [a[0], b[0]]  # only the head of each case
    assert store.claim("w2", 10) == []
    assert store.complete(first[0], OK, "w1", clock.now)
    second = store.claim("w2", 10)
    assert [c.id for c in second] == [a[1]]
    assert second[0].attempts == 1  # counted at claim


def test_late_ack_after_lease_expiry_is_refused(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    put(engine, clock, "case-a")
    stale = store.claim("w1", 1)[0]
    clock.advance(10_001)  # w1 paused past its lease
    fresh = store.claim("w2", 1)[0]
    assert fresh.id == stale.id
    assert fresh.attempts == 2
    assert not store.complete(stale, OK, "w1", clock.now)  # fenced
    assert store.complete(fresh, OK, "w2", clock.now)
    assert statuses(engine)[fresh.id] == "done"


def test_heartbeat_keeps_the_lease(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    put(engine, clock, "case-a")
    held = store.claim("w1", 1)[0]
    for _ in range(5):
        clock.advance(5_000)
        assert store.heartbeat([(held.id, held.lease_token)]) == set()
    assert store.claim("w2", 1) == []
    assert store.complete(held, OK, "w1", clock.now)


def test_permanent_failure_then_operator_retry_and_skip(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    first, second = put(engine, clock, "case-a", 2)
    store.complete(store.claim("w", 1)[0], REFUSED, "w", clock.now)
    assert statuses(engine) == {first: "dead", second: "dead"}
    (late,) = put(engine, clock, "case-a")  # arrives while the case is blocked
    assert statuses(engine)[late] == "dead"
    assert store.requeue("anna", message_id=first) == {first: "dead", second: "dead", late: "dead"}
    again = store.claim("w", 10)
    assert [c.id for c in again] == [first]
    store.complete(again[0], REFUSED, "w", clock.now)
    assert statuses(engine) == {first: "dead", second: "dead", late: "dead"}
    store.skip("anna", first, "receiver rejects it; handled by phone")
    assert [c.id for c in store.claim("w", 10)] == [second]
    assert statuses(engine)[first] == "skipped"


def test_transient_failures_back_off_and_honour_retry_after(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    (mid,) = put(engine, clock, "case-a")
    store.complete(store.claim("w", 1)[0], DOWN, "w", clock.now)
    assert store.claim("w", 1) == []  # not due yet
    clock.advance(1_000)  # base delay 1 s (jitter only shortens it)
    claimed = store.claim("w", 1)
    assert [c.id for c in claimed] == [mid]
    store.complete(
        claimed[0], Delivery(Kind.TRANSIENT, "HTTP 503", 503, retry_after_ms=30_000), "w", clock.now
    )
    clock.advance(29_000)
    assert store.claim("w", 1) == []
    clock.advance(1_000)
    assert [c.id for c in store.claim("w", 1)] == [mid]


def test_gives_up_after_max_attempts(engine: Engine, clock: Clock) -> None:
    store = OutboxStore(
        engine,
        retry=RetryPolicy(base_ms=1, cap_ms=1, max_attempts=3),
        clock=clock,
        breaker=BreakerPolicy(threshold=100),
    )
    (mid,) = put(engine, clock, "case-a")
    for _ in range(3):
        clock.advance(10)
        store.complete(store.claim("w", 1)[0], DOWN, "w", clock.now)
    assert statuses(engine)[mid] == "dead"


def test_breaker_pauses_a_destination_then_probes_and_ramps(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock, breaker=BreakerPolicy(threshold=3, open_ms=5_000, max_open_ms=60_000))
    for i in range(20):
        put(engine, clock, f"down-{i}", destination="down")
    (healthy,) = put(engine, clock, "up", destination="up")
    batch = store.claim("w", 3)
    for c in batch:
        store.complete(c, DOWN, "w", clock.now)
    clock.advance(1_000)
    # open: nothing for "down", the healthy destination is not held up
    assert [c.destination for c in store.claim("w", 10)] == ["up"]
    clock.advance(5_000)
    probe = store.claim("w", 10)
    assert [c.destination for c in probe] == ["down"]  # exactly one probe
    store.complete(probe[0], OK, "w", clock.now)
    ramp = [len(store.claim("w", 50)) for _ in range(1)]
    assert ramp == [1]  # closed again, but ramping up from one message in flight
    assert healthy


def test_outage_of_ten_minutes_uses_few_attempts_and_loses_nothing(engine: Engine, clock: Clock) -> None:
    """A receiver down for 10 simulated minutes: the breaker holds messages back, attempts are not burnt."""
    store = make_store(engine, clock)
    ids = [mid for i in range(30) for mid in put(engine, clock, f"case-{i}", 2)]
    outage_ends = clock.now + 10 * 60 * 1000
    while clock.now < outage_ends + 20 * 60 * 1000:
        for claimed in store.claim("w", 8):
            store.complete(claimed, DOWN if clock.now < outage_ends else OK, "w", clock.now)
        clock.advance(1_000)
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_message.c.status, outbox_message.c.attempts)).all()
    assert {status for status, _ in rows} == {"done"}
    assert len(rows) == len(ids)
    assert max(attempts for _, attempts in rows) <= 6


def test_claim_query_follows_the_partial_index(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    for i in range(300):
        put(engine, clock, f"case-{i}", 1)
    query = store.claim_query(clock.now, 10)
    with engine.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "sqlite":
            plan = " | ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_outbox_message_due" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of the backlog
        else:
            conn.execute(text("ANALYZE outbox_message"))
            plan = " | ".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
            assert "ix_outbox_message_due" in plan, plan
            assert "Sort" not in plan, plan


def test_one_statement_claim_keeps_order_and_one_message_per_case(engine: Engine, clock: Clock) -> None:
    """Without suspects and breaker limits the database picks and leases in one statement (the hot path)."""
    store = make_store(engine, clock)
    a1, a2, a3 = put(engine, clock, "case-a", 3)
    clock.advance(1)
    (b1,) = put(engine, clock, "case-b")
    first = store.claim("w", 10, suspects=False)
    assert [c.id for c in first] == [a1, b1]  # heads of their cases only, oldest first
    assert {c.lease_token for c in first} == {first[0].lease_token}
    assert [c.attempts for c in first] == [1, 1]
    assert store.claim("w", 10, suspects=False) == []  # each case already has a message in flight
    for c in first:
        assert store.complete(c, OK, "w", clock.now)
    assert [c.id for c in store.claim("w", 10, suspects=False)] == [a2]
    with engine.connect() as conn:
        row = conn.execute(
            select(outbox_message.c.status, outbox_message.c.lease_owner).where(outbox_message.c.id == a3)
        ).one()
    assert tuple(row) == ("pending", None)


def test_one_statement_claim_leaves_suspects_to_a_claim_of_their_own(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    (suspect,) = put(engine, clock, "case-s")
    store.claim("w1", 1)  # w1 dies holding it
    clock.advance(10_001)
    (other,) = put(engine, clock, "case-o")
    assert [c.id for c in store.claim("w2", 10, suspects=False)] == [other]
    again = store.claim("w2", 10, suspects=True)
    assert [(c.id, c.lease_expiries) for c in again] == [(suspect, 1)]


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ("claim_statement", "ix_outbox_message_due"),
        ("_choose_statement", "ix_outbox_message_due"),
        ("_suspect_statement", "ix_outbox_message_suspect"),
    ],
)
def test_statements_built_once_follow_the_partial_index(
    engine: Engine, clock: Clock, statement: str, index: str
) -> None:
    """The one-statement claim, the pick of a claim under a breaker, and the look for a suspect, with bound
    parameters: each follows its partial index, and the two that read the backlog sort nothing (PostgreSQL
    may sort the few suspects it finds in their small index)."""
    store = make_store(engine, clock)
    for i in range(300):
        put(engine, clock, f"case-{i}", 1)
    values = {"b_now": clock.now, "b_limit": 10, "b_owner": "w", "b_token": "t", "b_expires": clock.now + 1}
    with engine.connect() as conn:
        compiled = getattr(store, statement).compile(conn)
        bound = compiled.construct_params(values)
        if engine.dialect.name == "sqlite":
            positional = tuple(bound[name] for name in compiled.positiontup or ())
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional)
            plan = " | ".join(str(r[-1]) for r in rows)
            assert index in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        else:
            conn.execute(text("ANALYZE outbox_message"))
            plan = " | ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), bound))
            assert index in plan, plan
            assert "Sort" not in plan or index == "ix_outbox_message_suspect", plan
