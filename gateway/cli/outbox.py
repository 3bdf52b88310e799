"""``gateway outbox …``: watch deliveries and act on dead letters. Every change is audited.

``show`` never prints a payload (it holds health data): only its size and the delivery history.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from gateway.cli.common import emit
from gateway.errors import GatewayError
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
    emit(args, status, "\n".join(lines))
    return 0


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
    lines = [
        f"{r['id']:>8} {r['status']:<8} {r['stream']:<24} #{r['seq']:<3} {r['operation']:<13} "
        f"{r['destination']:<20} attempts={r['attempts']} {r['dead_reason'] or r['last_error'] or ''}"
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
            raise GatewayError(f"no message {args.id}")
        attempts = [
            dict(a._mapping)
            for a in conn.execute(
                select(outbox_attempt)
                .where(outbox_attempt.c.message_id == args.id)
                .order_by(outbox_attempt.c.id)
            )
        ]
    data = {k: v for k, v in row._mapping.items() if k not in ("payload", "lease_token")}
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


def cmd_retry(args: argparse.Namespace, store: OutboxStore) -> int:
    chosen = [x for x in (args.id, args.case, args.destination) if x is not None]
    if len(chosen) != 1:
        raise GatewayError("give exactly one of ID, --case or --destination")
    try:
        count = store.requeue(args.author, message_id=args.id, stream=args.case, destination=args.destination)
    except LookupError as exc:
        raise GatewayError(str(exc)) from None
    print(f"{count} message(s) queued again")
    return 0


def cmd_skip(args: argparse.Namespace, store: OutboxStore) -> int:
    try:
        store.skip(args.author, args.id, args.message or "")
    except (LookupError, ValueError) as exc:
        raise GatewayError(str(exc)) from None
    print(f"message {args.id} skipped; messages it held back are queued again")
    return 0


def cmd_purge(args: argparse.Namespace, store: OutboxStore) -> int:
    match = _DURATION.match(args.done_older_than)
    if not match:
        raise GatewayError("--done-older-than takes a duration like 30d, 12h, 90m or 600s")
    count = store.purge(args.author, int(match.group(1)) * _UNITS[match.group(2)] * 1000)
    print(f"{count} delivered message(s) purged")
    return 0


def add_outbox_parser(sub: Any, run: Callable[[argparse.Namespace, Callable[..., int]], int]) -> None:
    outbox = sub.add_parser("outbox", help="deliveries: status, messages, dead letters")
    osub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")

    def command(name: str, func: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = osub.add_parser(name, help=help_text)
        p.add_argument("--author", default="operator", help="name recorded in the audit log")
        p.set_defaults(func=lambda args: run(args, func))
        return p

    p = command("status", cmd_status, "counts by status and destination, oldest pending, open breakers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("list", cmd_list, "recent messages (newest first)")
    p.add_argument(
        "--status",
        choices=["pending", "inflight", "done", "dead", "skipped"],
        help="only messages in this state",
    )
    p.add_argument("--destination", help="only messages to this endpoint name")
    p.add_argument("--case", help="only messages of this case (caseId)")
    p.add_argument("--limit", type=int, default=50, help="at most this many messages (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("show", cmd_show, "one message and its delivery attempts (never its payload)")
    p.add_argument("id", type=int, help="message id (from outbox list)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command(
        "retry",
        cmd_retry,
        "queue dead messages again: one (and those it held back), a case, or a destination",
    )
    p.add_argument("id", type=int, nargs="?", help="message id (or give --case / --destination)")
    p.add_argument("--case", help="every dead message of this case")
    p.add_argument("--destination", help="every dead message to this endpoint name")
    p = command("skip", cmd_skip, "give up on a pending or dead message; later messages of its case go on")
    p.add_argument("id", type=int, help="message id (from outbox list)")
    p.add_argument("-m", "--message", help="why (kept in the audit log)")
    p = command("purge", cmd_purge, "delete delivered messages older than a duration (e.g. 30d)")
    p.add_argument("--done-older-than", required=True, help="a duration: 30d, 12h, 90m or 600s")
