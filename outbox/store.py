"""The outbox's SQL: enqueue, claim (SQLite and PostgreSQL), heartbeat, fenced completion and circuit
breakers; ``OutboxStore`` also takes the lease reaper (``outbox.reaper``) and the operator's actions
(``outbox.operators``).

State machine of a message::

    pending ──claim──▶ inflight ──success──▶ done
       ▲                  │ transient (retry later) ─▶ pending
       │                  │ permanent / gave up / poison (evidence) ─▶ dead ──operator──▶ pending | skipped
       └──lease expired───┘ (quarantined: a suspect, retried alone with a growing pause)

Messages of one stream (case) leave in ``seq`` order: only the first unfinished message of a stream can be
claimed, a dead message blocks (and dead-letters) the ones behind it until an operator retries or skips it,
and a unique partial index keeps at most one message of a stream in flight. Every completion is fenced by
the lease token, so a worker that lost its lease (paused, partitioned) cannot overwrite the outcome.

A message whose lease expired (its worker died or stalled with it) is quarantined, not buried: it is retried
alone, at once after its first death and after a growing pause after each further one
(``outbox.policy.QuarantinePolicy``), and the messages behind it wait. It becomes a dead letter only on
evidence, when it was in flight alone at several deaths in a row within a window; a completed attempt of
any outcome ends the quarantine. Each death is logged at WARNING (message id, case id, destination).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from contracts.statements import Prepared, PreparedRows
from outbox.operators import Operators, outbox_audit
from outbox.policy import BreakerPolicy, Delivery, Kind, QuarantinePolicy, RetryPolicy
from outbox.reaper import Reaper, _Death, _report
from outbox.schema import outbox_attempt, outbox_destination, outbox_message

__all__ = [
    "FIRST_MESSAGES",
    "Claimed",
    "NewMessage",
    "OutboxStore",
    "enqueue",
    "first_message",
    "now_ms",
    "outbox_audit",
]

m = outbox_message
_earlier = outbox_message.alias("earlier")
_pick = outbox_message.alias("pick")
#: what a claim reads back of each message it leased
_CLAIMED = [
    m.c[name]
    for name in (
        "id",
        "stream",
        "seq",
        "operation",
        "destination",
        "logical_address",
        "payload",
        "correlation_id",
        "original_consumer",
        "idempotency_key",
        "attempts",
        "created_ms",
        "lease_expiries",
        "next_attempt_ms",
    )
]
log = logging.getLogger("outbox.store")
_UNFINISHED = ("pending", "inflight", "dead")
#: the reaper looks for expired leases at most this often per store (leases last seconds)
REAP_INTERVAL_MS = 1_000


#: a completed attempt, whatever its outcome, ends a quarantine
_NOT_SUSPECT = {"lease_expiries": 0, "alone_deaths": 0, "quarantined_ms": None}
_FENCE = and_(m.c.id == bindparam("b_id"), m.c.status == "inflight", m.c.lease_token == bindparam("b_token"))
_RETRY = (
    update(m)
    .where(_FENCE)
    .values(
        status="pending",
        next_attempt_ms=bindparam("b_next"),
        lease_owner=None,
        lease_token=None,
        lease_expires_ms=None,
        last_error=bindparam("b_error"),
        **_NOT_SUSPECT,
    )
)
# enqueue runs on the request path: compiled once, run on the driver cursor (see contracts.statements)
_MESSAGE_COLUMNS = [
    "stream",
    "seq",
    "idempotency_key",
    "operation",
    "destination",
    "logical_address",
    "payload",
    "correlation_id",
    "original_consumer",
    "status",
    "dead_reason",
    "next_attempt_ms",
    "created_ms",
]
_ENQUEUE = Prepared(insert(m).returning(m.c.id), column_keys=_MESSAGE_COLUMNS)
#: the first messages of new streams (new cases), inserted together: rows from ``first_message``
FIRST_MESSAGES = PreparedRows(m, _MESSAGE_COLUMNS)
_FAILED = update(m).where(_FENCE).values(last_error=bindparam("b_error"), **_NOT_SUSPECT)
_DONE = (
    update(m)
    .where(
        tuple_(m.c.id, m.c.lease_token).in_(bindparam("b_fences", expanding=True)),
        m.c.status == "inflight",
    )
    .values(
        status="done",
        done_ms=bindparam("b_now"),
        lease_owner=None,
        lease_token=None,
        lease_expires_ms=None,
        last_error=None,
        **_NOT_SUSPECT,
    )
    .returning(m.c.id)
)
_STREAM_STATE = select(func.max(m.c.seq), func.min(case((m.c.status == "dead", m.c.id)))).where(
    m.c.stream == bindparam("b_stream")
)
_LIMITED = select(outbox_destination).where(
    (outbox_destination.c.state != "closed") | outbox_destination.c.ramp.is_not(None)
)
_DESTINATION = select(outbox_destination).where(
    outbox_destination.c.destination == bindparam("b_destination")
)


_ATTEMPT_COLUMNS = (
    "message_id",
    "attempt",
    "worker",
    "started_ms",
    "finished_ms",
    "outcome",
    "http_status",
    "detail",
)
_ATTEMPT_ROWS_PER_INSERT = 500
_ATTEMPT_ARRAYS = ("bigint", "integer", "varchar", "bigint", "bigint", "varchar", "integer", "varchar")
# only names of this module's schema go into these texts; every value is a bound parameter
_ATTEMPT_INSERT = f"INSERT INTO {outbox_attempt.name} ({', '.join(_ATTEMPT_COLUMNS)}) "
_ATTEMPT_ARRAYS_SQL = ", ".join(f"%s::{t}[]" for t in _ATTEMPT_ARRAYS)
_ATTEMPT_UNNEST = f"{_ATTEMPT_INSERT}SELECT * FROM unnest({_ATTEMPT_ARRAYS_SQL})"  # noqa: S608


def _insert_attempts(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Append rows (in ``_ATTEMPT_COLUMNS`` order) to the attempt log in one statement.

    An executemany costs a driver round (and a release of the GIL) per row. PostgreSQL gets one array per
    column (a statement text that never changes); SQLite one multi-row INSERT per 500 rows.
    """
    if conn.dialect.paramstyle != "qmark":
        conn.exec_driver_sql(_ATTEMPT_UNNEST, tuple(list(column) for column in zip(*rows, strict=True)))
        return
    row = "(" + ", ".join(["?"] * len(_ATTEMPT_COLUMNS)) + ")"
    for start in range(0, len(rows), _ATTEMPT_ROWS_PER_INSERT):
        chunk = rows[start : start + _ATTEMPT_ROWS_PER_INSERT]
        values = ", ".join([row] * len(chunk))
        conn.exec_driver_sql(_ATTEMPT_INSERT + "VALUES " + values, tuple(v for r in chunk for v in r))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class NewMessage:
    stream: str
    operation: str
    destination: str
    logical_address: str
    payload: bytes
    correlation_id: str
    idempotency_key: str
    original_consumer: str | None = None


@dataclass(frozen=True)
class Claimed:
    id: int
    stream: str
    seq: int
    operation: str
    destination: str
    logical_address: str
    payload: bytes
    correlation_id: str
    original_consumer: str | None
    idempotency_key: str
    attempts: int
    created_ms: int
    lease_token: str
    lease_expiries: int = 0


def _values(message: NewMessage, at_ms: int, seq: int, blocker: int | None = None) -> dict[str, Any]:
    return {
        "stream": message.stream,
        "seq": seq,
        "idempotency_key": message.idempotency_key,
        "operation": message.operation,
        "destination": message.destination,
        "logical_address": message.logical_address,
        "payload": message.payload,
        "correlation_id": message.correlation_id,
        "original_consumer": message.original_consumer,
        "status": "dead" if blocker is not None else "pending",
        "dead_reason": None if blocker is None else f"blocked: message {blocker} of this case is dead",
        "next_attempt_ms": at_ms,
        "created_ms": at_ms,
    }


def enqueue(conn: Connection, message: NewMessage, at_ms: int) -> int:
    """Add a message in the caller's transaction (the one that stores what it answers for).

    The first message of a new case is stored by ``Inbox.register`` with ``FIRST_MESSAGES`` instead.
    """
    last, blocker = conn.execute(_STREAM_STATE, {"b_stream": message.stream}).one()
    return int(_ENQUEUE.scalar(conn, _values(message, at_ms, (last or 0) + 1, blocker)))


def first_message(message: NewMessage, at_ms: int) -> dict[str, Any]:
    """The values of the first message of a new stream, for ``FIRST_MESSAGES`` (bind them first)."""
    return _values(message, at_ms, 1)


@dataclass
class OutboxStore(Reaper, Operators):
    engine: Engine
    lease_ms: int = 10_000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    quarantine: QuarantinePolicy = field(default_factory=QuarantinePolicy)
    clock: Callable[[], int] = now_ms
    #: a lock shared with the other processes writing the same SQLite file (taken inside ``_serial``)
    writers: AbstractContextManager[Any] | None = None
    #: the streams whose delivered messages ``purge`` keeps (a query of stream names): the gateway's are
    #: the cases that are not closed, whose timeline in the case desk is made of these messages
    kept_streams: Callable[[], Any] | None = None
    _serial: threading.Lock | None = field(default=None, init=False, repr=False, compare=False)
    _reaped_ms: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.postgres:
            # SQLite has one writer at a time, and a transaction that finds the file locked sleeps in
            # SQLite's busy handler (steps of up to 100 ms) instead of waking when the lock is free. The
            # threads of this process (claimer, acknowledger, heartbeat) take turns on a lock of their own,
            # and with ``writers`` (gateway.db.WriterLock) queue with the other processes as well.
            self._serial = threading.Lock()

    @property
    def _reap_interval(self) -> int:
        return max(1, min(REAP_INTERVAL_MS, self.lease_ms // 4))

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction (one at a time per process on SQLite)."""
        if self._serial is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._serial, self.writers or nullcontext(), self.engine.begin() as conn:
                yield conn

    # -- claiming -------------------------------------------------------------------------------------------
    def claim_query(
        self, now: int | BindParameter[int], limit: int | BindParameter[int], blocked: Iterable[str] = ()
    ) -> Any:
        """Due messages that are first in their stream, in the order of the partial index."""
        query = self._due(m, now, limit).add_columns(m.c.destination, m.c.lease_expiries)
        blocked = list(blocked)
        if blocked:
            query = query.where(m.c.destination.not_in(blocked))
        if self.postgres:
            query = query.with_for_update(skip_locked=True, of=m)
        return query

    @staticmethod
    def _due(t: Any, now: Any, limit: Any) -> Any:
        head = ~exists(
            select(_earlier.c.id).where(
                _earlier.c.stream == t.c.stream,
                _earlier.c.seq < t.c.seq,
                or_(*(_earlier.c.status == status for status in _UNFINISHED)),  # no expanding IN to render
            )
        )
        return (
            select(t.c.id)
            .where(t.c.status == "pending", t.c.next_attempt_ms <= now, head)
            .order_by(t.c.next_attempt_ms, t.c.id)
            .limit(limit)
        )

    @functools.cached_property
    def claim_statement(self) -> Any:
        """One statement that leases up to ``b_limit`` due messages that are not suspects (see ``claim``).

        Built once: building it costs more than running it. Parameters: b_now, b_limit, b_owner, b_token,
        b_expires.
        """
        due = self._due(_pick, bindparam("b_now"), bindparam("b_limit")).where(_pick.c.lease_expiries == 0)
        if self.postgres:
            due = due.with_for_update(skip_locked=True, of=_pick)
        return (
            update(m)
            .where(m.c.id.in_(due), m.c.status == "pending")
            .values(
                status="inflight",
                attempts=m.c.attempts + 1,
                lease_owner=bindparam("b_owner"),
                lease_token=bindparam("b_token"),
                lease_expires_ms=bindparam("b_expires"),
            )
            .returning(*_CLAIMED)
        )

    @functools.cached_property
    def _lease_statement(self) -> Any:
        """Lease what ``_choose`` picked (built once). Parameters: b_ids, b_owner, b_token, b_expires."""
        return (
            update(m)
            .where(m.c.id.in_(bindparam("b_ids", expanding=True)), m.c.status == "pending")
            .values(
                status="inflight",
                attempts=m.c.attempts + 1,
                lease_owner=bindparam("b_owner"),
                lease_token=bindparam("b_token"),
                lease_expires_ms=bindparam("b_expires"),
            )
            .returning(*_CLAIMED)
        )

    @functools.cached_property
    def _choose_statement(self) -> Any:
        """``claim_query`` with no destination left out, built once. Parameters: b_now, b_limit."""
        return self.claim_query(bindparam("b_now"), bindparam("b_limit"))

    @functools.cached_property
    def _suspect_statement(self) -> Any:
        """Due suspects that are first in their stream, through their own small partial index (built once).

        Parameters: b_now, b_limit."""
        query = (
            self._due(m, bindparam("b_now"), bindparam("b_limit"))
            .where(m.c.lease_expiries > 0)
            .add_columns(m.c.destination)
        )
        if self.postgres:
            query = query.with_for_update(skip_locked=True, of=m)
        return query

    def claim(self, owner: str, limit: int, *, suspects: bool = True) -> list[Claimed]:
        """Lease up to ``limit`` messages to ``owner``; attempts are counted here, before the call.

        A message whose lease expired before may be what killed its worker. Such a suspect is claimed only
        alone, and only when ``suspects`` says the caller has nothing else in flight (a worker then claims
        nothing more until it is done with it), so a poison message cannot take innocent messages of the
        same batch down with it. When the caller may take one, a due suspect goes first: it has waited
        longest.
        """
        if limit <= 0:
            return []
        now = self.clock()
        # One token per claim: the lease of each message is fenced by (id, token), and a reclaim always
        # draws a new token, so sharing it within a batch weakens nothing.
        token = str(uuid.uuid4())
        deaths: list[_Death] = []
        lease = {"b_owner": owner, "b_token": token, "b_expires": now + self.lease_ms}
        try:
            with self._transaction() as conn:
                if self._reaped_ms is None or not 0 <= now - self._reaped_ms < self._reap_interval:
                    deaths = self._reap(conn, now)
                    self._reaped_ms = now
                allowance = self._allowances(conn, now)
                suspect = self._due_suspect(conn, now, allowance) if suspects else None
                if suspect is not None:
                    claimed = conn.execute(self._lease_statement, {"b_ids": [suspect], **lease}).all()
                elif not allowance:
                    # the common case under load: no breaker limits anything and no suspect goes first, so
                    # the database picks and leases in one statement
                    claimed = conn.execute(
                        self.claim_statement, {"b_now": now, "b_limit": limit, **lease}
                    ).all()
                else:
                    chosen = self._choose(conn, now, limit, allowance)
                    claimed = (
                        conn.execute(self._lease_statement, {"b_ids": chosen, **lease}).all()
                        if chosen
                        else []
                    )
        except IntegrityError:
            return []  # another worker took a message of the same stream first; the next poll retries
        _report(deaths)  # only what was committed
        return [
            Claimed(
                id=int(r.id),
                stream=r.stream,
                seq=int(r.seq),
                operation=r.operation,
                destination=r.destination,
                logical_address=r.logical_address,
                payload=bytes(r.payload),
                correlation_id=r.correlation_id,
                original_consumer=r.original_consumer,
                idempotency_key=r.idempotency_key,
                attempts=int(r.attempts),
                created_ms=int(r.created_ms),
                lease_token=token,
                lease_expiries=int(r.lease_expiries),
            )
            for r in sorted(claimed, key=lambda r: (r.next_attempt_ms, r.id))
        ]

    def _due_suspect(self, conn: Connection, now: int, allowance: dict[str, int | None]) -> int | None:
        for row in conn.execute(self._suspect_statement, {"b_now": now, "b_limit": 10}):
            left = allowance.get(row.destination)
            if left is None or left > 0:
                return int(row.id)
        return None

    def suspect_waiting(self) -> bool:
        """Whether a suspect is due and first in its stream: a worker holding messages then lets them finish
        and claims nothing more, so that it (or another worker) can take the suspect alone soon."""
        now = self.clock()
        with self._transaction() as conn:
            return self._due_suspect(conn, now, self._allowances(conn, now)) is not None

    def _choose(self, conn: Connection, now: int, limit: int, allowance: dict[str, int | None]) -> list[int]:
        """The messages to lease when a breaker limits a destination: no suspect, no more than allowed."""
        blocked = [d for d, a in allowance.items() if a is not None and a <= 0]
        if blocked:  # a breaker is open: rare, so this statement is built each time
            rows = conn.execute(self.claim_query(now, limit * 2, blocked)).all()
        else:
            rows = conn.execute(self._choose_statement, {"b_now": now, "b_limit": limit * 2}).all()
        chosen: list[int] = []
        for row in rows:
            if row.lease_expiries:
                continue  # suspects are claimed alone (_due_suspect)
            left = allowance.get(row.destination)
            if left is not None:
                if left <= 0:
                    continue
                allowance[row.destination] = left - 1
            chosen.append(int(row.id))
            if len(chosen) == limit:
                break
        return chosen

    # -- breakers -------------------------------------------------------------------------------------------
    def _allowances(self, conn: Connection, now: int) -> dict[str, int | None]:
        """Messages each limited destination may still take now (None: unlimited)."""
        limited = conn.execute(_LIMITED).all()
        if not limited:
            return {}
        rows = [r for r in limited if r.state != "closed"]
        ramps = [(r.destination, r.ramp) for r in limited if r.state == "closed"]
        inflight: dict[str, int] = dict(
            conn.execute(
                select(m.c.destination, func.count())
                .where(m.c.status == "inflight")
                .group_by(m.c.destination)
            ).all()
        )
        allowance: dict[str, int | None] = {}
        for row in rows:
            if row.state == "open" and (row.open_until_ms or 0) > now:
                allowance[row.destination] = 0
                continue
            if row.state == "open":  # the pause is over: let one probe through
                conn.execute(
                    update(outbox_destination)
                    .where(outbox_destination.c.destination == row.destination)
                    .values(state="half-open")
                )
            allowance[row.destination] = 1 - int(inflight.get(row.destination, 0))
        for destination, ramp in ramps:
            allowance[destination] = int(ramp) - int(inflight.get(destination, 0))
        return allowance

    def _breaker_result(self, conn: Connection, destination: str, success: bool, now: int) -> None:
        row = conn.execute(_DESTINATION, {"b_destination": destination}).first()
        if row is None:
            if success:
                return
            conn.execute(
                insert(outbox_destination).values(
                    destination=destination, state="closed", consecutive_failures=0, opens=0
                )
            )
            row = conn.execute(
                select(outbox_destination).where(outbox_destination.c.destination == destination)
            ).one()
        values: dict[str, Any]
        if success:
            if row.state != "closed":
                values = {
                    "state": "closed",
                    "consecutive_failures": 0,
                    "opens": 0,
                    "open_until_ms": None,
                    "ramp": 1,
                }
            elif row.ramp is not None:
                ramp = int(row.ramp) * 2
                values = {
                    "consecutive_failures": 0,
                    "ramp": None if ramp >= self.breaker.ramp_limit else ramp,
                }
            elif row.consecutive_failures:
                values = {"consecutive_failures": 0}
            else:
                return
        else:
            failures = int(row.consecutive_failures) + 1
            values = {"consecutive_failures": failures}
            if row.state == "half-open" or (row.state == "closed" and failures >= self.breaker.threshold):
                opens = int(row.opens) + 1
                values.update(
                    state="open", opens=opens, open_until_ms=now + self.breaker.pause_ms(opens), ramp=None
                )
        conn.execute(
            update(outbox_destination).where(outbox_destination.c.destination == destination).values(**values)
        )

    # -- during and after a call ----------------------------------------------------------------------------
    def heartbeat(self, leases: Iterable[tuple[int, str]]) -> set[int]:
        """Extend the leases still held; returns the ids whose lease was lost."""
        leases = list(leases)
        if not leases:
            return set()
        now = self.clock()
        with self._transaction() as conn:
            kept = {
                int(mid)
                for (mid,) in conn.execute(
                    update(m)
                    .where(tuple_(m.c.id, m.c.lease_token).in_(leases), m.c.status == "inflight")
                    .values(lease_expires_ms=now + self.lease_ms)
                    .returning(m.c.id)
                )
            }
        return {mid for mid, _token in leases} - kept

    def complete(self, message: Claimed, outcome: Delivery, worker: str, started_ms: int) -> bool:
        """Record the outcome of a call; False (and nothing changed) when the lease is no longer ours."""
        return message.id in self.complete_many([(message, outcome, started_ms)], worker)

    def complete_many(self, results: Iterable[tuple[Claimed, Delivery, int]], worker: str) -> set[int]:
        """Record several outcomes in one transaction (one commit for a batch of acknowledgements).

        Each update is fenced by the message's lease token; the ids whose outcome was recorded are returned.
        """
        now = self.clock()
        accepted: set[int] = set()
        attempts: list[tuple[Any, ...]] = []
        breaker: dict[str, list[bool]] = {}
        results = list(results)
        with self._transaction() as conn:
            successes = [
                (msg.id, msg.lease_token) for msg, outcome, _ in results if outcome.kind is Kind.SUCCESS
            ]
            done: set[int] = set()
            if successes:
                # one fenced statement for every success of the batch
                done = {int(mid) for (mid,) in conn.execute(_DONE, {"b_fences": successes, "b_now": now})}
            for message, outcome, started_ms in results:
                fence = {"b_id": message.id, "b_token": message.lease_token}
                reason: str | None = None
                if outcome.kind is Kind.SUCCESS:
                    if message.id not in done:
                        continue
                elif outcome.kind is Kind.TRANSIENT and not (
                    reason := self.retry.give_up(message.attempts, message.created_ms, now)
                ):
                    delay = self.retry.delay_ms(message.attempts, outcome.retry_after_ms)
                    result = conn.execute(
                        _RETRY, {**fence, "b_next": now + delay, "b_error": outcome.detail[:500]}
                    )
                else:
                    why = (
                        outcome.detail
                        if outcome.kind is Kind.PERMANENT
                        else f"{reason}; last: {outcome.detail}"
                    )
                    result = conn.execute(_FAILED, {**fence, "b_error": outcome.detail[:500]})
                    if result.rowcount == 1:
                        self._bury(conn, message.id, message.stream, message.seq, why, now)
                if outcome.kind is not Kind.SUCCESS and result.rowcount != 1:
                    continue
                accepted.add(message.id)
                attempts.append(
                    (
                        message.id,
                        message.attempts,
                        worker[:100],
                        started_ms,
                        now,
                        outcome.kind.value,
                        outcome.http_status,
                        (outcome.detail or "")[:500] or None,
                    )
                )
                if outcome.kind is not Kind.PERMANENT:
                    breaker.setdefault(message.destination, []).append(outcome.kind is Kind.SUCCESS)
            if attempts:
                _insert_attempts(conn, attempts)
            for destination, outcomes in breaker.items():
                # failures one by one (they may open the breaker); a run of successes counts once
                for success in outcomes:
                    if not success:
                        self._breaker_result(conn, destination, False, now)
                if outcomes[-1]:
                    self._breaker_result(conn, destination, True, now)
        return accepted

    def release(self, message: Claimed) -> bool:
        """Give a claimed message back without an attempt (worker shutting down before the call)."""
        with self._transaction() as conn:
            result = conn.execute(
                update(m)
                .where(m.c.id == message.id, m.c.status == "inflight", m.c.lease_token == message.lease_token)
                .values(
                    status="pending",
                    lease_owner=None,
                    lease_token=None,
                    lease_expires_ms=None,
                    attempts=m.c.attempts - 1,
                )
            )
        return result.rowcount == 1
