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
from gateway.cases.state import content_refusal
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


#: XML whitespace, which xs:base64Binary allows between characters (line breaks, mostly)
_XML_SPACE = b" \t\r\n"
_BASE64_OR_SPACE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" + _XML_SPACE
#: base64 characters that decode to the longest file signature (contracts.attachments, 8 bytes)
_MAGIC_CHARS = 12


def _base64_size(text: bytes) -> int | None:
    """The decoded size of base64 ``text`` (XML whitespace allowed anywhere); None if it is not base64.

    As strict as ``binascii.a2b_base64(..., strict_mode=True)`` on the text without whitespace (alphabet
    characters, padding only at the end, whole quanta) but without decoding: at 20 MB, decoding took three
    times as long as this check and made a copy of the content.
    """
    padding = text.translate(None, _BASE64_OR_SPACE)  # what is neither alphabet nor whitespace
    if padding not in (b"", b"=", b"==") or b"=" in text.rstrip(_XML_SPACE + b"="):
        return None
    # line feeds are common; the other whitespace is looked for first (a quick scan) and counted if found
    spaces = text.count(b"\n") + sum(text.count(c) for c in (b" ", b"\t", b"\r") if c in text)
    characters = len(text) - spaces
    if characters % 4:
        return None
    return characters // 4 * 3 - len(padding)


def _leading_bytes(text: bytes) -> bytes:
    """The first decoded bytes of valid base64 ``text``: enough to compare with a file signature."""
    head = b""
    for end in (256, len(text)):  # a short prefix is enough unless the text is wrapped very narrowly
        head = text[:end].translate(None, _XML_SPACE)
        if len(head) >= _MAGIC_CHARS:
            break
    return binascii.a2b_base64(head[:_MAGIC_CHARS])  # whole quanta: 12 characters, or all of a short text


def _check_attachments(attachments: Iterable[Attachment], max_bytes: int) -> None:
    """Ids unique; each attachment's decoded size within ``max_bytes``, non-empty, strict base64, of its type.

    The text of an attachment is copied twice (str, then ASCII bytes) and never decoded whole: at 20 MB an
    attachment's temporaries decide the peak memory and time of a request more than its tree does.
    """
    seen: set[str] = set()
    for index, attachment in enumerate(attachments, start=1):
        if attachment.attachment_id in seen:
            raise RuleViolation("DUPLICATE_ATTACHMENT_ID", f"attachment {index}: attachmentId is repeated")
        seen.add(attachment.attachment_id)
        try:
            text = (attachment.data_element.text or "").encode("ascii")
        except UnicodeEncodeError:
            raise InvalidRequestError(f"attachment {index}: data is not valid base64") from None
        # libxml2 skips characters outside the base64 alphabet when it checks xs:base64Binary, so the
        # whole text is checked strictly here (what is stored must decode for whoever reads it later).
        size = _base64_size(text)
        if size is None:
            raise InvalidRequestError(f"attachment {index}: data is not valid base64")
        if size > max_bytes:
            raise RuleViolation(
                "ATTACHMENT_TOO_LARGE", f"attachment {index}: {size} bytes, the limit is {max_bytes} bytes"
            )
        if size == 0:
            raise RuleViolation("ATTACHMENT_EMPTY", f"attachment {index}: no content")
        if not content_matches(attachment.mime_type, _leading_bytes(text)):
            raise RuleViolation(
                "ATTACHMENT_TYPE_MISMATCH", f"attachment {index}: content is not {attachment.mime_type}"
            )


#: the refusals of the state machine and of the citizen direction: (errorCode, rule)
_REFUSALS: dict[Outcome, tuple[str, RuleViolation]] = {
    Outcome.NOT_SENDERS_UPDATE: (
        "NOT_ALLOWED",
        RuleViolation("NOT_SENDERS_UPDATE", "this updateType is not sent by the calling side"),
    ),
    Outcome.NOT_CITIZEN_SERVICE: (
        "NOT_ALLOWED",
        RuleViolation("NOT_CITIZEN_SERVICE", "only 1177 sends CITIZEN_REPLY and SUPPLEMENT"),
    ),
    Outcome.NOT_CASE_UNIT: (
        "INVALID_REQUEST",
        RuleViolation("NOT_CASE_UNIT", "the LogicalAddress is not the case's current handling unit"),
    ),
    Outcome.NO_OPEN_QUESTION: (
        "INVALID_REQUEST",
        RuleViolation("NO_OPEN_QUESTION", "the case has no open question with this messageId to reply to"),
    ),
    Outcome.ATTACHMENTS_NOT_ALLOWED: (
        "INVALID_REQUEST",
        RuleViolation("ATTACHMENTS_NOT_ALLOWED", "the handler has not allowed attachments for this case"),
    ),
    Outcome.NOT_PATIENT_BOARD_CASE: (
        "INVALID_REQUEST",
        RuleViolation("NOT_PATIENT_BOARD_CASE", "UNIT_CORRECTED is only for cases to a patient board"),
    ),
    Outcome.UNKNOWN_UNIT: (
        "INVALID_REQUEST",
        RuleViolation("UNKNOWN_UNIT", "the corrected unit is not a unit of the HSA tree"),
    ),
}


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
        if req.channel != "WEB":
            # a case started outside 1177 is registered at 1177's case service, for the unit that has it
            if ctx.logical_address != self.config.gateway.case_service_address:
                raise RuleViolation(
                    "CHANNEL_ADDRESS",
                    f"a case with channel {req.channel} is addressed to 1177's case service",
                )
        elif req.recipient_unit.unit_id != ctx.logical_address:
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
            self.flow.new_case(
                req,
                decision,
                ctx.correlation_id,
                self._origin(ctx),
                ctx.logical_address,
                caller=ctx.consumer,
            ),
        )
        return self._outcome(ctx, registercase.build_response, outcome, "caseId")

    # -- UpdateCase -----------------------------------------------------------------------------------------
    def _update_rules(self, req: updatecase.UpdateCase) -> None:
        if req.sequence_number > MAX_SEQUENCE:
            raise InvalidRequestError(f"sequenceNumber is above the largest supported value {MAX_SEQUENCE}")
        kind = req.update_type
        if kind in ("PARTIAL_ANSWER", "QUESTION", "ANSWER") and not (req.message_text or "").strip():
            raise RuleViolation("MESSAGE_REQUIRED", f"updateType {kind} needs message/text")
        refusal = content_refusal(kind, bool((req.message_text or "").strip()), len(req.attachments))
        if refusal is not None:
            if refusal.sub_code == "SUPPLEMENT_EMPTY":
                raise RuleViolation("SUPPLEMENT_EMPTY", refusal.message)
            raise RuleViolation("MESSAGE_REQUIRED", refusal.message)
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

    def _update_address_rule(self, req: updatecase.UpdateCase, ctx: RequestContext) -> None:
        """The handling side's updates are for 1177: addressed to its case service, never to a unit.

        UpdateCase is routed at the units too (for the citizen's messages, to the case's handling system),
        so an answer addressed to its unit would otherwise be accepted and sent back to its own sender.
        1177 sending such an update is told that its side does not send it (``NOT_SENDERS_UPDATE``).
        """
        if req.update_type in updatecase.CITIZEN_UPDATE_TYPES:
            return
        if self.flow.citizen.is_citizen_service(ctx.consumer):
            return
        logical_address = ctx.logical_address
        if logical_address != self.config.gateway.case_service_address:
            raise RuleViolation(
                "NOT_CASE_SERVICE",
                f"updateType {req.update_type} is addressed to 1177's case service, not to a unit",
            )

    def update_case(self, ctx: RequestContext) -> etree._Element | bytes:
        decision = self.route(ctx)
        req = updatecase.parse(ctx.payload)
        ctx.facts["caseId"] = req.case_id
        ctx.facts["messageId"] = req.message_id
        try:
            self._update_rules(req)
            self._update_address_rule(req, ctx)
        except RuleViolation as rule:
            return self._error(ctx, updatecase.build_response, "INVALID_REQUEST", rule)
        redirect = (
            Redirect(req.handling_unit.unit_id)
            if req.update_type == "REDIRECTED" and req.handling_unit is not None
            else None
        )
        if req.update_type in updatecase.CITIZEN_UPDATE_TYPES:
            citizen = self.flow.citizen
            check = citizen.check(req, ctx.consumer, ctx.logical_address)
            then = citizen.then(req, decision, ctx.correlation_id, self._origin(ctx), ctx.logical_address)
        else:
            check = self.flow.check_update(req, ctx.consumer, redirect)
            then = self.flow.after_update(
                req,
                decision,
                ctx.correlation_id,
                self._origin(ctx),
                ctx.logical_address,
                redirect,
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
            check=check,
            then=then,
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
        refusal = _REFUSALS.get(outcome)
        if refusal is not None:
            error_code, rule = refusal
            if error_code == "NOT_ALLOWED":
                return self._error(ctx, build, "NOT_ALLOWED", rule)
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
