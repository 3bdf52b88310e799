"""A desk case's timeline, derived from what the gateway stores anyway (no second copy of the case):

- inbound: the inbox rows of the case (the RegisterCase as received, UpdateCases an integrated system
  sent while it handled the case, before a redirect into the desk, and the citizen's replies and
  supplements from 1177, which are not delivered anywhere else: the desk is their handling system);
- outbound: the outbox rows of the case's stream that the desk wrote (RECEIVED and every action's
  UpdateCase to 1177), each with its delivery status;
- desk-only events from the audit log (access refused, attachments allowed, export, hand-over); the audit
  rows of actions that sent a message name the person who sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from gateway.cases.inbox import inbox_message
from gateway.desk.filed import Filed, parse_filed, parse_message
from gateway.desk.model import AttachmentRef, TimelineEvent
from gateway.desk.schema import desk_audit
from gateway.desk.times import from_ms, utc
from outbox.schema import outbox_message

__all__ = ["DESK_ACTOR", "Derived", "derive", "message_target"]

#: the actor of what the desk does by itself (the RECEIVED that confirms a case)
DESK_ACTOR = "desk"
_MESSAGE = "message:"


def message_target(message_id: str) -> str:
    """The audit target of an action that sent ``message_id``."""
    return _MESSAGE + message_id


@dataclass(frozen=True)
class Derived:
    filed: Filed
    register_payload: bytes
    events: list[TimelineEvent]
    attachments: list[AttachmentRef]


def derive(conn: Connection, case_id: str) -> Derived:
    inbound = conn.execute(
        select(
            inbox_message.c.id,
            inbox_message.c.operation,
            inbox_message.c.message_id,
            inbox_message.c.consumer_hsa_id,
            inbox_message.c.received_at,
            inbox_message.c.payload,
        )
        .where(inbox_message.c.case_id == case_id)
        .order_by(inbox_message.c.id)
    ).all()
    outbound = conn.execute(
        select(
            outbox_message.c.id,
            outbox_message.c.operation,
            outbox_message.c.idempotency_key,
            outbox_message.c.status,
            outbox_message.c.created_ms,
            outbox_message.c.payload,
        )
        .where(outbox_message.c.stream == case_id, outbox_message.c.operation == "UpdateCase")
        .order_by(outbox_message.c.seq)
    ).all()
    audited = conn.execute(
        select(desk_audit.c.at, desk_audit.c.actor, desk_audit.c.action, desk_audit.c.target)
        .where(desk_audit.c.case_id == case_id)
        .order_by(desk_audit.c.id)
    ).all()

    delivery = {row.idempotency_key: str(row.status) for row in outbound}
    actors = {
        row.target[len(_MESSAGE) :]: row.actor
        for row in audited
        if row.target and row.target.startswith(_MESSAGE)
    }
    events: list[tuple[datetime, int, TimelineEvent]] = []
    filed: Filed | None = None
    register_payload = b""
    forwarded: set[str] = set()
    for row in inbound:
        at = utc(row.received_at)
        if row.operation == "RegisterCase":
            register_payload = bytes(row.payload)
            filed = parse_filed(register_payload, int(row.id))
            event = TimelineEvent(
                at, "in", "RegisterCase", row.consumer_hsa_id, None, None, filed.attachments
            )
        else:
            message = parse_message(bytes(row.payload), f"in-{row.id}")
            key = f"UpdateCase:{message.message_id}"
            forwarded.add(key)
            event = TimelineEvent(
                at,
                "in",
                message.update_type,
                row.consumer_hsa_id,
                message.text,
                message.standard_answer,
                message.attachments,
                delivery.get(key),
            )
        events.append((at, len(events), event))
    for out in outbound:
        if out.idempotency_key in forwarded:
            continue  # an integrated system's update, shown above with its delivery
        message = parse_message(bytes(out.payload), f"out-{out.id}", "to-citizen")
        at = from_ms(int(out.created_ms))
        event = TimelineEvent(
            at,
            "out",
            message.update_type,
            actors.get(message.message_id, DESK_ACTOR),
            message.text,
            message.standard_answer,
            message.attachments,
            str(out.status),
        )
        events.append((at, len(events), event))
    for entry in audited:
        if entry.target and entry.target.startswith(_MESSAGE):
            continue  # an action that sent a message: it is that message's event
        at = utc(entry.at)
        events.append((at, len(events), TimelineEvent(at, "desk", entry.action, entry.actor)))
    if filed is None:
        raise LookupError(f"case {case_id} has no stored RegisterCase")
    # the RegisterCase comes first, whatever the clocks say (the desk's RECEIVED is made just before its
    # inbox row is stamped)
    ordered = [
        event
        for _, _, event in sorted(
            events,
            key=lambda item: (item[2].kind != "RegisterCase" or item[2].direction != "in", item[0], item[1]),
        )
    ]
    attachments = [ref for event in ordered for ref in event.attachments]
    return Derived(filed, register_payload, ordered, attachments)
