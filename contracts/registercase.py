"""Mapping for RegisterCase (1177 → the system that handles the unit's cases; with a ``channel`` other than
WEB, a region's system → 1177 for a case started by phone, letter or visit)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from contracts.model import CAF_PREFIX, CV, Attachment, PersonId, Reader, Result, Unit, core

__all__ = ["CHANNELS", "NAMESPACE", "Incident", "PowerOfAttorney", "RegisterCase", "build_response", "parse"]

NAMESPACE = f"{CAF_PREFIX}:RegisterCaseResponder:1"
_r = Reader(NAMESPACE)

#: how a case reached the care service (ChannelEnum); WEB, through 1177, when the request has none
CHANNELS = ("WEB", "PHONE", "LETTER", "VISIT", "OTHER")


@dataclass(frozen=True)
class PowerOfAttorney:
    kind: str  # POWER_OF_ATTORNEY | GUARDIANSHIP | OTHER
    reference: str | None = None
    valid_until: str | None = None  # DateType

    @classmethod
    def parse(cls, el: etree._Element | None) -> PowerOfAttorney | None:
        if el is None:
            return None
        f = core.fields(el)
        return cls(f.req("kind"), f.text("reference"), f.text("validUntil"))


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
    #: ChannelEnum; WEB when the request has none
    channel: str = "WEB"
    power_of_attorney: PowerOfAttorney | None = None

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
    top = _r.fields(el)
    recipient_el = top.child("recipient")
    subject_el = top.child("subjectOfCare")
    reporter_el = top.child("reporter")
    incident_el = top.child("incident")
    contact_el = top.child("contactPreference")
    if None in (recipient_el, subject_el, reporter_el, incident_el, contact_el):  # pragma: no cover
        raise ValueError("RegisterCase parsed without schema validation")
    assert recipient_el is not None and subject_el is not None and reporter_el is not None  # noqa: PT018
    assert incident_el is not None and contact_el is not None  # noqa: PT018
    recipient, subject, reporter = (
        core.fields(recipient_el),
        core.fields(subject_el),
        core.fields(reporter_el),
    )
    incident, contact = core.fields(incident_el), core.fields(contact_el)
    unit = Unit.parse(recipient.child("unit"))
    person = subject.child("personId")
    if unit is None or person is None:  # pragma: no cover
        raise ValueError("RegisterCase parsed without schema validation")
    return RegisterCase(
        case_id=top.req("caseId"),
        case_category=top.req("caseCategory"),
        submitted_at=top.req("submittedAt"),
        recipient_type=recipient.req("recipientType"),
        recipient_unit=unit,
        subject_person_id=PersonId.parse(person),
        subject_gender=CV.parse(subject.child("gender")),
        reporter_role=reporter.req("role"),
        incident=Incident(
            event_date=incident.req("eventDate"),
            location_description=incident.text("locationDescription"),
            concerned_unit=Unit.parse(incident.child("concernedUnit")),
            main_problem=CV.parse(incident.child("mainProblem")),
            sub_problem=CV.parse(incident.child("subProblem")),
            experienced_problem=CV.parse(incident.child("experiencedProblem")),
            business_area=CV.parse(incident.child("businessArea")),
        ),
        reply_wanted=contact.req("replyWanted").strip() in ("true", "1"),
        contact_channel=contact.text("channel"),
        attachments=tuple(Attachment.parse(a) for a in _r.children(el, "attachment")),
        channel=(top.text("channel") or "WEB").strip(),
        power_of_attorney=PowerOfAttorney.parse(reporter.child("powerOfAttorney")),
    )


def build_response(result: Result) -> etree._Element:
    response = etree.Element(
        f"{{{NAMESPACE}}}RegisterCaseResponse", nsmap={None: NAMESPACE, "core": core.ns[1:-1]}
    )
    result.element(response)
    return response
