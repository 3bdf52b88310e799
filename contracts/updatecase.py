"""Mapping for UpdateCase (the handling system → 1177)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from contracts.model import CAF_PREFIX, CV, Attachment, Reader, Result, Unit, core

__all__ = ["NAMESPACE", "UPDATE_TYPES", "UpdateCase", "build_response", "parse"]

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
)


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
        for name in ("mainProblem", "subProblem", "experiencedProblem", "businessArea"):
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
    )


def build_response(result: Result) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}UpdateCaseResponse", nsmap={None: NAMESPACE, "core": core.ns[1:-1]}
    )
    result.element(response)
    return response
