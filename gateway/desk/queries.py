"""Reading the desk: the case list of the units a person may see, one case as filed with its timeline,
and one attachment. Every read checks the person's roles first; a refusal is audited (``ACCESS_DENIED``).

The list reads ``case_record`` only (``ix_case_record_desk``: the desk's cases by unit, newest first) and
shows no personal data; the case view parses the stored RegisterCase and the case's messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, func, select

from contracts import registercase, updatecase
from contracts.codelists import CodeLists
from gateway.cases.inbox import inbox_message
from gateway.cases.records import DESK, case_record
from gateway.cases.state import CLOSED, OPEN_STATES
from gateway.desk import audit
from gateway.desk.access import CASE_ROLES, Access
from gateway.desk.errors import CaseNotFound, Forbidden, Refused
from gateway.desk.filed import attachment_content
from gateway.desk.model import CasePage, CaseSummary, CaseView, CodeText
from gateway.desk.rules import possible
from gateway.desk.timeline import derive
from gateway.desk.times import local_day_start, utc
from gateway.desk.tree import HsaTree
from outbox.schema import outbox_message

__all__ = ["CATEGORY_WORDS", "MAX_PER_PAGE", "Denied", "Queries", "list_statements"]

CATEGORY_WORDS = {"COMPLAINT": "Klagomål", "FEEDBACK": "Synpunkt"}
MAX_PER_PAGE = 100
STATUSES = frozenset({*OPEN_STATES, CLOSED})
_REF = re.compile(r"^(in|out)-([0-9]{1,18})-([0-9]{1,3})$")
_CODE_COLUMNS = {
    "mainProblem": "main_problem",
    "subProblem": "sub_problem",
    "experiencedProblem": "experienced_problem",
    "businessArea": "business_area",
}
_LIST_COLUMNS = (
    case_record.c.case_id,
    case_record.c.category,
    case_record.c.status,
    case_record.c.handling_unit,
    case_record.c.received_at,
    case_record.c.handler_turn_since,
    case_record.c.main_problem,
    case_record.c.version,
)

FORBIDDEN = "Du har inte behörighet till ärenden för den här enheten"


class Denied(Exception):
    """Raised inside a transaction for a refusal that is audited (and turned into Forbidden) after it."""

    def __init__(self, what: str, case_id: str | None, unit: str | None) -> None:
        super().__init__(what)
        self.what, self.case_id, self.unit = what, case_id, unit


class Queries:
    def __init__(
        self,
        engine: Engine,
        access: Access,
        code_lists: CodeLists,
        clock: Callable[[], datetime],
        actor: Callable[[str], str] = str,
    ) -> None:
        self.engine = engine  # for the audit rows of refusals
        #: how a person is named in the audit log (the CLI adds "cli:<login>:")
        self.actor = actor
        self.reader = access.reader
        self.access = access
        self.code_lists = code_lists
        self.clock = clock

    # -- shared with the actions ------------------------------------------------------------------------
    @staticmethod
    def case_row(conn: Connection, case_id: str) -> Row[Any]:
        row = conn.execute(
            select(case_record).where(
                case_record.c.case_id == case_id, case_record.c.receiving_system == DESK
            )
        ).first()
        if row is None:
            raise CaseNotFound(f"Inget ärende {case_id} i ärendehanteringen")
        return row

    def refuse(
        self, person: str, what: str, *, case_id: str | None = None, unit: str | None = None
    ) -> Forbidden:
        """Audit a refused access (in a transaction of its own) and return the error to raise."""
        audit.record_alone(
            self.engine,
            self.clock(),
            self.actor(person),
            "ACCESS_DENIED",
            case_id=case_id,
            target=unit,
            detail=what,
        )
        return Forbidden(FORBIDDEN)

    def require(
        self, conn: Connection, person: str, row: Row[Any], needed: frozenset[str], what: str
    ) -> set[str]:
        """The person's roles on the case's unit, when they hold one of ``needed``; else Forbidden (the
        refusal is audited once ``conn`` is given back: on SQLite it may hold the write lock)."""
        roles = self.access.roles_for(person, row.handling_unit, conn)
        if not roles & needed:
            raise Denied(what, row.case_id, row.handling_unit)
        return roles

    @contextmanager
    def reading(self, person: str) -> Iterator[Connection]:
        """A connection for reads; a refusal raised inside is audited after it is closed."""
        try:
            with self.reader.connect() as conn:
                yield conn
        except Denied as denied:
            raise self.refuse(person, denied.what, case_id=denied.case_id, unit=denied.unit) from None

    def _words(self, field: str, code: str | None) -> CodeText | None:
        if code is None:
            return None
        return CodeText(code, self.code_lists.for_field(field).display.get(code) or code)

    def _subject(self, category: str, main_problem: str | None) -> str:
        words = CATEGORY_WORDS.get(category, category)
        problem = self._words("mainProblem", main_problem)
        return f"{words}: {problem.text}" if problem is not None else words

    # -- the case list ------------------------------------------------------------------------------------
    def cases(
        self,
        person: str,
        *,
        unit: str | None = None,
        status: str | None = None,
        category: str | None = None,
        received_from: date | None = None,
        received_to: date | None = None,
        waiting_days: int | None = None,
        case_id: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> CasePage:
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise Refused("INVALID_PAGE", f"page must be 1 or more and per_page 1 to {MAX_PER_PAGE}")
        if status is not None and status not in STATUSES:
            raise Refused(
                "UNKNOWN_STATUS", f"unknown status {status!r}: use one of {', '.join(sorted(STATUSES))}"
            )
        if category is not None and category not in CATEGORY_WORDS:
            raise Refused("UNKNOWN_CATEGORY", "category must be COMPLAINT or FEEDBACK")
        if waiting_days is not None and waiting_days < 0:
            raise Refused("INVALID_WAITING_DAYS", "waiting_days must be 0 or more")
        waiting_before = None if waiting_days is None else self.clock() - timedelta(days=waiting_days)
        tree = self.access.tree
        with self.reading(person) as conn:
            visible = self.access.visible_units(person, conn)
            if unit is not None and visible is not None and unit not in visible:
                raise Denied("case list", None, unit)
            if unit is None and visible is not None and not visible:
                return CasePage([], 0, page, per_page)
            count, listing = list_statements(
                visible if unit is None else {unit},
                status=status,
                category=category,
                received_from=received_from,
                received_to=received_to,
                waiting_before=waiting_before,
                case_id=case_id,
                page=page,
                per_page=per_page,
            )
            total = conn.execute(count).scalar_one()
            rows = conn.execute(listing).all()
        return CasePage([self._summary(row, tree) for row in rows], int(total), page, per_page)

    def _summary(self, row: Any, tree: HsaTree) -> CaseSummary:
        waiting = utc(row.handler_turn_since)
        return CaseSummary(
            case_id=row.case_id,
            category=row.category,
            status=row.status,
            handling_unit=row.handling_unit,
            unit_name=tree.name(row.handling_unit),
            received_at=utc(row.received_at),
            waiting_since=waiting,
            handler_turn=waiting is not None,
            subject=self._subject(row.category, row.main_problem),
            version=int(row.version),
        )

    # -- one case -----------------------------------------------------------------------------------------
    def case(self, person: str, case_id: str) -> CaseView:
        return self.case_and_xml(person, case_id)[0]

    def case_and_xml(
        self, person: str, case_id: str, needed: frozenset[str] = CASE_ROLES, what: str = "case view"
    ) -> tuple[CaseView, bytes]:
        """The view of the case and its RegisterCase as stored, for a person holding one of ``needed``."""
        with self.reading(person) as conn:
            row = self.case_row(conn, case_id)
            roles = self.require(conn, person, row, needed, what)
            derived = derive(conn, case_id)
        filed = derived.filed
        tree = self.access.tree
        handler = "handler" in roles
        patient_board = (
            tree.kind(row.handling_unit) == "patient-board" or row.recipient_type == "PATIENT_BOARD"
        )
        codes: dict[str, CodeText] = {}
        for field, column in _CODE_COLUMNS.items():
            words = self._words(field, getattr(row, column))
            if words is not None:
                codes[field] = words
        if filed.gender is not None:
            gender = self._words("gender", filed.gender.code)
            if gender is not None:
                codes["gender"] = gender
        waiting = utc(row.handler_turn_since)
        view = CaseView(
            case_id=row.case_id,
            category=row.category,
            status=row.status,
            version=int(row.version),
            channel=filed.channel,
            recipient_type=row.recipient_type,
            handling_unit=row.handling_unit,
            unit_name=tree.name(row.handling_unit) or (filed.unit_name or ""),
            patient_board=patient_board,
            location_description=filed.location_description,
            concerned_unit=row.concerned_unit,
            concerned_unit_name=tree.name(row.concerned_unit) or None if row.concerned_unit else None,
            event_date=row.event_date,
            submitted_at=row.submitted_at,
            received_at=utc(row.received_at),
            closed_at=row.closed_at,
            reporter_role=filed.reporter_role,
            reporter=filed.reporter if handler else None,
            subject=filed.subject,
            description=filed.description,
            codes=codes,
            reply_wanted=filed.reply_wanted,
            contact_channel=filed.contact_channel,
            attachments_allowed=bool(row.attachments_allowed),
            open_question=row.open_question,
            handler_turn=waiting is not None,
            waiting_since=waiting,
            attachments=derived.attachments,
            timeline=derived.events,
            actions=possible(row.status, roles, patient_board),
            roles=frozenset(roles),
        )
        return view, derived.register_payload

    def attachment(self, person: str, case_id: str, ref: str) -> tuple[str, str, bytes]:
        match = _REF.match(ref)
        with self.reading(person) as conn:
            row = self.case_row(conn, case_id)
            self.require(conn, person, row, CASE_ROLES, "attachment")
            if match is None:
                raise CaseNotFound(f"Ingen bilaga {ref!r} i ärendet")
            side, row_id, n = match.group(1), int(match.group(2)), int(match.group(3))
            if side == "in":
                found = conn.execute(
                    select(inbox_message.c.operation, inbox_message.c.payload).where(
                        inbox_message.c.id == row_id, inbox_message.c.case_id == case_id
                    )
                ).first()
                namespace = (
                    registercase.NAMESPACE
                    if found is not None and found.operation == "RegisterCase"
                    else updatecase.NAMESPACE
                )
            else:
                found = conn.execute(
                    select(outbox_message.c.operation, outbox_message.c.payload).where(
                        outbox_message.c.id == row_id,
                        outbox_message.c.stream == case_id,
                        outbox_message.c.operation == "UpdateCase",
                    )
                ).first()
                namespace = updatecase.NAMESPACE
        content = attachment_content(bytes(found.payload), namespace, n) if found is not None else None
        if content is None:
            raise CaseNotFound(f"Ingen bilaga {ref!r} i ärendet")
        return content


def list_statements(
    units: set[str] | None,
    *,
    status: str | None = None,
    category: str | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    waiting_before: datetime | None = None,
    case_id: str | None = None,
    page: int = 1,
    per_page: int = 25,
) -> tuple[Select[Any], Select[Any]]:
    """(count, page) of the desk's case list: desk cases of ``units`` (None: every unit), newest first.

    ``ix_case_record_desk`` (handling_unit, received_at, case_id; desk cases only) gives one unit's page
    in order without a sort; tests/unit/test_desk_queries.py checks the plans on both databases."""
    conditions: list[Any] = [case_record.c.receiving_system == DESK]
    if units is not None:
        if len(units) == 1:
            conditions.append(case_record.c.handling_unit == next(iter(units)))
        else:
            conditions.append(case_record.c.handling_unit.in_(sorted(units)))
    if status is not None:
        conditions.append(case_record.c.status == status)
    if category is not None:
        conditions.append(case_record.c.category == category)
    if received_from is not None:
        conditions.append(case_record.c.received_at >= local_day_start(received_from))
    if received_to is not None:
        conditions.append(case_record.c.received_at < local_day_start(received_to, plus_days=1))
    if waiting_before is not None:
        conditions.append(case_record.c.handler_turn_since <= waiting_before)
    if case_id is not None:
        conditions.append(case_record.c.case_id == case_id.strip())
    count = select(func.count()).select_from(case_record).where(*conditions)
    listing = (
        select(*_LIST_COLUMNS)
        .where(*conditions)
        .order_by(case_record.c.received_at.desc(), case_record.c.case_id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return count, listing
