"""The case as the citizen filed it, read from the stored RegisterCase payload (the XML as received).

The payload passed schema validation when it arrived, so reading never re-checks it. Attachments are
listed without decoding their content; ``attachment_content`` decodes one when it is asked for.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from lxml import etree

from contracts import registercase, updatecase
from contracts.model import CV, Attachment, Fields, Reader, core
from gateway.desk.model import AttachmentRef, PersonView

__all__ = ["Filed", "Message", "attachment_content", "parse_filed", "parse_message", "secure_parse"]

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
_register = Reader(registercase.NAMESPACE)
_update = Reader(updatecase.NAMESPACE)


def secure_parse(payload: bytes) -> etree._Element:
    return etree.fromstring(payload, _PARSER)


def _person(fields: Fields | None, person_id: Fields | None) -> PersonView:
    if fields is None:
        return PersonView()
    return PersonView(
        given_name=fields.text("givenName"),
        family_name=fields.text("familyName"),
        person_id=person_id.text("id") if person_id is not None else None,
        phone=fields.text("phone"),
        email=fields.text("email"),
    )


def _child_fields(fields: Fields | None, name: str) -> Fields | None:
    if fields is None:
        return None
    el = fields.child(name)
    return None if el is None else core.fields(el)


def _refs(attachments: list[etree._Element], prefix: str, direction: str) -> list[AttachmentRef]:
    refs = []
    for n, el in enumerate(attachments, start=1):
        attachment = Attachment.parse(el)
        refs.append(
            AttachmentRef(
                f"{prefix}-{n}",
                attachment.file_name,
                attachment.mime_type,
                attachment.decoded_size(),
                direction,
            )
        )
    return refs


@dataclass(frozen=True)
class Filed:
    category: str
    channel: str
    submitted_at: str
    recipient_type: str
    unit_id: str
    unit_name: str | None
    subject: PersonView
    gender: CV | None
    reporter_role: str
    reporter: PersonView
    event_date: str
    description: str
    location_description: str | None
    concerned_unit: str | None
    codes: dict[str, CV | None]
    reply_wanted: bool
    contact_channel: str | None
    attachments: list[AttachmentRef]


def parse_filed(payload: bytes, inbox_id: int) -> Filed:
    root = secure_parse(payload)
    top = _register.fields(root)
    recipient = _child_fields(top, "recipient")
    unit = _child_fields(recipient, "unit")
    subject = _child_fields(top, "subjectOfCare")
    reporter = _child_fields(top, "reporter")
    person = _child_fields(reporter, "person")
    incident = _child_fields(top, "incident")
    contact = _child_fields(top, "contactPreference")
    concerned = _child_fields(incident, "concernedUnit")
    assert unit is not None and subject is not None and incident is not None  # noqa: PT018 - validated
    return Filed(
        category=top.req("caseCategory"),
        channel=top.text("channel") or "WEB",
        submitted_at=top.req("submittedAt"),
        recipient_type=recipient.req("recipientType") if recipient is not None else "CARE_UNIT",
        unit_id=unit.req("unitId"),
        unit_name=unit.text("unitName"),
        subject=_person(subject, _child_fields(subject, "personId")),
        gender=CV.parse(subject.child("gender")),
        reporter_role=reporter.req("role") if reporter is not None else "SUBJECT_OF_CARE",
        reporter=_person(person, _child_fields(person, "personId")),
        event_date=incident.req("eventDate"),
        description=incident.text("description") or "",
        location_description=incident.text("locationDescription"),
        concerned_unit=concerned.text("unitId") if concerned is not None else None,
        codes={
            name: CV.parse(incident.child(name))
            for name in ("mainProblem", "subProblem", "experiencedProblem", "businessArea")
        },
        reply_wanted=(contact.text("replyWanted") or "").strip() in ("true", "1") if contact else False,
        contact_channel=contact.text("channel") if contact is not None else None,
        attachments=_refs(_register.children(root, "attachment"), f"in-{inbox_id}", "from-citizen"),
    )


@dataclass(frozen=True)
class Message:
    """What the timeline shows of an UpdateCase (the desk's own, or an integrated system's)."""

    message_id: str
    update_type: str
    text: str | None
    standard_answer: str | None
    attachments: list[AttachmentRef]


def parse_message(payload: bytes, prefix: str, direction: str | None = None) -> Message:
    """``direction`` of its attachments: by default from the update type (the citizen's reply and
    supplements come from the citizen, every other update goes to them)."""
    root = secure_parse(payload)
    top = _update.fields(root)
    message = _child_fields(top, "message")
    standard = CV.parse(message.child("standardAnswer")) if message is not None else None
    update_type = top.req("updateType")
    if direction is None:
        citizen = update_type in updatecase.CITIZEN_UPDATE_TYPES
        direction = "from-citizen" if citizen else "to-citizen"
    return Message(
        message_id=top.req("messageId"),
        update_type=update_type,
        text=message.text("text") if message is not None else None,
        standard_answer=(standard.display_name or standard.code) if standard is not None else None,
        attachments=_refs(_update.children(root, "attachment"), prefix, direction),
    )


def attachment_content(payload: bytes, namespace: str, n: int) -> tuple[str, str, bytes] | None:
    """(file name, MIME type, content) of the ``n``-th attachment (from 1) of a stored request."""
    root = secure_parse(payload)
    found = Reader(namespace).children(root, "attachment")
    if not 1 <= n <= len(found):
        return None
    attachment = Attachment.parse(found[n - 1])
    data = binascii.a2b_base64("".join((attachment.data_element.text or "").split()))
    return attachment.file_name, attachment.mime_type, data
