"""Cut-over: hand the open desk cases of a unit to the system its RegisterCase route now points at.

When a unit's route moves from ``internal`` to a deviation system, its open desk cases stay in the desk
until they are closed; ``gateway desk hand-over --unit`` moves them, each as a REDIRECTED case is moved:
the case record points at the new system (which numbers its own updates from 1), and the RegisterCase as
stored is delivered to it through the outbox, in the case's stream. One transaction for the whole unit,
one audit row per case.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update

from contracts import registercase
from gateway.cases.flow import redirected_case
from gateway.cases.inbox import inbox_message
from gateway.cases.records import DESK, case_record
from gateway.cases.state import CLOSED, CaseState, Refusal, Sender, judge
from gateway.desk import audit
from gateway.desk.errors import Refused
from gateway.desk.tree import tree_of
from outbox import NewMessage, enqueue
from routing import RoutingHolder
from routing.errors import DecisionError

__all__ = ["hand_over"]


def hand_over(
    engine: Engine,
    routing: RoutingHolder,
    actor: str,
    unit: str,
    clock: Callable[[], datetime],
    outbox_clock: Callable[[], int],
) -> list[str]:
    now = clock()
    table = routing.table
    try:
        decision = table.resolve(registercase.NAMESPACE, unit, now.astimezone(UTC))
    except DecisionError as exc:
        raise Refused(
            "NO_ROUTE", f"{unit} has no RegisterCase route in routing version {table.version}"
        ) from exc
    if decision.internal or decision.endpoint is None:
        raise Refused(
            "STILL_IN_DESK",
            f"{unit} is still routed to the case desk in routing version {table.version}:"
            " publish its new route first",
        )
    name = tree_of(table).name(unit) or None
    moved: list[str] = []
    with engine.begin() as conn:
        cases = conn.execute(
            select(case_record)
            .where(
                case_record.c.receiving_system == DESK,
                case_record.c.handling_unit == unit,
                case_record.c.status != CLOSED,
            )
            .order_by(case_record.c.case_id)
            .with_for_update()
        ).all()
        for case in cases:
            verdict = judge(CaseState(case.status, case.open_question), "REDIRECTED", Sender.HANDLER)
            assert not isinstance(verdict, Refusal), "an open case can always be redirected"
            original = conn.execute(
                select(inbox_message.c.payload, inbox_message.c.consumer_hsa_id).where(
                    inbox_message.c.operation == "RegisterCase", inbox_message.c.case_id == case.case_id
                )
            ).one()
            conn.execute(
                update(case_record)
                .where(case_record.c.case_id == case.case_id)
                .values(
                    route_target=decision.target,
                    receiving_system=decision.endpoint.component,
                    routing_version=table.version,
                    status=verdict.status,
                    open_question=None,
                    handler_turn_since=now,
                    last_sequence=None,  # the new system numbers its updates of the case from 1
                    version=case_record.c.version + 1,
                    updated_at=now,
                )
            )
            payload = redirected_case(
                bytes(original.payload), unit, name, keep_name=case.recipient_unit == unit
            )
            message = NewMessage(
                case.case_id,
                "RegisterCase",
                decision.target,
                unit,
                payload,
                str(uuid.uuid4()),
                f"RegisterCase:hand-over:{case.case_id}:{case.version}:{decision.target}",
                original.consumer_hsa_id,
            )
            enqueue(conn, message, outbox_clock())
            audit.record(
                conn,
                now,
                actor,
                "HAND_OVER",
                case_id=case.case_id,
                target=decision.target,
                detail=f"to system {decision.endpoint.component} (routing version {table.version})",
            )
            moved.append(case.case_id)
    return moved
