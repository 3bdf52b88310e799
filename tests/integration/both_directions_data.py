"""Data of the both-directions wire tests (issue 15): routing catalogue, request builders, refusal rows.

The catalogue is the tests' own (not examples/routing.yaml), so it says everything the flows need:
1177 may call both contracts anywhere; UpdateCase is routed at 1177's case service address (to 1177's
receiver: that makes SE5565594230-1177 "1177") and at every unit (to the unit's handling system, or the
desk); RegisterCase at the case service address goes to 1177 as well (cases started by phone). The two
regional systems may send UpdateCase to the case service, and the first may register cases there; the extra
permissions below exist only so that a refusal is reached by the rules rather than by the access check.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from sqlalchemy import create_engine, func, select

from contracts import registercase, updatecase
from contracts.db import metadata
from gateway.cases.inbox import inbox_message
from gateway.cases.records import case_record
from outbox.schema import outbox_message
from tests.integration.receivers import ReceiverProcess

CASE_SERVICE = "SE5565594230-CAF1"
CITIZEN_SERVICE = "SE5565594230-1177"  # 1177's HSA-id (the component of its case service endpoint)
SYSTEM_A = "SE2321000016-DEV1"  # deviation-a: care units
SYSTEM_B = "SE2321000016-DEV2"  # deviation-b: the patient board
UNIT = "SE2321000016-7Q6X"  # care unit handled by system A
UNIT_NAME = "Vårdcentralen Exempel"
BOARD = "SE2321000016-PN01"  # patient board handled by system B
DESK_UNIT = "SE2321000016-9K2M"  # care unit handled in the gateway's case desk
CARE_PROVIDER = "SE2321000016-VG01"
UNKNOWN_UNIT = "SE2321000016-ZZZZ"  # in no HSA tree
HANDLER = "SE2321000016-HND1"  # the demo handler's personal certificate (pki client "handler")
#: pki client name -> HSA-id
CALLERS = {"1177": CITIZEN_SERVICE, "deviation-a": SYSTEM_A, "deviation-b": SYSTEM_B}
RC, UC = registercase.NAMESPACE, updatecase.NAMESPACE
PDF = b"%PDF-1.4\n% komplettering\n%%EOF\n"
LOCATION = "Akutmottagningen, entrén"


def catalogue(workdir: Path, receivers: dict[str, ReceiverProcess]) -> Path:
    """The catalogue as YAML in ``workdir``, its endpoints pointed at ``receivers`` (by name)."""

    def endpoint(name: str, component: str, receiver: str, operation: str) -> dict[str, Any]:
        return {
            "name": name,
            "component": component,
            "url": receivers[receiver].url(operation),
            "profile": "rivtabp21",
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "verify_hostname": True,
        }

    data: dict[str, Any] = {
        "components": [
            {"hsa_id": CITIZEN_SERVICE, "description": "1177"},
            {"hsa_id": SYSTEM_A, "description": "system A (care units)"},
            {"hsa_id": SYSTEM_B, "description": "system B (patient board)"},
        ],
        "contracts": [
            {"namespace": RC, "name": "RegisterCase", "hsa_climb": True},
            {"namespace": UC, "name": "UpdateCase", "hsa_climb": False},
        ],
        "endpoints": [
            endpoint("1177-case-service", CITIZEN_SERVICE, "1177", "UpdateCase"),
            endpoint("1177-register", CITIZEN_SERVICE, "1177", "RegisterCase"),
            endpoint("deviation-a", SYSTEM_A, "deviation-a", "RegisterCase"),
            endpoint("deviation-a-update", SYSTEM_A, "deviation-a", "UpdateCase"),
            endpoint("deviation-b", SYSTEM_B, "deviation-b", "RegisterCase"),
            endpoint("deviation-b-update", SYSTEM_B, "deviation-b", "UpdateCase"),
        ],
        "addresses": [
            {"address": a} for a in (UNIT, BOARD, DESK_UNIT, CARE_PROVIDER, CASE_SERVICE, UNKNOWN_UNIT)
        ],
        "hsa": [
            {"hsa_id": "SE2321000016-R001", "kind": "region", "name": "Region Exempel", "parent": "SE"},
            {
                "hsa_id": CARE_PROVIDER,
                "kind": "care-provider",
                "name": "Region Exempel vård",
                "parent": "SE2321000016-R001",
            },
            {"hsa_id": UNIT, "kind": "unit", "name": UNIT_NAME, "parent": CARE_PROVIDER},
            {"hsa_id": DESK_UNIT, "kind": "unit", "name": "Vårdcentralen Desk", "parent": CARE_PROVIDER},
            {
                "hsa_id": BOARD,
                "kind": "patient-board",
                "name": "Patientnämnden Region Exempel",
                "parent": "SE2321000016-R001",
            },
        ],
        "routes": [
            {"contract": RC, "address": UNIT, "target": "deviation-a"},
            {"contract": RC, "address": BOARD, "target": "deviation-b"},
            {"contract": RC, "address": DESK_UNIT, "target": "internal"},
            {"contract": RC, "address": CASE_SERVICE, "target": "1177-register"},
            {"contract": UC, "address": CASE_SERVICE, "target": "1177-case-service"},
            {"contract": UC, "address": UNIT, "target": "deviation-a-update"},
            {"contract": UC, "address": BOARD, "target": "deviation-b-update"},
            {"contract": UC, "address": DESK_UNIT, "target": "internal"},
        ],
        "permissions": [
            {"consumer": CITIZEN_SERVICE, "contract": RC, "address": "*"},
            {"consumer": CITIZEN_SERVICE, "contract": UC, "address": "*"},
            {"consumer": SYSTEM_A, "contract": UC, "address": CASE_SERVICE},
            {"consumer": SYSTEM_B, "contract": UC, "address": CASE_SERVICE},
            {"consumer": SYSTEM_A, "contract": RC, "address": CASE_SERVICE},
            # only so that these refusals come from the rules, not from the access check
            {"consumer": SYSTEM_A, "contract": RC, "address": UNIT},
            {"consumer": SYSTEM_B, "contract": UC, "address": UNIT},
            {"consumer": SYSTEM_A, "contract": UC, "address": UNIT},
        ],
    }
    path = workdir / "both-directions-routing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


# -- requests ---------------------------------------------------------------------------------------------
_RC = "{" + RC + "}"
_CORE = "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:1}"


def register_payload(
    example: Path,
    case_id: str,
    unit: str,
    *,
    recipient_type: str = "CARE_UNIT",
    location: str | None = None,
    channel: str | None = None,
    power_of_attorney: dict[str, str] | None = None,
) -> etree._Element:
    """The example RegisterCase readdressed to ``unit``, with the optional parts of issue 15."""
    payload = etree.parse(str(example)).getroot()
    payload.find(_RC + "caseId").text = case_id  # type: ignore[union-attr]
    payload.find(f"{_RC}recipient/{_CORE}recipientType").text = recipient_type  # type: ignore[union-attr]
    payload.find(f"{_RC}recipient/{_CORE}unit/{_CORE}unitId").text = unit  # type: ignore[union-attr]
    if location is not None:
        description = payload.find(f"{_RC}incident/{_CORE}description")
        assert description is not None
        description.addnext(etree.Element(_CORE + "locationDescription"))
        description.getnext().text = location  # type: ignore[union-attr]
    if power_of_attorney is not None:
        reporter = payload.find(_RC + "reporter")
        assert reporter is not None
        reporter.find(_CORE + "role").text = "REPRESENTATIVE"  # type: ignore[union-attr]
        poa = etree.SubElement(reporter, _CORE + "powerOfAttorney")
        for name in ("kind", "reference", "validUntil"):
            if name in power_of_attorney:
                etree.SubElement(poa, _CORE + name).text = power_of_attorney[name]
    if channel is not None:
        etree.SubElement(payload, _RC + "channel").text = channel
    return payload


def attachment(name: str = "komplettering.pdf", data: bytes = PDF) -> dict[str, Any]:
    return {"attachmentId": str(uuid.uuid4()), "fileName": name, "mimeType": "application/pdf", "data": data}


def update_kwargs(
    case_id: str,
    sequence_number: int,
    update_type: str,
    *,
    message_id: str | None = None,
    text: str | None = None,
    in_reply_to: str | None = None,
    attachments_allowed: bool | None = None,
    handling_unit: str | None = None,
    unit_name: str | None = None,
    concerned_unit: str | None = None,
    attachments: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """UpdateCase as zeep keyword arguments (zeep writes the elements in the schema's order)."""
    kwargs: dict[str, Any] = {
        "caseId": case_id,
        "messageId": message_id or str(uuid.uuid4()),
        "sequenceNumber": sequence_number,
        "updateType": update_type,
        "createdAt": "20261126101500",
    }
    if handling_unit is not None:
        kwargs["handlingUnit"] = {"unitId": handling_unit}
        if unit_name is not None:
            kwargs["handlingUnit"]["unitName"] = unit_name
    if text is not None:
        kwargs["message"] = {"text": text}
    if attachments:
        kwargs["attachment"] = list(attachments)
    if update_type == "CLOSED":
        kwargs["closedAt"] = "20261127120000"
    if in_reply_to is not None:
        kwargs["inReplyTo"] = in_reply_to
    if attachments_allowed is not None:
        kwargs["attachmentsAllowed"] = attachments_allowed
    if concerned_unit is not None:
        kwargs["concernedUnit"] = {"unitId": concerned_unit}
    return kwargs


# -- what the database holds ------------------------------------------------------------------------------
def stored(db_url: str) -> dict[str, Any]:
    """Every row of the inbox, the outbox and the case records, and the row count of every table."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = {
                table.name: [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]
                for table in (inbox_message, outbox_message, case_record)
            }
            counts = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables
            }
    finally:
        engine.dispose()
    return {"rows": rows, "counts": counts}


def case_row(db_url: str, case_id: str) -> dict[str, Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(case_record).where(case_record.c.case_id == case_id)).one()
    finally:
        engine.dispose()
    return dict(row._mapping)


def unsettled(db_url: str) -> int:
    """Outbox messages not yet delivered (pending or in flight)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(outbox_message)
                    .where(outbox_message.c.status.in_(("pending", "inflight")))
                ).scalar_one()
            )
    finally:
        engine.dispose()


def body_of(arrival: dict[str, Any]) -> etree._Element:
    """The request element of what a receiver got."""
    root = etree.fromstring(arrival["body"])
    body = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None
    return body[0]


def pdf_of(update: etree._Element) -> bytes:
    return base64.b64decode(update.findtext("{*}attachment/{*}data") or "")


# -- the refusal rows -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One call. ``who``: a pki client name; ``to``: "unit" (the case's unit), "service" (1177's case
    service address) or an HSA-id; ``in_reply_to``: "question" (the case's last QUESTION) or "other"."""

    who: str
    update_type: str
    to: str = "service"
    text: str | None = None
    in_reply_to: str | None = None
    attachments_allowed: bool | None = None
    handling_unit: str | None = None
    unit_name: str | None = None
    concerned_unit: str | None = None
    attach: bool = False
    #: the sender's next number when None; an explicit number otherwise
    sequence: int | None = None


@dataclass(frozen=True)
class Register:
    """A RegisterCase of the row's case (the same caseId), sent as the refused call."""

    who: str
    to: str
    unit: str
    channel: str | None = None


@dataclass(frozen=True)
class Row:
    name: str
    #: "care" (1177 -> UNIT, system A), "board" (1177 -> BOARD with a location, system B), "none"
    case: str
    steps: tuple[Step, ...]
    call: Step | Register
    error_code: str
    sub_code: str
    what: str = field(default="", compare=False)


A, B, C = "deviation-a", "deviation-b", "1177"
REPLY = "Här är svaret på er fråga."
ASK = "Vilken dag var besöket?"

REFUSALS: tuple[Row, ...] = (
    Row(
        "reply-without-open-question",
        "care",
        (Step(A, "RECEIVED"),),
        Step(C, "CITIZEN_REPLY", "unit", text=REPLY),
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    ),
    Row(
        "reply-to-another-message",
        "care",
        (Step(A, "QUESTION", text=ASK),),
        Step(C, "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="other"),
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    ),
    Row(
        "reply-after-the-answer",
        "care",
        (Step(A, "QUESTION", text=ASK), Step(A, "ANSWER", text="Svar.")),
        Step(C, "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="question"),
        "INVALID_REQUEST",
        "NO_OPEN_QUESTION",
    ),
    Row(
        "reply-without-message",
        "care",
        (Step(A, "QUESTION", text=ASK),),
        Step(C, "CITIZEN_REPLY", "unit", in_reply_to="question"),
        "INVALID_REQUEST",
        "MESSAGE_REQUIRED",
    ),
    Row(
        "update-to-closed-case-from-the-system",
        "care",
        (Step(A, "CLOSED"),),
        Step(A, "IN_PROGRESS"),
        "INVALID_REQUEST",
        "CASE_CLOSED",
    ),
    Row(
        "supplement-to-closed-case-from-1177",
        "care",
        (Step(A, "CLOSED"),),
        Step(C, "SUPPLEMENT", "unit", text="Jag vill tillägga något."),
        "INVALID_REQUEST",
        "CASE_CLOSED",
    ),
    Row(
        "reply-to-closed-case-from-1177",
        "care",
        (Step(A, "QUESTION", text=ASK), Step(A, "CLOSED")),
        Step(C, "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="question"),
        "INVALID_REQUEST",
        "CASE_CLOSED",
    ),
    Row(
        "citizen-message-from-another-system",
        "care",
        (Step(A, "QUESTION", text=ASK),),
        Step(B, "CITIZEN_REPLY", "unit", text=REPLY, in_reply_to="question"),
        "NOT_ALLOWED",
        "NOT_CITIZEN_SERVICE",
    ),
    Row(
        "citizen-message-from-the-handling-system",
        "care",
        (Step(A, "QUESTION", text=ASK),),
        Step(A, "CITIZEN_REPLY", "service", text=REPLY, in_reply_to="question"),
        "NOT_ALLOWED",
        "NOT_SENDERS_UPDATE",
    ),
    Row(
        "handler-update-from-1177",
        "care",
        (Step(A, "RECEIVED"),),
        Step(C, "ANSWER", "unit", text="Svar."),
        "NOT_ALLOWED",
        "NOT_SENDERS_UPDATE",
    ),
    Row(
        "supplement-attachment-not-allowed",
        "care",
        (Step(A, "RECEIVED"),),
        Step(C, "SUPPLEMENT", "unit", text="Bifogar ett intyg.", attach=True),
        "INVALID_REQUEST",
        "ATTACHMENTS_NOT_ALLOWED",
    ),
    Row(
        "supplement-attachment-no-longer-allowed",
        "care",
        (
            Step(A, "IN_PROGRESS", attachments_allowed=True),
            Step(A, "QUESTION", text=ASK, attachments_allowed=False),
        ),
        Step(C, "SUPPLEMENT", "unit", attach=True),
        "INVALID_REQUEST",
        "ATTACHMENTS_NOT_ALLOWED",
    ),
    Row(
        "supplement-empty",
        "care",
        (Step(A, "RECEIVED"),),
        Step(C, "SUPPLEMENT", "unit"),
        "INVALID_REQUEST",
        "SUPPLEMENT_EMPTY",
    ),
    Row(
        "citizen-message-to-another-unit",
        "care",
        (Step(A, "QUESTION", text=ASK),),
        Step(C, "CITIZEN_REPLY", DESK_UNIT, text=REPLY, in_reply_to="question"),
        "INVALID_REQUEST",
        "NOT_CASE_UNIT",
    ),
    Row(
        "citizen-message-to-the-unit-before-a-redirect",
        "board",
        (Step(B, "REDIRECTED", handling_unit=UNIT),),
        Step(C, "SUPPLEMENT", BOARD, text="Jag vill tillägga något."),
        "INVALID_REQUEST",
        "NOT_CASE_UNIT",
    ),
    Row(
        "citizen-message-stale-sequence",
        "care",
        (Step(A, "RECEIVED"), Step(C, "SUPPLEMENT", "unit", text="Första tillägget.")),
        Step(C, "SUPPLEMENT", "unit", text="Andra tillägget.", sequence=1),
        "INVALID_REQUEST",
        "STALE_SEQUENCE",
    ),
    Row(
        "unit-corrected-on-a-care-unit-case",
        "care",
        (Step(A, "RECEIVED"),),
        Step(A, "UNIT_CORRECTED", handling_unit=UNIT, concerned_unit=DESK_UNIT),
        "INVALID_REQUEST",
        "NOT_PATIENT_BOARD_CASE",
    ),
    Row(
        "unit-corrected-to-an-unknown-unit",
        "board",
        (Step(B, "RECEIVED"),),
        Step(B, "UNIT_CORRECTED", handling_unit=BOARD, concerned_unit=UNKNOWN_UNIT),
        "INVALID_REQUEST",
        "UNKNOWN_UNIT",
    ),
    Row(
        "unit-corrected-old-style-to-an-unknown-unit",
        "board",
        (Step(B, "RECEIVED"),),
        Step(B, "UNIT_CORRECTED", handling_unit=UNKNOWN_UNIT),
        "INVALID_REQUEST",
        "UNKNOWN_UNIT",
    ),
    Row(
        "channel-case-to-a-unit-address",
        "none",
        (),
        Register(A, UNIT, UNIT, channel="PHONE"),
        "INVALID_REQUEST",
        "CHANNEL_ADDRESS",
    ),
    Row(
        "web-case-to-the-case-service-address",
        "none",
        (),
        Register(A, CASE_SERVICE, UNIT),
        "INVALID_REQUEST",
        "RECIPIENT_MISMATCH",
    ),
    Row(
        "channel-case-reusing-a-1177-case-id",
        "care",
        (Step(A, "RECEIVED"),),
        Register(A, CASE_SERVICE, UNIT, channel="PHONE"),
        "INVALID_REQUEST",
        "ID_REUSED",
    ),
)
