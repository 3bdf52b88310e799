"""``gateway outbox …``: watch deliveries and act on dead letters. Every change is audited.

``show`` never prints a payload (it holds health data): only its size and the delivery history.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from gateway.cli.common import emit
from gateway.errors import ConfigError, NothingMatchedError
from outbox.schema import outbox_attempt, outbox_message
from outbox.store import OutboxStore

__all__ = ["add_outbox_parser"]

m = outbox_message
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _when(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_status(args: argparse.Namespace, store: OutboxStore) -> int:
    status = store.status()
    lines = ["totals: " + (", ".join(f"{k}={v}" for k, v in sorted(status["totals"].items())) or "empty")]
    for destination, counts in sorted(status["destinations"].items()):
        lines.append(f"  {destination:<24} " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    oldest = status["oldestPendingSeconds"]
    lines.append(f"oldest pending: {oldest} s" if oldest is not None else "oldest pending: none")
    for breaker in status["breakers"]:
        lines.append(
            f"breaker {breaker['destination']}: {breaker['state']} after {breaker['failures']} failures"
            f" (retry in {breaker['openForSeconds']} s)"
        )
    if not status["breakers"]:
        lines.append("breakers: all closed")
    lines += _quarantine_lines(status["quarantine"])
    emit(args, status, "\n".join(lines))
    return 0


def _quarantine_lines(quarantine: dict[str, Any]) -> list[str]:
    """Messages whose worker died with them in flight: retried alone, dead letters only on evidence."""
    if not quarantine["count"]:
        return ["quarantined: none"]
    lines = [f"quarantined: {quarantine['count']} message(s) whose worker died with them in flight"]
    lines += [
        f"  {q['id']:>8} case {q['case']} #{q['seq']} to {q['destination']}: {q['deaths']} death(s) in a row,"
        f" {q['aloneDeaths']} alone, for {q['quarantinedForSeconds']} s; next try in"
        f" {q['nextAttemptInSeconds']} s"
        for q in quarantine["messages"]
    ]
    return lines


def cmd_list(args: argparse.Namespace, store: OutboxStore) -> int:
    query = (
        select(
            m.c.id,
            m.c.stream,
            m.c.seq,
            m.c.operation,
            m.c.destination,
            m.c.status,
            m.c.attempts,
            m.c.next_attempt_ms,
            m.c.last_error,
            m.c.dead_reason,
            m.c.lease_expiries,
            m.c.alone_deaths,
        )
        .order_by(m.c.id.desc())
        .limit(args.limit)
    )
    if args.status:
        query = query.where(m.c.status == args.status)
    if args.destination:
        query = query.where(m.c.destination == args.destination)
    if args.case:
        query = query.where(m.c.stream == args.case)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["next_attempt"] = _when(row.pop("next_attempt_ms"))
        row["quarantined"] = bool(row["lease_expiries"]) and row["status"] in ("pending", "inflight")
    lines = [
        f"{r['id']:>8} {r['status']:<8} {r['stream']:<24} #{r['seq']:<3} {r['operation']:<13} "
        f"{r['destination']:<20} attempts={r['attempts']} "
        + (
            f"quarantined (deaths={r['lease_expiries']}, alone={r['alone_deaths']}) "
            if r["quarantined"]
            else ""
        )
        + f"{r['dead_reason'] or r['last_error'] or ''}"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) or "no messages")
    return 0


def cmd_show(args: argparse.Namespace, store: OutboxStore) -> int:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(m, func.length(m.c.payload).label("payload_bytes")).where(m.c.id == args.id)
        ).first()
        if row is None:
            raise NothingMatchedError(f"no message {args.id}")
        attempts = [
            dict(a._mapping)
            for a in conn.execute(
                select(outbox_attempt)
                .where(outbox_attempt.c.message_id == args.id)
                .order_by(outbox_attempt.c.id)
            )
        ]
    data = {k: v for k, v in row._mapping.items() if k not in ("payload", "lease_token")}
    data["quarantined"] = bool(data["lease_expiries"]) and data["status"] in ("pending", "inflight")
    data["quarantined_since"] = _when(data.pop("quarantined_ms"))
    for key in ("next_attempt_ms", "created_ms", "done_ms", "lease_expires_ms"):
        data[key.removesuffix("_ms")] = _when(data.pop(key))
    data["attempt_log"] = [
        {
            **{k: v for k, v in a.items() if not k.endswith("_ms")},
            "at": _when(a["started_ms"]),
            "ms": a["finished_ms"] - a["started_ms"],
        }
        for a in attempts
    ]
    lines = [f"{k}: {v}" for k, v in data.items() if k != "attempt_log"]
    lines += [
        f"  attempt {a['attempt']} at {a['at']} by {a['worker']}: {a['outcome']} "
        f"{a['detail'] or ''} ({a['ms']} ms)"
        for a in data["attempt_log"]
    ]
    emit(args, data, "\n".join(lines))
    return 0


def _ids(ids: list[int], most: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def cmd_retry(args: argparse.Namespace, store: OutboxStore) -> int:
    chosen = [x for x in (args.id, args.case, args.destination) if x is not None]
    if len(chosen) != 1:
        raise ConfigError("give exactly one of ID, --case or --destination")
    try:
        before = store.requeue(
            args.author, message_id=args.id, stream=args.case, destination=args.destination
        )
    except LookupError as exc:
        raise NothingMatchedError(str(exc)) from None
    ids = sorted(before)
    with store.engine.connect() as conn:
        destinations = set(conn.execute(select(m.c.destination).where(m.c.id.in_(ids))).scalars())
    # a breaker that stays open holds the messages back although they are due
    held = [b for b in store.status()["breakers"] if b["destination"] in destinations]
    data = {
        "action": "retry",
        "count": len(ids),
        "messages": [{"id": i, "was": before[i]} for i in ids],
        "openBreakers": held,
    }
    was = ", ".join(f"{n} {status}" for status, n in sorted(Counter(before.values()).items()))
    lines = [f"{len(ids)} message(s) due now: {_ids(ids)} (before: {was})"]
    lines += [
        f"breaker of {b['destination']} is {b['state']} (next try in {b['openForSeconds']} s); "
        f"`gateway outbox retry --destination {b['destination']}` closes it"
        for b in held
    ]
    emit(args, data, "\n".join(lines))
    return 0


def cmd_skip(args: argparse.Namespace, store: OutboxStore) -> int:
    try:
        released = store.skip(args.author, args.id, args.message or "")
    except LookupError as exc:
        raise NothingMatchedError(str(exc)) from None
    data = {"action": "skip", "id": args.id, "released": released}
    line = f"message {args.id} skipped"
    line += f"; messages it held back are due now: {_ids(released)}" if released else ""
    emit(args, data, line)
    return 0


def cmd_purge(args: argparse.Namespace, store: OutboxStore) -> int:
    match = _DURATION.match(args.done_older_than)
    if not match:
        raise ConfigError("--done-older-than takes a duration like 30d, 12h, 90m or 600s")
    count = store.purge(args.author, int(match.group(1)) * _UNITS[match.group(2)] * 1000)
    emit(args, {"action": "purge", "count": count}, f"{count} delivered message(s) purged")
    return 0


def add_outbox_parser(sub: Any, run: Callable[[argparse.Namespace, Callable[..., int]], int]) -> None:
    outbox = sub.add_parser("outbox", help="deliveries: status, messages, dead letters")
    osub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")

    def command(name: str, func: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = osub.add_parser(name, help=help_text)
        p.add_argument("--author", default="operator", help="name recorded in the audit log")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=lambda args: run(args, func))
        return p

    p = command("status", cmd_status, "counts by status and destination, oldest pending, open breakers")
    p = command("list", cmd_list, "recent messages (newest first)")
    p.add_argument(
        "--status",
        choices=["pending", "inflight", "done", "dead", "skipped"],
        help="only messages in this state",
    )
    p.add_argument("--destination", help="only messages to this endpoint name")
    p.add_argument("--case", help="only messages of this case (caseId)")
    p.add_argument("--limit", type=int, default=50, help="at most this many messages (default 50)")
    p = command("show", cmd_show, "one message and its delivery attempts (never its payload)")
    p.add_argument("id", type=int, help="message id (from outbox list)")
    p = command(
        "retry",
        cmd_retry,
        "make messages due now: one dead or waiting message (and those it held back), a case, or a "
        "destination (closing its breaker); exit 3 when nothing matches",
    )
    p.add_argument("id", type=int, nargs="?", help="message id (see `outbox list`)")
    p.add_argument("--case", help="every dead, skipped or pending message of this case id")
    p.add_argument("--destination", help="every dead or pending message of this endpoint name")
    p = command(
        "skip",
        cmd_skip,
        "give up on a pending or dead message; later messages of its case go on; exit 3 when nothing matches",
    )
    p.add_argument("id", type=int, help="message id (see `outbox list`)")
    p.add_argument("-m", "--message", help="why (kept in the audit log)")
    p = command("purge", cmd_purge, "delete delivered messages older than a duration (e.g. 30d)")
    p.add_argument("--done-older-than", required=True, help="age of delivery, e.g. 30d, 12h, 90m or 600s")
