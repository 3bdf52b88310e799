"""Mapping for RegisterCase (1177 → the system that handles the unit's cases)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from contracts.model import CAF_PREFIX, CV, Attachment, PersonId, Reader, Result, Unit, core

__all__ = ["NAMESPACE", "Incident", "RegisterCase", "build_response", "parse"]

NAMESPACE = f"{CAF_PREFIX}:RegisterCaseResponder:1"
_r = Reader(NAMESPACE)


@dataclass(frozen=True)
class Incident:
    event_date: str
    location_description: str | None
    concerned_unit: Unit | None
    main_problem: CV | None
    sub_problem: CV | None
    experienced_problem: CV | None
    business_area: CV | None


@dataclass(frozen=True)
class RegisterCase:
    case_id: str
    case_category: str
    submitted_at: str
    recipient_type: str
    recipient_unit: Unit
    subject_person_id: PersonId
    subject_gender: CV | None
    reporter_role: str
    incident: Incident
    reply_wanted: bool
    contact_channel: str | None
    attachments: tuple[Attachment, ...]

    def codes(self) -> dict[str, CV | None]:
        """Coded values by field name, for code-list checks."""
        return {
            "gender": self.subject_gender,
            "mainProblem": self.incident.main_problem,
            "subProblem": self.incident.sub_problem,
            "experiencedProblem": self.incident.experienced_problem,
            "businessArea": self.incident.business_area,
        }


def parse(el: etree._Element) -> RegisterCase:
    """Read a RegisterCase element that has passed schema validation."""
    recipient = _r.child(el, "recipient")
    subject = _r.child(el, "subjectOfCare")
    reporter = _r.child(el, "reporter")
    incident = _r.child(el, "incident")
    contact = _r.child(el, "contactPreference")
    unit = Unit.parse(core.child(recipient, "unit")) if recipient is not None else None
    person = core.child(subject, "personId") if subject is not None else None
    if None in (recipient, subject, reporter, incident, contact, unit, person):  # pragma: no cover
        raise ValueError("RegisterCase parsed without schema validation")
    assert recipient is not None and subject is not None and reporter is not None  # noqa: PT018
    assert incident is not None and contact is not None and unit is not None and person is not None  # noqa: PT018
    return RegisterCase(
        case_id=_r.req(el, "caseId"),
        case_category=_r.req(el, "caseCategory"),
        submitted_at=_r.req(el, "submittedAt"),
        recipient_type=core.req(recipient, "recipientType"),
        recipient_unit=unit,
        subject_person_id=PersonId.parse(person),
        subject_gender=CV.parse(core.child(subject, "gender")),
        reporter_role=core.req(reporter, "role"),
        incident=Incident(
            event_date=core.req(incident, "eventDate"),
            location_description=core.text(incident, "locationDescription"),
            concerned_unit=Unit.parse(core.child(incident, "concernedUnit")),
            main_problem=CV.parse(core.child(incident, "mainProblem")),
            sub_problem=CV.parse(core.child(incident, "subProblem")),
            experienced_problem=CV.parse(core.child(incident, "experiencedProblem")),
            business_area=CV.parse(core.child(incident, "businessArea")),
        ),
        reply_wanted=core.req(contact, "replyWanted").strip() in ("true", "1"),
        contact_channel=core.text(contact, "channel"),
        attachments=tuple(Attachment.parse(a) for a in _r.children(el, "attachment")),
    )


def build_response(result: Result) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}RegisterCaseResponse", nsmap={None: NAMESPACE, "core": core.ns[1:-1]}
    )
    result.element(response)
    return response
