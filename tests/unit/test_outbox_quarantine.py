"""Quarantine instead of crash-loop dead letters, on SQLite and PostgreSQL with an injected clock.

A death is a lease that expired in flight (the worker died or stalled with the message). Here a worker
"dies" by claiming and never completing; the clock then passes the lease and a reaper (another worker's
claim, or ``OutboxStore.reap`` as the operations listener runs it) finds the expired lease.
"""

from __future__ import annotations

import logging
import random

import pytest
from sqlalchemy import Engine, select

from outbox import Delivery, Kind, OutboxStore, QuarantinePolicy, RetryPolicy
from outbox.schema import outbox_attempt, outbox_message
from tests.unit.test_outbox_store import OK, Clock, put, statuses

LEASE = 10_000
MINUTE = 60_000
DOWN = Delivery(Kind.TRANSIENT, "connection refused")


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_store(engine: Engine, clock: Clock, **policy: int) -> OutboxStore:
    retry = RetryPolicy(base_ms=1000, cap_ms=300_000, max_attempts=25, rng=random.Random(7))
    return OutboxStore(
        engine, lease_ms=LEASE, retry=retry, quarantine=QuarantinePolicy(**policy), clock=clock
    )


def row(engine: Engine, mid: int) -> dict[str, object]:
    with engine.connect() as conn:
        found = conn.execute(select(outbox_message).where(outbox_message.c.id == mid)).one()
    return dict(found._mapping)


def die_with(store: OutboxStore, clock: Clock, owner: str, *, suspects: bool = True) -> list[int]:
    """``owner`` claims, then dies: its leases expire and the reaper returns them. The claimed ids."""
    claimed = [c.id for c in store.claim(owner, 10, suspects=suspects)]
    clock.advance(LEASE + 1)
    store.reap()
    return claimed


def wait_until_due(engine: Engine, clock: Clock, mid: int) -> None:
    clock.now = max(clock.now, int(row(engine, mid)["next_attempt_ms"]))  # type: ignore[call-overload]


def test_first_death_in_a_batch_is_retried_at_once_and_the_case_waits(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    suspect, behind = put(engine, clock, "case-p", 2)
    (other,) = put(engine, clock, "case-o")
    assert sorted(die_with(store, clock, "w1")) == [suspect, other]
    state = row(engine, suspect)
    assert state["status"] == "pending"
    assert (state["lease_expiries"], state["alone_deaths"]) == (1, 0)  # claimed with another: no evidence
    assert state["next_attempt_ms"] == clock.now  # a single crash costs about a lease time
    assert state["quarantined_ms"] == clock.now
    assert statuses(engine)[behind] == "pending"  # waits behind it, in order, and is not dead
    assert store.claim("w2", 10, suspects=False) == []  # both are suspects now: never in a batch
    claimed = store.claim("w3", 10, suspects=True)
    assert [c.id for c in claimed] == [suspect]  # the due suspect goes first, alone


def test_deaths_while_not_alone_never_dead_letter_and_backoff_grows(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    (suspect,) = put(engine, clock, "case-p")
    die_with(store, clock, "w0")  # first death
    delays = []
    for n in range(7):
        wait_until_due(engine, clock, suspect)
        owner = f"w{n + 1}"
        assert [c.id for c in store.claim(owner, 10, suspects=True)] == [suspect]
        # the same worker then took another message too (against the rule): its death is no evidence
        (fresh,) = put(engine, clock, f"case-{n}")
        assert [c.id for c in store.claim(owner, 10, suspects=False)] == [fresh]
        clock.advance(LEASE + 1)
        store.reap()
        state = row(engine, suspect)
        assert state["status"] == "pending", state
        assert state["alone_deaths"] == 0
        delays.append(int(state["next_attempt_ms"]) - clock.now)  # type: ignore[call-overload]
        # another worker delivers the fresh message (now a suspect itself, due at once) alone
        (taken,) = store.claim("helper", 10, suspects=True)
        assert taken.id == fresh
        assert store.complete(taken, OK, "helper", clock.now)
    assert [d // MINUTE for d in delays] == [1, 2, 4, 8, 15, 15, 15]
    assert row(engine, suspect)["lease_expiries"] == 8


def test_alone_deaths_in_a_row_within_the_window_dead_letter(
    engine: Engine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(engine, clock)  # defaults: 3 deaths alone within 10 minutes
    poison, behind = put(engine, clock, "case-p", 2)
    (other,) = put(engine, clock, "case-o")
    caplog.set_level(logging.WARNING, logger="outbox.store")
    claimed = store.claim("w0", 10)
    assert store.complete(next(c for c in claimed if c.id == other), OK, "w0", clock.now)
    clock.advance(LEASE + 1)
    store.reap()  # first death: in a batch
    for n in range(3):
        assert row(engine, poison)["status"] == "pending"
        wait_until_due(engine, clock, poison)
        assert die_with(store, clock, f"w{n + 1}") == [poison]
    state = statuses(engine)
    assert state[poison] == "dead"
    assert state[behind] == "dead"  # held back behind a dead letter, as after a permanent fault
    assert state[other] == "done"
    reason = str(row(engine, poison)["dead_reason"])
    assert reason.startswith("poison: its worker died with it in flight alone 3 times in a row within"), (
        reason
    )
    assert row(engine, behind)["dead_reason"] == f"blocked: message {poison} of this case is dead"
    deaths = [r for r in caplog.records if r.name == "outbox.store"]
    assert [r.levelname for r in deaths] == ["WARNING"] * 3 + ["ERROR"]
    fields = deaths[0].fields  # type: ignore[attr-defined]
    assert (fields["message"], fields["case"], fields["destination"]) == (poison, "case-p", "dest")
    with engine.connect() as conn:
        outcomes = conn.execute(
            select(outbox_attempt.c.outcome, outbox_attempt.c.detail)
            .where(outbox_attempt.c.message_id == poison)
            .order_by(outbox_attempt.c.id)
        ).all()
    assert [o for o, _ in outcomes] == ["lease-lost"] * 4
    assert "claimed with other messages" in outcomes[0][1]
    assert all("in flight alone" in d for _, d in outcomes[1:])


def test_alone_deaths_spread_over_more_than_the_window_do_not(engine: Engine, clock: Clock) -> None:
    """The window slides over the last deaths: three alone deaths spanning 13 minutes keep the message
    quarantined; a fourth soon after makes the last three span less than 10 minutes."""
    store = make_store(engine, clock, backoff_ms=1_000, max_backoff_ms=1_000)
    (poison,) = put(engine, clock, "case-p")
    die_with(store, clock, "w0")  # first death: not alone
    die_with(store, clock, "w1")  # alone 1
    clock.advance(6 * MINUTE)  # nobody took it for a while
    die_with(store, clock, "w2")  # alone 2
    clock.advance(7 * MINUTE)
    die_with(store, clock, "w3")  # alone 3, but the three span 13 minutes
    state = row(engine, poison)
    assert (state["status"], state["alone_deaths"]) == ("pending", 3)
    wait_until_due(engine, clock, poison)
    die_with(store, clock, "w4")  # alone 4: the last three span about 7 minutes
    assert statuses(engine)[poison] == "dead"


def test_a_completed_attempt_ends_the_quarantine(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    (poison,) = put(engine, clock, "case-p")
    die_with(store, clock, "w0")
    die_with(store, clock, "w1")
    wait_until_due(engine, clock, poison)
    die_with(store, clock, "w2")
    assert row(engine, poison)["alone_deaths"] == 2
    wait_until_due(engine, clock, poison)
    (again,) = store.claim("w3", 10)
    assert store.complete(again, DOWN, "w3", clock.now)  # a transient failure is a completed attempt
    state = row(engine, poison)
    assert (state["lease_expiries"], state["alone_deaths"], state["quarantined_ms"]) == (0, 0, None)
    # a new run of deaths starts from nothing: its first death (in a batch) is no evidence
    for n in range(3):
        wait_until_due(engine, clock, poison)
        die_with(store, clock, f"v{n}")
    state = row(engine, poison)
    assert (state["status"], state["lease_expiries"], state["alone_deaths"]) == ("pending", 3, 2)
    wait_until_due(engine, clock, poison)
    (last,) = store.claim("v9", 10)
    assert store.complete(last, OK, "v9", clock.now)
    assert statuses(engine)[poison] == "done"


def test_status_lists_quarantined_messages(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock)
    (poison,) = put(engine, clock, "case-p")
    put(engine, clock, "case-o")
    die_with(store, clock, "w0")
    wait_until_due(engine, clock, poison)
    die_with(store, clock, "w1")
    quarantine = store.status()["quarantine"]
    assert quarantine["count"] >= 1
    listed = {q["id"]: q for q in quarantine["messages"]}
    entry = listed[poison]
    assert (entry["case"], entry["destination"], entry["deaths"], entry["aloneDeaths"]) == (
        "case-p",
        "dest",
        2,
        1,
    )
    assert entry["nextAttemptInSeconds"] == 60.0
    assert entry["quarantinedForSeconds"] == round((LEASE + 1) / 1000, 1)


def test_reap_needs_no_claim_and_counts_each_death_once(engine: Engine, clock: Clock) -> None:
    """``reap`` (the operations listener's reaper) returns a dead owner's message with no worker claiming;
    a second reaper finds nothing more."""
    store = make_store(engine, clock)
    other = make_store(engine, clock)
    (mid,) = put(engine, clock, "case-a")
    store.claim("dead-worker", 1)
    clock.advance(LEASE - 1)
    assert store.reap() == 0  # not expired yet
    clock.advance(2)
    assert store.reap() == 1
    assert other.reap() == 0
    state = row(engine, mid)
    assert (state["status"], state["lease_owner"], state["lease_expiries"]) == ("pending", None, 1)


def test_policy_values() -> None:
    policy = QuarantinePolicy()
    assert [policy.delay_ms(n) for n in range(1, 7)] == [0, 60_000, 120_000, 240_000, 480_000, 900_000]
    assert policy.shortest_evidence_ms(LEASE) == 60_000 + 120_000 + 2 * LEASE


def test_an_operator_retry_of_a_poison_dead_letter_starts_afresh(engine: Engine, clock: Clock) -> None:
    store = make_store(engine, clock, deaths=2)
    (poison,) = put(engine, clock, "case-p")
    for n in range(3):
        wait_until_due(engine, clock, poison)
        die_with(store, clock, f"w{n}")
    assert row(engine, poison)["status"] == "dead"
    assert store.requeue("operator", message_id=poison) == {poison: "dead"}
    state = row(engine, poison)
    assert state["status"] == "pending"
    assert (state["lease_expiries"], state["alone_deaths"], state["quarantined_ms"]) == (0, 0, None)
