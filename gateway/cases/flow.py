"""What an accepted request sets in motion, inside the transaction that stores it.

RegisterCase: a case record, and an outbox message to the receiving system (unless the unit is handled in
the gateway's own case desk). UpdateCase: only from the system the case was routed to; it updates the case
record and queues the update for 1177; ``REDIRECTED`` to a unit handled elsewhere moves the case and
delivers it to its new receiver. Either all of it is committed with the inbox row, or none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree
from sqlalchemy import Connection, select, update

from contracts import registercase, updatecase
from contracts.model import parse_date
from gateway.cases.inbox import NewCase, Outcome, inbox_message
from gateway.cases.records import STATUS_BY_UPDATE, age_at, case_record, local
from outbox import NewMessage, enqueue, now_ms
from routing import Decision, RoutingHolder
from routing.errors import DecisionError

__all__ = ["CaseFlow", "Redirect"]


def _payload_bytes(payload: etree._Element) -> bytes:
    return bytes(etree.tostring(payload, encoding="UTF-8", xml_declaration=False))


def _receiver(decision: Decision) -> str:
    return decision.endpoint.component if decision.endpoint is not None else "internal"


@dataclass
class Redirect:
    unit: str
    decision: Decision | None = None


class CaseFlow:
    def __init__(
        self, routing: RoutingHolder, register_namespace: str, clock: Callable[[], int] = now_ms
    ) -> None:
        self.routing = routing
        self.register_namespace = register_namespace
        self.clock = clock

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
        consumer: str,
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

    # -- RegisterCase ---------------------------------------------------------------------------------------
    def new_case(
        self,
        req: registercase.RegisterCase,
        decision: Decision,
        correlation_id: str,
        consumer: str,
        logical_address: str,
    ) -> NewCase:
        """The case record of a new case and, unless its unit is handled internally, its first delivery."""
        now = datetime.now(UTC)
        submitted = local(req.submitted_at)
        incident = req.incident
        record = {
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
            "receiving_system": _receiver(decision),
            "routing_version": self.routing.table.version,
            "updated_at": now,
            "closed_at": None,
            "last_sequence": None,
        }
        if decision.internal:
            return NewCase(record)
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
    def check_update(
        self, req: updatecase.UpdateCase, consumer: str, redirect: Redirect | None
    ) -> Callable[[Connection], Outcome | None]:
        def check(conn: Connection) -> Outcome | None:
            row = conn.execute(
                select(case_record.c.receiving_system, case_record.c.last_sequence)
                .where(case_record.c.case_id == req.case_id)
                .with_for_update()
            ).first()
            if row is None:
                return Outcome.UNKNOWN_CASE
            if row.receiving_system != consumer:
                return Outcome.NOT_ALLOWED
            if row.last_sequence is not None and req.sequence_number <= row.last_sequence:
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
            values: dict[str, object] = {"last_sequence": req.sequence_number, "updated_at": now}
            status = STATUS_BY_UPDATE.get(req.update_type)
            if status:
                values["status"] = status
            if req.handling_unit is not None:
                values["handling_unit"] = req.handling_unit.unit_id
            if req.closed_at:
                values["closed_at"] = local(req.closed_at)
            for field, column in (
                ("mainProblem", "main_problem"),
                ("subProblem", "sub_problem"),
                ("experiencedProblem", "experienced_problem"),
                ("businessArea", "business_area"),
            ):
                cv = req.statistics.get(field)
                if cv is not None:
                    values[column] = cv.code
            moved = redirect is not None and redirect.decision is not None
            current = conn.execute(
                select(case_record.c.route_target).where(case_record.c.case_id == req.case_id)
            ).scalar_one()
            if moved and redirect is not None and redirect.decision is not None:
                moved = redirect.decision.target != current
                if moved:
                    values.update(
                        route_target=redirect.decision.target,
                        receiving_system=_receiver(redirect.decision),
                        routing_version=self.routing.table.version,
                    )
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
            if (
                moved
                and redirect is not None
                and redirect.decision is not None
                and not redirect.decision.internal
            ):
                self._redeliver(conn, req, redirect, correlation_id, consumer, inbox_id)

        return then

    def _redeliver(
        self,
        conn: Connection,
        req: updatecase.UpdateCase,
        redirect: Redirect,
        correlation_id: str,
        consumer: str,
        inbox_id: int,
    ) -> None:
        """Deliver the original case to the system of the unit it was redirected to."""
        assert redirect.decision is not None
        original = conn.execute(
            select(inbox_message.c.payload).where(
                inbox_message.c.operation == "RegisterCase", inbox_message.c.case_id == req.case_id
            )
        ).scalar_one()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
        case = etree.fromstring(bytes(original), parser)
        unit_id = case.find(f"{{{registercase.NAMESPACE}}}recipient/{{*}}unit/{{*}}unitId")
        if unit_id is not None:
            unit_id.text = redirect.unit
        name = case.find(f"{{{registercase.NAMESPACE}}}recipient/{{*}}unit/{{*}}unitName")
        if name is not None and req.handling_unit is not None:
            if req.handling_unit.unit_name:
                name.text = req.handling_unit.unit_name
            else:
                name.getparent().remove(name)
        self._send(
            conn,
            req.case_id,
            "RegisterCase",
            redirect.decision.target,
            redirect.unit,
            _payload_bytes(case),
            correlation_id,
            f"RegisterCase:{inbox_id}:{redirect.decision.target}",
            consumer,
        )
