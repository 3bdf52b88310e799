"""UpdateCase messages the gateway writes itself, for the cases handled in its case desk, to 1177.

When a case lands in the desk (a new case to a desk unit, or a redirect into one) the desk confirms it with
RECEIVED at once, and every desk action is an UpdateCase as well. They all go where an integrated system's
UpdateCase goes: the route of the UpdateCase contract at ``gateway.case_service_address``, through the
outbox, in the case's stream (so they leave in order with everything else of the case).

Used by ``gateway.cases.flow`` (the SOAP path) and ``gateway.desk``; it never touches the database itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lxml import etree

from contracts import updatecase
from contracts.model import Unit
from outbox import NewMessage
from routing import Decision, RoutingHolder
from routing.errors import DecisionError

__all__ = ["SWEDEN", "CaseService", "contract_timestamp", "payload_bytes", "received_update"]

SWEDEN = ZoneInfo("Europe/Stockholm")


def contract_timestamp(moment: datetime) -> str:
    """``YYYYMMDDhhmmss`` in Swedish local time (the contracts' TimeStampType)."""
    return moment.astimezone(SWEDEN).strftime("%Y%m%d%H%M%S")


def payload_bytes(payload: etree._Element) -> bytes:
    return bytes(etree.tostring(payload, encoding="UTF-8", xml_declaration=False))


class CaseService:
    """1177's case service as the destination of the desk's UpdateCase messages."""

    def __init__(self, routing: RoutingHolder, address: str) -> None:
        self.routing = routing
        self.address = address

    def route(self, now: datetime | None = None) -> Decision | None:
        """The route of UpdateCase at the case service's address; None when there is none to an endpoint
        (no route, several, or ``internal``: nothing to deliver to)."""
        try:
            moment = now or datetime.now(UTC)
            decision = self.routing.table.resolve(updatecase.NAMESPACE, self.address, moment)
        except DecisionError:
            return None
        return None if decision.internal else decision

    def citizen_service(self, now: datetime | None = None) -> str | None:
        """Who 1177 is: the component (HSA-id) of the endpoint that UpdateCase at the case service address
        routes to; None when there is no such route. Only it may send the citizen's messages."""
        decision = self.route(now)
        return decision.endpoint.component if decision is not None and decision.endpoint else None

    def message(
        self,
        decision: Decision,
        case_id: str,
        message_id: str,
        payload: bytes,
        correlation_id: str | None = None,
    ) -> NewMessage:
        return NewMessage(
            case_id,
            "UpdateCase",
            decision.target,
            self.address,
            payload,
            correlation_id or str(uuid.uuid4()),
            f"UpdateCase:{message_id}",
            None,  # sent by the gateway's own desk: no other consumer behind it
        )


def received_update(
    case_id: str, sequence_number: int, unit: Unit, now: datetime, message_id: str | None = None
) -> tuple[str, bytes]:
    """(messageId, payload) of the RECEIVED update that confirms a case landed in the desk."""
    message_id = message_id or str(uuid.uuid4())
    payload = updatecase.build_request(
        case_id=case_id,
        message_id=message_id,
        sequence_number=sequence_number,
        update_type="RECEIVED",
        created_at=contract_timestamp(now),
        handling_unit=unit,
    )
    return message_id, payload_bytes(payload)
