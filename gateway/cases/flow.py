"""What an accepted request sets in motion, inside the transaction that stores it.

RegisterCase: a case record, and an outbox message to the receiving system; a case to a unit handled in
the gateway's own case desk is confirmed at once instead, with the desk's RECEIVED update to 1177
(``gateway.cases.outgoing``). A case started outside 1177 (``channel`` other than WEB) comes from a
region's system addressed to 1177's case service: it is delivered to 1177, and its sender becomes the
case's handling system. UpdateCase from the handling side: only from the system the case was routed to,
and only what the case's state machine allows (``gateway.cases.state``: nothing after CLOSED); it updates
the case record (and its optimistic-lock ``version``) and queues the update for 1177. ``REDIRECTED`` to a
unit handled elsewhere moves the case and delivers it, readdressed, to its new receiver; into a desk unit,
it lands in the desk and the desk confirms it with RECEIVED. ``UNIT_CORRECTED`` (patient boards) sets the
concerned unit; the board stays the handling unit. The citizen's messages from 1177 go the other way
(``gateway.cases.citizen``). Either all of it is committed with the inbox row, or none of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from sqlalchemy import Connection, select, update

from contracts import registercase, updatecase
from contracts.model import Unit, parse_date
from gateway.cases.citizen import CitizenFlow, refused
from gateway.cases.inbox import NewCase, Outcome, inbox_message
from gateway.cases.outgoing import CaseService, payload_bytes, received_update
from gateway.cases.records import (
    DESK,
    age_at,
    case_record,
    hsa_kind,
    local,
    recipient_type_of,
    state_of,
)
from gateway.cases.state import Refusal, Sender, Transition, judge, sequence_refusal
from gateway.stats.snapshot import snapshot_of
from outbox import NewMessage, enqueue, now_ms
from routing import Decision, RoutingHolder
from routing.errors import DecisionError
from routing.model import HsaNode

__all__ = ["CaseFlow", "Redirect", "redirected_case"]

log = logging.getLogger("gateway.cases.flow")


def _receiver(decision: Decision) -> str:
    return decision.endpoint.component if decision.endpoint is not None else DESK


@dataclass
class Redirect:
    unit: str
    decision: Decision | None = None


def redirected_case(
    original: bytes,
    unit: str,
    unit_name: str | None,
    keep_name: bool,
    recipient_type: str | None = None,
) -> bytes:
    """The stored RegisterCase of a case, readdressed to ``unit`` for its new receiving system.

    ``unit_name`` replaces the recipient's unit name; without one the old name is dropped, unless
    ``keep_name`` (the unit did not change, only the system that handles it). ``recipient_type`` (from the
    HSA tree's kind of the new unit) replaces the recipient's type; for a care unit the incident's
    ``locationDescription`` (a patient board's free-text place) no longer applies and is dropped.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    case = etree.fromstring(original, parser)
    if recipient_type is not None:
        kind = case.find(f"{{{registercase.NAMESPACE}}}recipient/{{*}}recipientType")
        if kind is not None:
            kind.text = recipient_type
        if recipient_type == "CARE_UNIT":
            location = case.find(f"{{{registercase.NAMESPACE}}}incident/{{*}}locationDescription")
            if location is not None and (parent := location.getparent()) is not None:
                parent.remove(location)
    unit_id = case.find(f"{{{registercase.NAMESPACE}}}recipient/{{*}}unit/{{*}}unitId")
    if unit_id is not None:
        unit_id.text = unit
    name = case.find(f"{{{registercase.NAMESPACE}}}recipient/{{*}}unit/{{*}}unitName")
    if name is not None:
        if unit_name:
            name.text = unit_name
        elif not keep_name:
            parent = name.getparent()
            if parent is not None:
                parent.remove(name)
    return payload_bytes(case)


class CaseFlow:
    def __init__(
        self,
        routing: RoutingHolder,
        register_namespace: str,
        clock: Callable[[], int] = now_ms,
        case_service_address: str | None = None,
    ) -> None:
        self.routing = routing
        self.register_namespace = register_namespace
        self.clock = clock
        self.case_service = (
            CaseService(routing, case_service_address) if case_service_address is not None else None
        )
        self.citizen = CitizenFlow(routing, self.case_service, clock)

    def _send(
        self,
        conn: Connection,
        case_id: str,
        operation: str,
        destination: str,
        logical_address: str,
        payload: bytes,
        correlation_id: str,
        idempotency_key: str,
        consumer: str | None,
    ) -> None:
        message = NewMessage(
            case_id,
            operation,
            destination,
            logical_address,
            payload,
            correlation_id,
            idempotency_key,
            consumer,
        )
        enqueue(conn, message, self.clock())

    def _desk_confirmation(
        self, case_id: str, unit: Unit, now: datetime, correlation_id: str
    ) -> NewMessage | None:
        """The desk's RECEIVED for a case that just landed in it (sequence number 1: the desk is a new
        sender of the case), or None, with a warning, when 1177's case service has no route."""
        route = self.case_service.route(now) if self.case_service is not None else None
        if route is None:
            log.warning(
                "case landed in the case desk but cannot be confirmed to 1177: no route for UpdateCase at"
                " the case service address; a handler can send RECEIVED from the desk once there is one",
                extra={"fields": {"caseId": case_id}},
            )
            return None
        assert self.case_service is not None
        message_id, payload = received_update(case_id, 1, unit, now)
        return self.case_service.message(route, case_id, message_id, payload, correlation_id)

    # -- RegisterCase ---------------------------------------------------------------------------------------
    def new_case(
        self,
        req: registercase.RegisterCase,
        decision: Decision,
        correlation_id: str,
        consumer: str,
        logical_address: str,
        caller: str | None = None,
    ) -> NewCase:
        """The case record of a new case and its first delivery: to the unit's system, or, for a unit
        handled in the desk, the desk's RECEIVED to 1177. A case started outside 1177 (``channel`` other
        than WEB) is delivered to 1177, and ``caller`` (its sender) handles it."""
        now = datetime.now(UTC)
        submitted = local(req.submitted_at)
        incident = req.incident
        record: dict[str, Any] = {
            "case_id": req.case_id,
            "category": req.case_category,
            "recipient_type": req.recipient_type,
            "recipient_unit": req.recipient_unit.unit_id,
            "concerned_unit": incident.concerned_unit.unit_id if incident.concerned_unit else None,
            "handling_unit": req.recipient_unit.unit_id,
            "subject_age": age_at(req.subject_person_id, submitted.date()),
            "subject_gender": req.subject_gender.code if req.subject_gender else None,
            "main_problem": incident.main_problem.code if incident.main_problem else None,
            "sub_problem": incident.sub_problem.code if incident.sub_problem else None,
            "experienced_problem": incident.experienced_problem.code
            if incident.experienced_problem
            else None,
            "business_area": incident.business_area.code if incident.business_area else None,
            "event_date": parse_date(incident.event_date),
            "submitted_at": submitted,
            "received_at": now,
            "status": "REGISTERED",
            "route_target": decision.target,
            "receiving_system": _receiver(decision) if req.channel == "WEB" else (caller or consumer),
            "routing_version": self.routing.table.version,
            "updated_at": now,
            "closed_at": None,
            "last_sequence": None,
            "version": 1,
            "open_question": None,
            "handler_turn_since": now,  # a new case waits for its handler
            "attachments_allowed": False,
            "citizen_sequence": None,
            "reporter_role": req.reporter_role,
            "channel": req.channel,
            **_unit_snapshot(self.routing.table.catalogue.hsa, incident.concerned_unit or req.recipient_unit),
        }
        if decision.internal and req.channel != "WEB":
            return NewCase(record)  # nothing to deliver to: the case is the sender's own
        if decision.internal:
            unit = Unit(req.recipient_unit.unit_id, req.recipient_unit.unit_name)
            received = self._desk_confirmation(req.case_id, unit, now, correlation_id)
            if received is None:
                return NewCase(record)
            record.update(status="RECEIVED", last_sequence=1)
            key = received.idempotency_key
            return NewCase(record, lambda _stored: received, lambda _inbox_id: key, self.clock())
        target = decision.target

        def delivery(payload: bytes) -> NewMessage:
            return NewMessage(
                req.case_id,
                "RegisterCase",
                target,
                logical_address,
                payload,
                correlation_id,
                "",  # made from the inbox id by the key below
                consumer,
            )

        return NewCase(record, delivery, lambda inbox_id: f"RegisterCase:{inbox_id}:{target}", self.clock())

    # -- UpdateCase -----------------------------------------------------------------------------------------
    def _judge(self, row: Any, req: updatecase.UpdateCase) -> Transition | Refusal:
        """The state machine's verdict on a handling side's update of the case in ``row``."""
        corrected = _corrected_unit(req, row.handling_unit)
        table = self.routing.table
        return judge(
            state_of(row, table),
            req.update_type,
            Sender.HANDLER,
            message_id=req.message_id,
            corrected_unit=corrected,
            unit_kind=hsa_kind(table, corrected) if corrected is not None else None,
        )

    def check_update(
        self, req: updatecase.UpdateCase, consumer: str, redirect: Redirect | None
    ) -> Callable[[Connection], Outcome | None]:
        def check(conn: Connection) -> Outcome | None:
            row = conn.execute(_CASE.where(case_record.c.case_id == req.case_id).with_for_update()).first()
            if row is None:
                return Outcome.UNKNOWN_CASE
            if row.receiving_system != consumer:
                if self.citizen.is_citizen_service(consumer):
                    return Outcome.NOT_SENDERS_UPDATE  # 1177 sends the citizen's messages only
                return Outcome.NOT_ALLOWED
            verdict = self._judge(row, req)
            if isinstance(verdict, Refusal):
                return refused(verdict)
            if sequence_refusal(row.last_sequence, req.sequence_number) is not None:
                return Outcome.STALE
            if redirect is not None:
                try:
                    redirect.decision = self.routing.table.resolve(
                        self.register_namespace, redirect.unit, datetime.now(UTC)
                    )
                except DecisionError:
                    return Outcome.UNROUTABLE_REDIRECT
            return None

        return check

    def after_update(
        self,
        req: updatecase.UpdateCase,
        decision: Decision,
        correlation_id: str,
        consumer: str,
        logical_address: str,
        redirect: Redirect | None,
    ) -> Callable[[Connection, int, bytes], None]:
        def then(conn: Connection, inbox_id: int, payload: bytes) -> None:
            now = datetime.now(UTC)
            current = conn.execute(_CASE.where(case_record.c.case_id == req.case_id)).one()
            verdict = self._judge(current, req)
            assert not isinstance(verdict, Refusal), "check_update refuses what judge refuses"
            values: dict[str, object] = {
                "last_sequence": req.sequence_number,
                "updated_at": now,
                "version": case_record.c.version + 1,
                "status": verdict.status,
                "open_question": verdict.open_question,
                "handler_turn_since": (current.handler_turn_since or now) if verdict.handler_turn else None,
            }
            kind = req.update_type
            if kind == "UNIT_CORRECTED":
                corrected = _corrected_unit(req, current.handling_unit)
                if corrected is not None:  # the board stays the handling unit
                    values["concerned_unit"] = corrected
            elif req.handling_unit is not None:
                values["handling_unit"] = req.handling_unit.unit_id
            if kind == "REDIRECTED" and req.handling_unit is not None:
                values["recipient_type"] = self._recipient_type(req.handling_unit.unit_id)
            if kind in ("IN_PROGRESS", "QUESTION") and req.attachments_allowed is not None:
                values["attachments_allowed"] = req.attachments_allowed  # the latest value holds
            if req.closed_at and current.closed_at is None:  # closedAt is set once
                values["closed_at"] = local(req.closed_at)
            for field in updatecase.STATISTICS_FIELDS:
                cv = req.statistics.get(field)
                if cv is not None:
                    values[_STATISTICS_COLUMNS[field]] = cv.code
            new_route = redirect.decision if redirect is not None else None
            if new_route is not None and (
                new_route.target == current.route_target
                or (not new_route.internal and _receiver(new_route) == current.receiving_system)
            ):
                # another unit of the same system (also of the system that registered a case started
                # outside 1177, which it already has): nothing to deliver
                new_route = None
            received: NewMessage | None = None
            if new_route is not None:
                values.update(
                    route_target=new_route.target,
                    receiving_system=_receiver(new_route),
                    routing_version=self.routing.table.version,
                    # the new system numbers its updates of the case from 1 (contracts.md)
                    last_sequence=None,
                )
                if new_route.internal and req.handling_unit is not None:
                    received = self._desk_confirmation(req.case_id, req.handling_unit, now, correlation_id)
                    values["handler_turn_since"] = now
                    if received is not None:
                        values.update(status="RECEIVED", last_sequence=1, open_question=None)
            conn.execute(update(case_record).where(case_record.c.case_id == req.case_id).values(**values))
            if not decision.internal:
                self._send(
                    conn,
                    req.case_id,
                    "UpdateCase",
                    decision.target,
                    logical_address,
                    payload,
                    correlation_id,
                    f"UpdateCase:{req.message_id}",
                    consumer,
                )
            if received is not None:
                enqueue(conn, received, self.clock())
            if new_route is not None and not new_route.internal and redirect is not None:
                self._redeliver(conn, req, redirect.unit, new_route, correlation_id, consumer, inbox_id)

        return then

    def _redeliver(
        self,
        conn: Connection,
        req: updatecase.UpdateCase,
        unit: str,
        route: Decision,
        correlation_id: str,
        consumer: str,
        inbox_id: int,
    ) -> None:
        """Deliver the original case to the system of the unit it was redirected to."""
        original = conn.execute(
            select(inbox_message.c.payload).where(
                inbox_message.c.operation == "RegisterCase", inbox_message.c.case_id == req.case_id
            )
        ).scalar_one()
        name = req.handling_unit.unit_name if req.handling_unit is not None else None
        readdressed = redirected_case(
            bytes(original),
            unit,
            name,
            keep_name=req.handling_unit is None,
            recipient_type=self._recipient_type(unit),
        )
        self._send(
            conn,
            req.case_id,
            "RegisterCase",
            route.target,
            unit,
            readdressed,
            correlation_id,
            f"RegisterCase:{inbox_id}:{route.target}",
            consumer,
        )

    def _recipient_type(self, unit: str) -> str:
        return recipient_type_of(hsa_kind(self.routing.table, unit))


def _unit_snapshot(tree: tuple[HsaNode, ...], unit: Unit) -> dict[str, str | None]:
    """The case record's statistics snapshot of ``unit`` from the routing version's HSA tree."""
    found = snapshot_of(tree, unit.unit_id, unit.unit_name, unit.care_provider_id, unit.region_code)
    return {"unit_name": found.unit_name, "care_provider": found.care_provider, "region": found.region}


def _corrected_unit(req: updatecase.UpdateCase, handling_unit: str) -> str | None:
    """The unit a UNIT_CORRECTED corrects: ``concernedUnit``; from an older sender, a ``handlingUnit``
    other than the case's (the same unit names no correction: the update corrects codes only, as the
    desk's CORRECT_STATISTICS does). None for anything else."""
    if req.update_type != "UNIT_CORRECTED":
        return None
    if req.concerned_unit is not None:
        return req.concerned_unit.unit_id
    if req.handling_unit is not None and req.handling_unit.unit_id != handling_unit:
        return req.handling_unit.unit_id
    return None


#: what the handling side's checks read of a case
_CASE = select(
    case_record.c.receiving_system,
    case_record.c.last_sequence,
    case_record.c.status,
    case_record.c.open_question,
    case_record.c.attachments_allowed,
    case_record.c.recipient_type,
    case_record.c.handling_unit,
    case_record.c.route_target,
    case_record.c.handler_turn_since,
    case_record.c.closed_at,
)

_STATISTICS_COLUMNS = {
    "mainProblem": "main_problem",
    "subProblem": "sub_problem",
    "experiencedProblem": "experienced_problem",
    "businessArea": "business_area",
}
