"""The delivery invariants every fault-injection test ends with.

1. Every acknowledged message ends delivered (done) or dead with a reason (or skipped by an operator).
2. Never two messages of one case in flight at once (the receivers count concurrent calls per case).
3. Per case, first arrivals come in sequence order.
4. Every delivered message arrived at least once.
5. A message arrived more than once only where a crash, a lost lease, a timeout or a failed attempt hit it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import create_engine, select

from outbox.schema import outbox_attempt, outbox_message
from tests.integration.receivers import ReceiverProcess


def check_invariants(db_url: str, receivers: list[ReceiverProcess]) -> dict[str, Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            messages = {
                r.idempotency_key: r
                for r in conn.execute(
                    select(
                        outbox_message.c.id,
                        outbox_message.c.stream,
                        outbox_message.c.seq,
                        outbox_message.c.status,
                        outbox_message.c.dead_reason,
                        outbox_message.c.idempotency_key,
                        outbox_message.c.attempts,
                    )
                )
            }
            outcomes: dict[int, list[str]] = defaultdict(list)
            for mid, outcome in conn.execute(
                select(outbox_attempt.c.message_id, outbox_attempt.c.outcome).order_by(outbox_attempt.c.id)
            ):
                outcomes[int(mid)].append(outcome)
    finally:
        engine.dispose()

    for key, row in messages.items():
        assert row.status in ("done", "dead", "skipped"), f"{key} ended {row.status}"
        if row.status == "dead":
            assert row.dead_reason, f"{key} is dead without a reason"

    arrivals = sorted((a for r in receivers for a in r.arrivals()), key=lambda a: a["at_us"])
    assert all(a["concurrent"] <= 1 for a in arrivals), "two messages of one case were in flight at once"
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for arrival in arrivals:
        by_key[arrival["idempotency_key"]].append(arrival)

    last_seq: dict[str, int] = {}
    for arrival in arrivals:
        key = arrival["idempotency_key"]
        if by_key[key][0] is not arrival:
            continue  # only first arrivals must keep the order
        row = messages[key]
        assert row.seq > last_seq.get(row.stream, 0), f"case {row.stream}: seq {row.seq} arrived out of order"
        last_seq[row.stream] = row.seq

    duplicates = 0
    for key, row in messages.items():
        if row.status == "done":
            assert by_key.get(key), f"{key} is done but never arrived"
        if len(by_key.get(key, [])) > 1:
            duplicates += 1
            history = outcomes[int(row.id)]
            assert any(o != "success" for o in history), f"{key} arrived twice without a failure: {history}"
    statuses: dict[str, int] = defaultdict(int)
    for row in messages.values():
        statuses[row.status] += 1
    return {"messages": len(messages), "arrivals": len(arrivals), "duplicates": duplicates, **statuses}
