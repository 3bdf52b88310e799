"""The citizen's messages from 1177 to the case's handling system: CITIZEN_REPLY and SUPPLEMENT.

An UpdateCase of these types travels the other way from every other update: 1177 sends it, addressed to
the case's current handling unit, and the catalogue routes it (UpdateCase at that unit) to the handling
system's endpoint, or ``internal`` for a case handled in the desk. Only 1177 may send them: 1177 is the
component of the endpoint that UpdateCase at ``gateway.case_service_address`` routes to
(``CaseService.citizen_service``); no other configuration names it.

What is accepted is stored in the inbox, sets the case's state (a reply answers the open question and
gives the turn back to the handler) and 1177's own sequence number (``citizen_sequence``: numbers are per
case and sender), and is queued in the case's outbox stream (so it leaves in order with everything else of
the case). A case in the desk gets no delivery: the desk's timeline shows the message from its inbox row.
Every refusal leaves nothing stored. This module never decides what a refusal answers on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from contracts import updatecase
from gateway.cases.inbox import Outcome
from gateway.cases.outgoing import CaseService
from gateway.cases.records import case_record, state_of
from gateway.cases.state import Refusal, Sender, Transition, judge, sequence_refusal
from outbox import NewMessage, enqueue
from routing import Decision, RoutingHolder

__all__ = ["CitizenFlow", "refused"]

_CASE = select(
    case_record.c.receiving_system,
    case_record.c.citizen_sequence,
    case_record.c.status,
    case_record.c.open_question,
    case_record.c.attachments_allowed,
    case_record.c.recipient_type,
    case_record.c.handling_unit,
    case_record.c.handler_turn_since,
)


def refused(refusal: Refusal) -> Outcome:
    """The inbox outcome of a refusal of the state machine (the outcome's name is the subCode)."""
    return Outcome[refusal.sub_code]


class CitizenFlow:
    def __init__(
        self, routing: RoutingHolder, case_service: CaseService | None, clock: Callable[[], int]
    ) -> None:
        self.routing = routing
        self.case_service = case_service
        self.clock = clock

    def is_citizen_service(self, consumer: str) -> bool:
        """True when ``consumer`` is 1177 (see the module's docstring)."""
        service = self.case_service.citizen_service() if self.case_service is not None else None
        return service is not None and service == consumer

    def _judge(self, row: object, req: updatecase.UpdateCase) -> Transition | Refusal:
        return judge(
            state_of(row, self.routing.table),
            req.update_type,
            Sender.CITIZEN,
            message_id=req.message_id,
            in_reply_to=req.in_reply_to,
            attachments=len(req.attachments),
        )

    def check(
        self, req: updatecase.UpdateCase, consumer: str, logical_address: str
    ) -> Callable[[Connection], Outcome | None]:
        def check(conn: Connection) -> Outcome | None:
            row = conn.execute(_CASE.where(case_record.c.case_id == req.case_id).with_for_update()).first()
            if row is None:
                return Outcome.UNKNOWN_CASE
            if not self.is_citizen_service(consumer):
                # the handling system sends the handler's updates only; anyone else is not 1177
                if consumer == row.receiving_system:
                    return Outcome.NOT_SENDERS_UPDATE
                return Outcome.NOT_CITIZEN_SERVICE
            if logical_address != row.handling_unit:
                return Outcome.NOT_CASE_UNIT
            verdict = self._judge(row, req)
            if isinstance(verdict, Refusal):
                return refused(verdict)
            if sequence_refusal(row.citizen_sequence, req.sequence_number) is not None:
                return Outcome.STALE
            return None

        return check

    def then(
        self,
        req: updatecase.UpdateCase,
        decision: Decision,
        correlation_id: str,
        consumer: str,
        logical_address: str,
    ) -> Callable[[Connection, int, bytes], None]:
        def then(conn: Connection, inbox_id: int, payload: bytes) -> None:
            now = datetime.now(UTC)
            current = conn.execute(_CASE.where(case_record.c.case_id == req.case_id)).one()
            verdict = self._judge(current, req)
            assert not isinstance(verdict, Refusal), "check refuses what judge refuses"
            turn = (current.handler_turn_since or now) if verdict.handler_turn else None
            conn.execute(
                update(case_record)
                .where(case_record.c.case_id == req.case_id)
                .values(
                    citizen_sequence=req.sequence_number,
                    status=verdict.status,
                    open_question=verdict.open_question,
                    handler_turn_since=turn,
                    updated_at=now,
                    version=case_record.c.version + 1,
                )
            )
            if decision.internal:
                return  # the desk shows it from the inbox row
            message = NewMessage(
                req.case_id,
                "UpdateCase",
                decision.target,
                logical_address,
                payload,
                correlation_id,
                f"UpdateCase:{req.message_id}",
                consumer,
            )
            enqueue(conn, message, self.clock())

        return then
