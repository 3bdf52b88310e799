"""Mapping for UpdateCase (the handling system → 1177, and 1177 → the handling system for the citizen's
reply and supplements): reading a validated request, and building one.

``build_request`` is how the gateway itself writes an UpdateCase (the case desk's RECEIVED and every desk
action): elements in the schema's order, so the result validates against the UpdateCase XSD.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from contracts.model import CAF_PREFIX, CV, Attachment, Reader, Result, Unit, core

__all__ = [
    "CITIZEN_UPDATE_TYPES",
    "NAMESPACE",
    "STATISTICS_FIELDS",
    "UPDATE_TYPES",
    "OutgoingAttachment",
    "UpdateCase",
    "build_request",
    "build_response",
    "parse",
]

NAMESPACE = f"{CAF_PREFIX}:UpdateCaseResponder:1"
_r = Reader(NAMESPACE)

UPDATE_TYPES = (
    "RECEIVED",
    "IN_PROGRESS",
    "PARTIAL_ANSWER",
    "QUESTION",
    "ANSWER",
    "CLOSED",
    "REDIRECTED",
    "UNIT_CORRECTED",
    "CITIZEN_REPLY",
    "SUPPLEMENT",
)
#: the update types 1177 sends on the citizen's behalf (to the case's handling unit); the others are the
#: handling side's (to 1177's case service)
CITIZEN_UPDATE_TYPES = ("CITIZEN_REPLY", "SUPPLEMENT")
#: the children of ``statistics``, in the schema's order
STATISTICS_FIELDS = ("mainProblem", "subProblem", "experiencedProblem", "businessArea")


@dataclass(frozen=True)
class UpdateCase:
    case_id: str
    message_id: str
    sequence_number: int
    update_type: str
    created_at: str
    handling_unit: Unit | None
    message_text: str | None
    standard_answer: CV | None
    attachments: tuple[Attachment, ...]
    closed_at: str | None
    statistics: dict[str, CV | None]
    #: the messageId of the QUESTION a CITIZEN_REPLY answers
    in_reply_to: str | None = None
    #: on IN_PROGRESS and QUESTION: whether the citizen may attach files from now on (None: unchanged)
    attachments_allowed: bool | None = None
    #: the corrected unit of a UNIT_CORRECTED (patient-board cases)
    concerned_unit: Unit | None = None

    def codes(self) -> dict[str, CV | None]:
        return {"standardAnswer": self.standard_answer, **self.statistics}


def parse(el: etree._Element) -> UpdateCase:
    """Read an UpdateCase element that has passed schema validation."""
    top = _r.fields(el)
    message_el = top.child("message")
    message = None if message_el is None else core.fields(message_el)
    stats = top.child("statistics")
    statistics: dict[str, CV | None] = {}
    if stats is not None:
        fields = core.fields(stats)
        for name in STATISTICS_FIELDS:
            statistics[name] = CV.parse(fields.child(name))
    return UpdateCase(
        case_id=top.req("caseId"),
        message_id=top.req("messageId").strip().lower(),
        sequence_number=int(top.req("sequenceNumber")),
        update_type=top.req("updateType"),
        created_at=top.req("createdAt"),
        handling_unit=Unit.parse(top.child("handlingUnit")),
        message_text=None if message is None else message.text("text"),
        standard_answer=None if message is None else CV.parse(message.child("standardAnswer")),
        attachments=tuple(Attachment.parse(a) for a in _r.children(el, "attachment")),
        closed_at=top.text("closedAt"),
        statistics=statistics,
        in_reply_to=_lower(top.text("inReplyTo")),
        attachments_allowed=_boolean(top.text("attachmentsAllowed")),
        concerned_unit=Unit.parse(top.child("concernedUnit")),
    )


def _lower(value: str | None) -> str | None:
    return None if value is None else value.strip().lower()


def _boolean(value: str | None) -> bool | None:
    """xs:boolean (``true``, ``false``, ``1``, ``0``, whitespace collapsed) as a bool; None when absent."""
    return None if value is None else value.strip() in ("true", "1")


def build_response(result: Result) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}UpdateCaseResponse", nsmap={None: NAMESPACE, "core": core.ns[1:-1]}
    )
    result.element(response)
    return response


@dataclass(frozen=True)
class OutgoingAttachment:
    attachment_id: str
    file_name: str
    mime_type: str
    data: bytes = field(repr=False)


def _cv(parent: etree._Element, name: str, cv: CV) -> None:
    el = etree.SubElement(parent, core.ns + name)
    etree.SubElement(el, core.ns + "code").text = cv.code
    etree.SubElement(el, core.ns + "codeSystem").text = cv.code_system
    if cv.display_name:
        etree.SubElement(el, core.ns + "displayName").text = cv.display_name


def _unit(parent: etree._Element, tag: str, unit: Unit) -> None:
    el = etree.SubElement(parent, tag)
    etree.SubElement(el, core.ns + "unitId").text = unit.unit_id
    for name, value in (
        ("unitName", unit.unit_name),
        ("careProviderId", unit.care_provider_id),
        ("regionCode", unit.region_code),
    ):
        if value:
            etree.SubElement(el, core.ns + name).text = value


def build_request(
    *,
    case_id: str,
    message_id: str,
    sequence_number: int,
    update_type: str,
    created_at: str,
    handling_unit: Unit | None = None,
    message_text: str | None = None,
    standard_answer: CV | None = None,
    attachments: Sequence[OutgoingAttachment] = (),
    closed_at: str | None = None,
    statistics: Mapping[str, CV] | None = None,
    in_reply_to: str | None = None,
    attachments_allowed: bool | None = None,
    concerned_unit: Unit | None = None,
) -> etree._Element:
    """An ``UpdateCase`` element; the caller keeps the rules the schema does not state (message for
    PARTIAL_ANSWER / QUESTION / ANSWER / CITIZEN_REPLY, closedAt for CLOSED, handlingUnit for REDIRECTED /
    UNIT_CORRECTED)."""
    ns = "{" + NAMESPACE + "}"
    root = etree.Element(ns + "UpdateCase", nsmap={None: NAMESPACE, "core": core.ns[1:-1]})
    etree.SubElement(root, ns + "caseId").text = case_id
    etree.SubElement(root, ns + "messageId").text = message_id
    etree.SubElement(root, ns + "sequenceNumber").text = str(sequence_number)
    etree.SubElement(root, ns + "updateType").text = update_type
    etree.SubElement(root, ns + "createdAt").text = created_at
    if handling_unit is not None:
        _unit(root, ns + "handlingUnit", handling_unit)
    if message_text is not None:
        message = etree.SubElement(root, ns + "message")
        etree.SubElement(message, core.ns + "text").text = message_text
        if standard_answer is not None:
            _cv(message, "standardAnswer", standard_answer)
    for attachment in attachments:
        el = etree.SubElement(root, ns + "attachment")
        etree.SubElement(el, core.ns + "attachmentId").text = attachment.attachment_id
        etree.SubElement(el, core.ns + "fileName").text = attachment.file_name
        etree.SubElement(el, core.ns + "mimeType").text = attachment.mime_type
        etree.SubElement(el, core.ns + "data").text = base64.b64encode(attachment.data).decode("ascii")
    if closed_at is not None:
        etree.SubElement(root, ns + "closedAt").text = closed_at
    if statistics:
        stats = etree.SubElement(root, ns + "statistics")
        for name in STATISTICS_FIELDS:
            cv = statistics.get(name)
            if cv is not None:
                _cv(stats, name, cv)
    if in_reply_to is not None:
        etree.SubElement(root, ns + "inReplyTo").text = in_reply_to
    if attachments_allowed is not None:
        etree.SubElement(root, ns + "attachmentsAllowed").text = "true" if attachments_allowed else "false"
    if concerned_unit is not None:
        _unit(root, ns + "concernedUnit", concerned_unit)
    return root
