"""The operator's actions on the outbox: retry, skip, purge, and the status they read first.

Every change is audited (``outbox_audit``: who, what, which target) in the transaction that makes it; a
retry or skip that matches nothing raises ``LookupError`` and changes and audits nothing, so the CLI can
exit non-zero. ``OutboxStore`` takes these methods from ``Operators``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from contracts.db import metadata
from outbox.schema import outbox_attempt, outbox_destination, outbox_message

__all__ = ["QUARANTINE_LISTED", "Operators", "outbox_audit"]

m = outbox_message

outbox_audit = Table(
    "outbox_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", String(500), nullable=True),
)

#: the quarantined messages that status() lists (the oldest quarantines first)
QUARANTINE_LISTED = 50
_QUARANTINED = (
    select(
        m.c.id,
        m.c.stream,
        m.c.seq,
        m.c.destination,
        m.c.status,
        m.c.lease_expiries,
        m.c.alone_deaths,
        m.c.quarantined_ms,
        m.c.next_attempt_ms,
        m.c.last_error,
    )
    .where(m.c.status.in_(("pending", "inflight")), m.c.lease_expiries > 0)
    .order_by(m.c.quarantined_ms, m.c.id)
    .limit(QUARANTINE_LISTED)
)


class Operators:
    """The operators' half of ``OutboxStore`` (which provides the attributes declared here)."""

    engine: Engine
    clock: Callable[[], int]
    kept_streams: Callable[[], Any] | None

    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _audit(
        self, conn: Connection, actor: str, action: str, target: str, detail: str | None = None
    ) -> None:
        conn.execute(
            insert(outbox_audit).values(
                at_ms=self.clock(), actor=actor, action=action, target=target, detail=detail
            )
        )

    def requeue(
        self,
        actor: str,
        *,
        message_id: int | None = None,
        stream: str | None = None,
        destination: str | None = None,
    ) -> dict[int, str]:
        """Make messages due now: dead (or skipped) ones go back in the queue, keeping their order, and
        pending ones waiting out their backoff are tried at once. Returns each affected id with the status
        it had; raises LookupError (changing and auditing nothing) when nothing matched.

        One message: itself (unless delivered or in flight) and the messages its death held back. A case:
        its dead, skipped and pending messages. A destination: its dead and pending messages, and its
        circuit breaker is closed.
        """
        now = self.clock()
        with self._transaction() as conn:
            query = select(m.c.id, m.c.status)
            if message_id is not None:
                first = conn.execute(
                    select(m.c.stream, m.c.seq, m.c.status).where(m.c.id == message_id)
                ).first()
                if first is None:
                    raise LookupError(f"no message {message_id}")
                if first.status in ("done", "inflight"):
                    doing = "was delivered" if first.status == "done" else "is being delivered now"
                    raise LookupError(f"message {message_id} {doing} ({first.status}); nothing to retry")
                # the message itself and the ones it blocked
                query = query.where(
                    (m.c.id == message_id)
                    | and_(
                        m.c.stream == first.stream,
                        m.c.seq > first.seq,
                        m.c.status == "dead",
                        m.c.dead_reason.like("blocked:%"),
                    )
                )
                target = f"message {message_id}"
                nothing = f"{target} is being delivered now; nothing to retry"
            elif stream is not None:
                query = query.where(m.c.stream == stream, m.c.status.in_(("dead", "skipped", "pending")))
                target = f"case {stream}"
                nothing = f"{target} has no dead, skipped or pending message to retry"
            elif destination is not None:
                query = query.where(m.c.destination == destination, m.c.status.in_(("dead", "pending")))
                target = f"destination {destination}"
                nothing = f"{target} has no dead or pending message to retry"
            else:
                raise ValueError("requeue needs a message id, a stream or a destination")
            before = {int(r.id): str(r.status) for r in conn.execute(query).all()}
            changed: list[int] = []
            if before:
                # the status is checked again: a worker may have claimed a pending message meanwhile
                changed = [
                    int(i)
                    for i in conn.execute(
                        update(m)
                        .where(m.c.id.in_(list(before)), m.c.status.in_(("dead", "skipped", "pending")))
                        .values(
                            status="pending",
                            next_attempt_ms=now,
                            dead_reason=None,
                            # a pending suspect stays one (it is still claimed alone, its evidence kept);
                            # a dead or skipped message an operator sends again starts afresh
                            lease_expiries=case((m.c.status == "pending", m.c.lease_expiries), else_=0),
                            alone_deaths=case((m.c.status == "pending", m.c.alone_deaths), else_=0),
                            quarantined_ms=case((m.c.status == "pending", m.c.quarantined_ms), else_=None),
                            done_ms=None,
                        )
                        .returning(m.c.id)
                    ).scalars()
                ]
            if not changed:
                raise LookupError(nothing)
            if destination is not None:
                conn.execute(
                    delete(outbox_destination).where(outbox_destination.c.destination == destination)
                )
            self._audit(conn, actor, "retry", target, f"{len(changed)} message(s) due now")
        return {mid: before[mid] for mid in sorted(changed)}

    def skip(self, actor: str, message_id: int, reason: str = "") -> list[int]:
        """Give up on a pending or dead message for good; the messages it blocked go on (their ids are
        returned). Raises LookupError, changing nothing, for an unknown id or a message in another state."""
        now = self.clock()
        with self._transaction() as conn:
            row = conn.execute(select(m.c.stream, m.c.seq, m.c.status).where(m.c.id == message_id)).first()
            if row is None:
                raise LookupError(f"no message {message_id}")
            skipped = conn.execute(
                update(m)
                .where(m.c.id == message_id, m.c.status.in_(("pending", "dead")))
                .values(status="skipped", done_ms=now, dead_reason=reason or "skipped by operator")
            ).rowcount
            if skipped != 1:
                state = {
                    "done": "was delivered",
                    "inflight": "is being delivered now",
                    "skipped": "is skipped",
                }
                raise LookupError(
                    f"message {message_id} {state.get(row.status, 'is ' + row.status)} ({row.status}); "
                    "only pending or dead messages can be skipped"
                )
            released = [
                int(i)
                for i in conn.execute(
                    update(m)
                    .where(
                        m.c.stream == row.stream,
                        m.c.seq > row.seq,
                        m.c.status == "dead",
                        m.c.dead_reason == f"blocked: message {message_id} of this case is dead",
                    )
                    .values(status="pending", dead_reason=None, next_attempt_ms=now, done_ms=None)
                    .returning(m.c.id)
                ).scalars()
            ]
            self._audit(conn, actor, "skip", f"message {message_id}", reason or None)
        return sorted(released)

    def purge(self, actor: str, older_than_ms: int) -> int:
        """Delete messages delivered before ``older_than_ms`` ago, with their attempts; never those of the
        ``kept_streams`` (the messages of open cases are their timeline in the case desk)."""
        cutoff = self.clock() - older_than_ms
        purged = and_(m.c.status == "done", m.c.done_ms < cutoff)
        if self.kept_streams is not None:
            purged = and_(purged, m.c.stream.not_in(self.kept_streams()))
        with self.engine.begin() as conn:
            ids = select(m.c.id).where(purged).scalar_subquery()
            conn.execute(delete(outbox_attempt).where(outbox_attempt.c.message_id.in_(ids)))
            count = conn.execute(delete(m).where(purged)).rowcount
            self._audit(conn, actor, "purge", f"done before {cutoff}", f"{count} message(s)")
        return int(count)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        with self.engine.connect() as conn:
            counts = conn.execute(
                select(m.c.destination, m.c.status, func.count()).group_by(m.c.destination, m.c.status)
            ).all()
            oldest = conn.execute(select(func.min(m.c.created_ms)).where(m.c.status == "pending")).scalar()
            breakers = conn.execute(
                select(outbox_destination).where(outbox_destination.c.state != "closed")
            ).all()
            quarantined = conn.execute(_QUARANTINED).all()
            quarantined_count = conn.execute(
                select(func.count()).where(m.c.status.in_(("pending", "inflight")), m.c.lease_expiries > 0)
            ).scalar_one()
        by_destination: dict[str, dict[str, int]] = {}
        totals: dict[str, int] = {}
        for destination, status, count in counts:
            by_destination.setdefault(destination, {})[status] = int(count)
            totals[status] = totals.get(status, 0) + int(count)
        return {
            "totals": totals,
            "destinations": by_destination,
            "oldestPendingSeconds": None if oldest is None else round((now - int(oldest)) / 1000, 1),
            "breakers": [
                {
                    "destination": b.destination,
                    "state": b.state,
                    "failures": b.consecutive_failures,
                    "openForSeconds": max(0, round(((b.open_until_ms or now) - now) / 1000, 1)),
                }
                for b in breakers
            ],
            "quarantine": {
                "count": int(quarantined_count),
                "messages": [
                    {
                        "id": int(q.id),
                        "case": q.stream,
                        "seq": int(q.seq),
                        "destination": q.destination,
                        "status": q.status,
                        "deaths": int(q.lease_expiries),
                        "aloneDeaths": int(q.alone_deaths),
                        "quarantinedForSeconds": round((now - int(q.quarantined_ms or now)) / 1000, 1),
                        "nextAttemptInSeconds": max(0.0, round((int(q.next_attempt_ms) - now) / 1000, 1)),
                        "lastError": q.last_error,
                    }
                    for q in quarantined
                ],
            },
        }
