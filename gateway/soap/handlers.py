"""The contract handlers: RegisterCase, UpdateCase and PingForConfiguration.

A handler receives a request that has already passed the envelope rules, identity and schema validation. It
applies the domain rules of the contract, stores an accepted request in one transaction, and returns the
response element. Rule violations are business results (``ERROR`` + ``errorCode``), never faults; messages
name fields and codes, never free text or personal identity numbers.
"""

from __future__ import annotations

import binascii
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import func, select

from contracts import ping as ping_contract
from contracts import registercase, updatecase
from contracts.attachments import content_matches
from contracts.codelists import CodeLists
from contracts.model import Attachment, Result, parse_date, parse_timestamp
from contracts.registry import Contract, ContractRegistry
from gateway.cases.flow import CaseFlow, Redirect
from gateway.cases.inbox import Inbox, InboxMessage, Outcome
from gateway.config import Config
from gateway.db import ping as db_ping
from gateway.errors import (
    AmbiguousRouteError,
    InvalidRequestError,
    NoRouteError,
    NotAuthorisedError,
    SoapFault,
)
from gateway.soap.envelope import OkEnvelope
from outbox.schema import outbox_message
from routing import AccessDenied, AmbiguousRoute, Decision, RoutingHolder
from routing.errors import DecisionError

__all__ = ["Handlers", "RequestContext"]

log = logging.getLogger("gateway.soap.handlers")
SWEDEN = ZoneInfo("Europe/Stockholm")
MAX_SEQUENCE = 2**63 - 1  # the database column is a signed 64-bit integer


@dataclass
class RequestContext:
    log_id: str
    consumer: str
    logical_address: str
    contract: Contract
    payload: etree._Element
    correlation_id: str
    original_consumer: str | None = None
    #: facts for the request log line (no personal data)
    facts: dict[str, str] = field(default_factory=dict)


class RuleViolation(Exception):
    def __init__(self, sub_code: str, message: str) -> None:
        super().__init__(message)
        self.sub_code = sub_code
        self.message = message


def _timestamp(name: str, value: str) -> datetime:
    try:
        return parse_timestamp(value)
    except ValueError:
        raise RuleViolation("INVALID_TIMESTAMP", f"{name} is not a valid date and time") from None


def _check_attachments(attachments: Iterable[Attachment], max_bytes: int) -> None:
    seen: set[str] = set()
    for index, attachment in enumerate(attachments, start=1):
        if attachment.attachment_id in seen:
            raise RuleViolation("DUPLICATE_ATTACHMENT_ID", f"attachment {index}: attachmentId is repeated")
        seen.add(attachment.attachment_id)
        size = attachment.decoded_size()
        if size > max_bytes:
            raise RuleViolation(
                "ATTACHMENT_TOO_LARGE", f"attachment {index}: {size} bytes, the limit is {max_bytes} bytes"
            )
        if size == 0:
            raise RuleViolation("ATTACHMENT_EMPTY", f"attachment {index}: no content")
        # libxml2 skips characters outside the base64 alphabet when it checks xs:base64Binary, so the
        # whole content is decoded strictly here (what is stored must decode for whoever reads it later).
        try:
            content = binascii.a2b_base64(
                "".join((attachment.data_element.text or "").split()), strict_mode=True
            )
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f"attachment {index}: data is not valid base64") from None
        if not content_matches(attachment.mime_type, content):
            raise RuleViolation(
                "ATTACHMENT_TYPE_MISMATCH", f"attachment {index}: content is not {attachment.mime_type}"
            )


class Handlers:
    """Maps operation names to handler methods; built once per process from the configuration."""

    def __init__(
        self,
        config: Config,
        registry: ContractRegistry,
        inbox: Inbox,
        code_lists: CodeLists,
        version: str,
        routing: RoutingHolder,
        now: Callable[[], datetime] = lambda: datetime.now(SWEDEN),
    ) -> None:
        self.config = config
        self.registry = registry
        self.inbox = inbox
        self.code_lists = code_lists
        self.version = version
        self.routing = routing
        self.now = now
        self.flow = CaseFlow(
            routing,
            registry.by_operation("RegisterCase").responder_namespace,
            case_service_address=config.gateway.case_service_address,
        )
        # the OK answer of each contract, serialised once (most requests get it)
        self._ok: dict[Callable[[Result], etree._Element], OkEnvelope] = {
            build: OkEnvelope(build) for build in (registercase.build_response, updatecase.build_response)
        }
        self.by_operation: dict[str, Callable[[RequestContext], etree._Element | bytes]] = {
            "RegisterCase": self.register_case,
            "UpdateCase": self.update_case,
            "PingForConfiguration": self.ping,
        }

    # -- routing and access -----------------------------------------------------------------------------
    def route(self, ctx: RequestContext) -> Decision:
        """Access check, then route resolution, on the active catalogue version; faults carry the trace."""
        table = self.routing.table
        contract = ctx.contract.responder_namespace
        now = datetime.now(UTC)
        ctx.facts["routingVersion"] = str(table.version)
        operation, address = ctx.contract.operation, ctx.logical_address
        try:
            access = table.authorize(ctx.consumer, contract, address, now)
            decision = table.resolve(contract, address, now)
        except DecisionError as exc:
            ctx.facts["trace"] = trace = " | ".join(exc.trace)
            fault: type[SoapFault]
            if isinstance(exc, AccessDenied):
                fault, text = (
                    NotAuthorisedError,
                    f"{ctx.consumer} is not authorised to call {operation} at {address}",
                )
            elif isinstance(exc, AmbiguousRoute):
                fault, text = AmbiguousRouteError, f"More than one route for {operation} at {address}"
            else:
                fault, text = NoRouteError, f"No route for {operation} at {address}"
            raise fault(text, detail=trace) from None
        ctx.facts["route"] = decision.target
        ctx.facts["trace"] = " | ".join(access + decision.trace)
        return decision

    # -- RegisterCase ---------------------------------------------------------------------------------------
    def _register_rules(self, req: registercase.RegisterCase, ctx: RequestContext) -> None:
        if req.recipient_unit.unit_id != ctx.logical_address:
            raise RuleViolation("RECIPIENT_MISMATCH", "recipient/unit/unitId must equal the LogicalAddress")
        incident = req.incident
        location = (incident.location_description or "").strip()
        if req.recipient_type == "PATIENT_BOARD":
            if incident.concerned_unit is None and not location:
                raise RuleViolation(
                    "LOCATION_REQUIRED",
                    "a patient-board case without incident/concernedUnit needs incident/locationDescription",
                )
        elif incident.location_description is not None:
            raise RuleViolation(
                "LOCATION_NOT_ALLOWED", "incident/locationDescription is only for cases to a patient board"
            )
        submitted = _timestamp("submittedAt", req.submitted_at)
        try:
            event = parse_date(incident.event_date)
        except ValueError:
            raise RuleViolation("INVALID_DATE", "incident/eventDate is not a valid date") from None
        if event > submitted.date():
            raise RuleViolation("EVENT_AFTER_SUBMISSION", "incident/eventDate is after submittedAt")
        problems = self.code_lists.check(req.codes())
        if problems:
            raise RuleViolation("INVALID_CODE", "; ".join(problems))
        _check_attachments(req.attachments, self.config.soap.max_attachment_bytes)

    def register_case(self, ctx: RequestContext) -> etree._Element | bytes:
        decision = self.route(ctx)
        req = registercase.parse(ctx.payload)
        ctx.facts["caseId"] = req.case_id
        try:
            self._register_rules(req, ctx)
        except RuleViolation as rule:
            return self._error(ctx, registercase.build_response, "INVALID_REQUEST", rule)
        outcome = self.inbox.register(
            InboxMessage(
                operation="RegisterCase",
                idempotency_key=req.case_id,
                case_id=req.case_id,
                logical_address=ctx.logical_address,
                consumer_hsa_id=ctx.consumer,
                original_consumer_hsa_id=ctx.original_consumer,
                correlation_id=ctx.correlation_id,
                log_id=ctx.log_id,
                payload=ctx.payload,
                route_target=decision.target,
                route_address=decision.matched_address,
                routing_version=self.routing.table.version,
            ),
            self.flow.new_case(req, decision, ctx.correlation_id, self._origin(ctx), ctx.logical_address),
        )
        return self._outcome(ctx, registercase.build_response, outcome, "caseId")

    # -- UpdateCase -----------------------------------------------------------------------------------------
    def _update_rules(self, req: updatecase.UpdateCase) -> None:
        if req.sequence_number > MAX_SEQUENCE:
            raise InvalidRequestError(f"sequenceNumber is above the largest supported value {MAX_SEQUENCE}")
        kind = req.update_type
        if kind in ("PARTIAL_ANSWER", "QUESTION", "ANSWER") and not (req.message_text or "").strip():
            raise RuleViolation("MESSAGE_REQUIRED", f"updateType {kind} needs message/text")
        if kind in ("REDIRECTED", "UNIT_CORRECTED") and req.handling_unit is None:
            raise RuleViolation("HANDLING_UNIT_REQUIRED", f"updateType {kind} needs handlingUnit")
        if kind == "CLOSED" and req.closed_at is None:
            raise RuleViolation("CLOSED_AT_REQUIRED", "updateType CLOSED needs closedAt")
        if kind != "CLOSED" and req.closed_at is not None:
            raise RuleViolation("CLOSED_AT_NOT_ALLOWED", "closedAt is only for updateType CLOSED")
        _timestamp("createdAt", req.created_at)
        if req.closed_at is not None:
            _timestamp("closedAt", req.closed_at)
        problems = self.code_lists.check(req.codes())
        if problems:
            raise RuleViolation("INVALID_CODE", "; ".join(problems))
        _check_attachments(req.attachments, self.config.soap.max_attachment_bytes)

    def update_case(self, ctx: RequestContext) -> etree._Element | bytes:
        decision = self.route(ctx)
        req = updatecase.parse(ctx.payload)
        ctx.facts["caseId"] = req.case_id
        ctx.facts["messageId"] = req.message_id
        try:
            self._update_rules(req)
        except RuleViolation as rule:
            return self._error(ctx, updatecase.build_response, "INVALID_REQUEST", rule)
        redirect = (
            Redirect(req.handling_unit.unit_id)
            if req.update_type == "REDIRECTED" and req.handling_unit is not None
            else None
        )
        outcome = self.inbox.accept(
            InboxMessage(
                operation="UpdateCase",
                idempotency_key=req.message_id,
                case_id=req.case_id,
                message_id=req.message_id,
                sequence_number=req.sequence_number,
                logical_address=ctx.logical_address,
                consumer_hsa_id=ctx.consumer,
                original_consumer_hsa_id=ctx.original_consumer,
                correlation_id=ctx.correlation_id,
                log_id=ctx.log_id,
                payload=ctx.payload,
                route_target=decision.target,
                route_address=decision.matched_address,
                routing_version=self.routing.table.version,
            ),
            check=self.flow.check_update(req, ctx.consumer, redirect),
            then=self.flow.after_update(
                req,
                decision,
                ctx.correlation_id,
                self._origin(ctx),
                ctx.logical_address,
                redirect,
            ),
        )
        return self._outcome(ctx, updatecase.build_response, outcome, "messageId")

    # -- shared -------------------------------------------------------------------------------------------
    def _error(
        self,
        ctx: RequestContext,
        build: Callable[[Result], etree._Element],
        error_code: str,
        rule: RuleViolation,
    ) -> etree._Element:
        ctx.facts.update(resultCode="ERROR", errorCode=error_code, subCode=rule.sub_code)
        return build(Result.error(error_code, ctx.log_id, rule.message, rule.sub_code))

    def _outcome(
        self, ctx: RequestContext, build: Callable[[Result], etree._Element], outcome: Outcome, key: str
    ) -> etree._Element | bytes:
        ctx.facts["inbox"] = outcome.value
        if outcome is Outcome.STORED:
            ctx.facts["resultCode"] = "OK"
            return self._ok[build](ctx.log_id)
        if outcome is Outcome.DUPLICATE:
            ctx.facts["resultCode"] = "OK"
            return build(Result.ok(ctx.log_id, f"Already received; this {key} was accepted before"))
        if outcome is Outcome.CONFLICT:
            rule = RuleViolation("ID_REUSED", f"this {key} was received before with other content")
            return self._error(ctx, build, "INVALID_REQUEST", rule)
        if outcome is Outcome.STALE:
            rule = RuleViolation(
                "STALE_SEQUENCE", "sequenceNumber is not above the last accepted for this case"
            )
            return self._error(ctx, build, "INVALID_REQUEST", rule)
        if outcome is Outcome.NOT_ALLOWED:
            rule = RuleViolation("NOT_CASE_RECEIVER", "this case was not routed to the calling system")
            return self._error(ctx, build, "NOT_ALLOWED", rule)
        if outcome is Outcome.CASE_CLOSED:
            rule = RuleViolation("CASE_CLOSED", "the case is closed and takes no further updates")
            return self._error(ctx, build, "INVALID_REQUEST", rule)
        if outcome is Outcome.UNROUTABLE_REDIRECT:
            rule = RuleViolation("REDIRECT_UNROUTABLE", "handlingUnit has no route for RegisterCase")
            return self._error(ctx, build, "INVALID_REQUEST", rule)
        rule = RuleViolation("UNKNOWN_CASE", "no case with this caseId was registered through this gateway")
        return self._error(ctx, build, "NOT_FOUND", rule)

    @staticmethod
    def _origin(ctx: RequestContext) -> str:
        """The consumer named to the receiver: the original one behind a platform, else the caller."""
        return ctx.original_consumer or ctx.consumer

    def _backlog(self) -> str:
        """Messages waiting for delivery (pending or in flight): one count on a partial index."""
        with self.inbox.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(outbox_message)
                .where(outbox_message.c.status.in_(("pending", "inflight")))
            ).scalar_one()
        return str(count)

    # -- PingForConfiguration -----------------------------------------------------------------------------
    def ping(self, ctx: RequestContext) -> etree._Element:
        req = ping_contract.parse(ctx.payload)
        database_ok = db_ping(self.inbox.engine)
        known = {c.request.namespace for c in self.registry.contracts()}
        configuration = [
            ("ready", "true" if database_ok and self.routing.table.version > 0 else "false"),
            ("database", "ok" if database_ok else "unreachable"),
            ("contracts", ",".join(sorted(c.operation for c in self.registry.contracts()))),
            ("serviceContractKnown", "true" if req.service_contract_namespace in known else "false"),
            ("routingVersion", str(self.routing.table.version)),
            ("routingHash", self.routing.table.content_hash[:12] or "none"),
            ("routingSource", self.routing.source),
            ("process", str(os.getpid())),
            ("outboxBacklog", self._backlog() if database_ok else "unknown"),
        ]
        return ping_contract.build_response(self.version, self.now().strftime("%Y%m%d%H%M%S"), configuration)
