"""The values the desk hands to the web app and the CLI: grants, case lists, case views, actions.

Everything is frozen and holds only what the asking person may see: the view of a case is built for one
person (a reader does not get the reporter's contact details). Nothing here is ever logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "ACTION_KINDS",
    "ROLES",
    "Action",
    "AttachmentRef",
    "CasePage",
    "CaseSummary",
    "CaseView",
    "CodeText",
    "Grant",
    "NewAttachment",
    "PersonView",
    "TimelineEvent",
]

#: roles of the access table; reader and handler see cases, operator and statistician are for later pages
ROLES = ("reader", "handler", "operator", "statistician")

#: what ``Action.kind`` may be
ACTION_KINDS = (
    "RECEIVED",
    "IN_PROGRESS",
    "PARTIAL_ANSWER",
    "QUESTION",
    "ANSWER",
    "CLOSED",
    "ALLOW_ATTACHMENTS",
    "CORRECT_STATISTICS",
    "SET_CONCERNED_UNIT",
    "MOVE",
)


@dataclass(frozen=True)
class Grant:
    person: str
    scope: str  # a unit, care provider or region of the HSA tree, or "SE" (national)
    role: str
    granted_by: str
    granted_at: datetime


@dataclass(frozen=True)
class CaseSummary:
    case_id: str
    category: str  # COMPLAINT | FEEDBACK
    status: str
    handling_unit: str
    unit_name: str
    received_at: datetime
    #: since when the handler is expected to act (None when it is the citizen's turn or the case is closed)
    waiting_since: datetime | None
    handler_turn: bool
    #: category and main problem in words; never a name or a personal identity number
    subject: str
    version: int


@dataclass(frozen=True)
class CasePage:
    items: list[CaseSummary]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class AttachmentRef:
    #: stable within the case: "in-<inboxId>-<n>" (from the citizen) or "out-<outboxId>-<n>" (to them)
    ref: str
    file_name: str
    mime_type: str
    size: int
    direction: str  # "from-citizen" | "to-citizen"


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    direction: str  # "in" | "out" | "desk"
    #: RegisterCase, an updateType, or a desk audit action (e.g. ACCESS_DENIED, EXPORT)
    kind: str
    #: HSA-id of the system or person
    actor: str
    text: str | None = None
    standard_answer: str | None = None  # display name
    attachments: list[AttachmentRef] = field(default_factory=list)
    #: for "out": pending | inflight | done | dead | skipped; else None
    delivery: str | None = None


@dataclass(frozen=True)
class CodeText:
    """A coded value and its words from the code list (the code itself when the list lacks it)."""

    code: str
    text: str


@dataclass(frozen=True)
class PersonView:
    """A person as filed in the RegisterCase (only for those allowed to see it)."""

    given_name: str | None = None
    family_name: str | None = None
    person_id: str | None = None  # personal identity number; never logged
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class CaseView:
    case_id: str
    category: str
    status: str
    version: int
    channel: str  # WEB unless the case came by phone, letter, visit …
    recipient_type: str  # CARE_UNIT | PATIENT_BOARD
    handling_unit: str
    unit_name: str
    patient_board: bool
    location_description: str | None
    concerned_unit: str | None
    concerned_unit_name: str | None
    event_date: date
    submitted_at: datetime
    received_at: datetime
    closed_at: datetime | None
    reporter_role: str  # SUBJECT_OF_CARE | GUARDIAN | REPRESENTATIVE
    #: who filed (name, contact): handlers only, else None
    reporter: PersonView | None
    #: the patient (name, personal identity number): handlers and readers of the unit
    subject: PersonView | None
    description: str
    #: by field: mainProblem, subProblem, experiencedProblem, businessArea, gender (absent when not filed)
    codes: dict[str, CodeText]
    reply_wanted: bool
    contact_channel: str | None
    attachments_allowed: bool
    open_question: str | None
    handler_turn: bool
    waiting_since: datetime | None
    attachments: list[AttachmentRef]
    timeline: list[TimelineEvent]
    #: what this person may do now, from role and state (Action kinds)
    actions: list[str]
    #: the person's roles for this case
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NewAttachment:
    file_name: str
    mime_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Action:
    kind: str  # one of ACTION_KINDS
    text: str | None = None
    standard_answer: str | None = None  # code; ANSWER only; the text comes from the code list
    attachments: tuple[NewAttachment, ...] = ()
    allow: bool | None = None  # ALLOW_ATTACHMENTS
    codes: dict[str, str] | None = None  # CORRECT_STATISTICS: mainProblem/subProblem/... -> code
    unit: str | None = None  # SET_CONCERNED_UNIT / MOVE
