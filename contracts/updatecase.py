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
    message = _r.child(el, "message")
    stats = _r.child(el, "statistics")
    statistics: dict[str, CV | None] = {}
    if stats is not None:
        for name in ("mainProblem", "subProblem", "experiencedProblem", "businessArea"):
            statistics[name] = CV.parse(core.child(stats, name))
    return UpdateCase(
        case_id=_r.req(el, "caseId"),
        message_id=_r.req(el, "messageId").strip().lower(),
        sequence_number=int(_r.req(el, "sequenceNumber")),
        update_type=_r.req(el, "updateType"),
        created_at=_r.req(el, "createdAt"),
        handling_unit=Unit.parse(_r.child(el, "handlingUnit")),
        message_text=None if message is None else core.text(message, "text"),
        standard_answer=None if message is None else CV.parse(core.child(message, "standardAnswer")),
        attachments=tuple(Attachment.parse(a) for a in _r.children(el, "attachment")),
        closed_at=_r.text(el, "closedAt"),
        statistics=statistics,
    )


def build_response(result: Result) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}UpdateCaseResponse", nsmap={None: NAMESPACE, "core": core.ns[1:-1]}
    )
    result.element(response)
    return response
