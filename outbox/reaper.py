"""The lease reaper and the quarantine: messages whose worker died with them in flight.

A message whose lease expired is quarantined, not buried: it goes back in the queue to be retried alone,
at once after its first death and after a growing pause after each further one
(``outbox.policy.QuarantinePolicy``), and the messages behind it wait. It becomes a dead letter only on
evidence, when it was in flight alone at several deaths in a row within a window. Each death is logged at
WARNING (message id, case id, destination) after the commit. ``OutboxStore`` takes these methods from
``Reaper``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, insert, select, update

from outbox.policy import QuarantinePolicy
from outbox.schema import outbox_attempt, outbox_message

__all__ = ["Reaper", "log_attempt"]

m = outbox_message
log = logging.getLogger("outbox.store")

_EXPIRED = (
    select(
        m.c.id,
        m.c.stream,
        m.c.seq,
        m.c.destination,
        m.c.attempts,
        m.c.lease_expiries,
        m.c.alone_deaths,
        m.c.quarantined_ms,
        m.c.lease_owner,
        m.c.lease_token,
    )
    .where(m.c.status == "inflight", m.c.lease_expires_ms < bindparam("b_now"))
    .order_by(m.c.lease_expires_ms, m.c.id)
)


def log_attempt(
    conn: Connection,
    mid: int,
    attempt: int,
    worker: str,
    started: int,
    finished: int,
    outcome: str,
    http_status: int | None,
    detail: str | None,
) -> None:
    conn.execute(
        insert(outbox_attempt).values(
            message_id=mid,
            attempt=attempt,
            worker=worker[:100],
            started_ms=started,
            finished_ms=finished,
            outcome=outcome,
            http_status=http_status,
            detail=(detail or "")[:500] or None,
        )
    )


@dataclass(frozen=True)
class _Death:
    """A message the reaper found with an expired lease: what the log says about it after the commit."""

    id: int
    stream: str
    destination: str
    worker: str
    deaths: int
    alone: int
    retry_ms: int
    dead_reason: str | None


def _report(deaths: Iterable[_Death]) -> None:
    for death in deaths:
        fields = {
            "message": death.id,
            "case": death.stream,
            "destination": death.destination,
            "worker": death.worker,
            "deaths": death.deaths,
            "aloneDeaths": death.alone,
        }
        if death.dead_reason is not None:
            log.error(
                "poison message: dead letter", extra={"fields": {**fields, "reason": death.dead_reason}}
            )
        else:
            fields["retryInSeconds"] = round(death.retry_ms / 1000, 1)
            log.warning("message quarantined: its worker died with it in flight", extra={"fields": fields})


class Reaper:
    """The reaper's half of ``OutboxStore`` (which provides the attributes declared here)."""

    clock: Callable[[], int]
    quarantine: QuarantinePolicy

    @property
    def postgres(self) -> bool:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    # -- the reaper and the quarantine -----------------------------------------------------------------------
    def reap(self) -> int:
        """Return every message whose lease expired to the queue (quarantined), or bury it on evidence.

        The claim path reaps too (at most every ``_reap_interval``); this is for a process that delivers
        nothing (the operations listener), so leases of a dead worker expire into the queue even when no
        other worker runs. Returns how many messages were reaped.
        """
        with self._transaction() as conn:
            deaths = self._reap(conn, self.clock())
        _report(deaths)  # only what was committed
        return len(deaths)

    def _reap(self, conn: Connection, now: int) -> list[_Death]:
        """Quarantine the messages whose lease expired (their worker died or stalled); bury on evidence.

        A death counts as evidence against a message only when it was in flight alone: it had been leased
        on its own as a suspect (claims lease a suspect alone, and a worker holding one claims nothing more)
        and no other message of its worker is still in flight. A message claimed in a batch is never alone
        at its first death, so that death is never evidence.
        """
        query = _EXPIRED
        if self.postgres:
            query = query.with_for_update(skip_locked=True, of=m)  # another reaper has these
        expired = conn.execute(query, {"b_now": now}).all()
        if not expired:
            return []
        held: dict[str, int] = dict(
            conn.execute(
                select(m.c.lease_owner, func.count())
                .where(m.c.status == "inflight", m.c.lease_owner.in_({r.lease_owner for r in expired}))
                .group_by(m.c.lease_owner)
            ).all()
        )
        policy = self.quarantine
        deaths: list[_Death] = []
        for row in expired:
            others = int(held.get(row.lease_owner, 1)) - 1
            alone = row.lease_expiries > 0 and others == 0
            count = int(row.lease_expiries) + 1
            alone_count = int(row.alone_deaths) + 1 if alone else 0
            since = int(row.quarantined_ms) if row.lease_expiries and row.quarantined_ms else now
            delay = policy.delay_ms(count)
            if alone:
                how = "in flight alone"
            elif row.lease_expiries:
                how = f"with {others} other message(s) of its worker in flight"
            else:
                how = "claimed with other messages"
            detail = f"lease expired: worker {row.lease_owner} lost, {how}"
            reaped = conn.execute(
                update(m)
                .where(m.c.id == row.id, m.c.status == "inflight", m.c.lease_token == row.lease_token)
                .values(
                    status="pending",
                    lease_owner=None,
                    lease_token=None,
                    lease_expires_ms=None,
                    lease_expiries=count,
                    alone_deaths=alone_count,
                    quarantined_ms=since,
                    next_attempt_ms=now + delay,
                    last_error=detail[:500],
                )
            )
            if reaped.rowcount != 1:
                continue  # heartbeated or reaped meanwhile
            log_attempt(
                conn,
                int(row.id),
                int(row.attempts),
                str(row.lease_owner),
                now,
                now,
                "lease-lost",
                None,
                detail,
            )
            verdict = None
            if alone_count >= policy.deaths:
                first = self._evidence_start(conn, int(row.id), policy.deaths)
                if first is not None and now - first <= policy.window_ms:
                    verdict = (
                        f"poison: its worker died with it in flight alone {policy.deaths} times in a row"
                        f" within {(now - first) // 1000} s"
                    )
                    self._bury(conn, int(row.id), row.stream, int(row.seq), verdict, now)
            deaths.append(
                _Death(
                    int(row.id),
                    row.stream,
                    row.destination,
                    str(row.lease_owner),
                    count,
                    alone_count,
                    delay,
                    verdict,
                )
            )
        return deaths

    @staticmethod
    def _evidence_start(conn: Connection, mid: int, deaths: int) -> int | None:
        """When the last ``deaths`` attempts of a message began, if all of them were lost leases."""
        rows = conn.execute(
            select(outbox_attempt.c.started_ms, outbox_attempt.c.outcome)
            .where(outbox_attempt.c.message_id == mid)
            .order_by(outbox_attempt.c.id.desc())
            .limit(deaths)
        ).all()
        if len(rows) < deaths or any(r.outcome != "lease-lost" for r in rows):
            return None
        return min(int(r.started_ms) for r in rows)

    def _bury(self, conn: Connection, mid: int, stream: str, seq: int, reason: str, now: int) -> None:
        conn.execute(
            update(m)
            .where(m.c.id == mid)
            .values(
                status="dead",
                dead_reason=reason[:500],
                lease_owner=None,
                lease_token=None,
                lease_expires_ms=None,
                done_ms=now,
            )
        )
        conn.execute(
            update(m)
            .where(m.c.stream == stream, m.c.seq > seq, m.c.status == "pending")
            .values(status="dead", dead_reason=f"blocked: message {mid} of this case is dead", done_ms=now)
        )
