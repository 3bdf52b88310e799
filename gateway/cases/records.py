"""Case records: one row per case, holding what statistics and routing need and nothing more.

Statistics cover every case, whichever system handles it, by unit, care provider, region and nation: so the
record keeps the units, category, the subject's age at submission and gender code (never the personal
identity number), problem and business-area codes, the event date, the received, and closed times, and
where the case went (route and receiving system). Updates change status, handling unit, closed time and
corrected codes. The reporter's role and the channel the case came by (WEB through 1177, or PHONE, LETTER,
VISIT, OTHER for a case a region's system registered) are kept for statistics; a patient board's corrected
unit (UNIT_CORRECTED) is the concerned unit, the board stays the handling unit.

The case desk adds what handling a case needs: ``version`` (the optimistic lock: every change to a record,
from any path, adds one, so a desk handler acting on an older view is told the case changed), the open
question (the messageId of the counter-question the citizen has not answered), since when it has been the
handler's turn, and whether the citizen may attach files. Sequence numbers are per case and sender:
``last_sequence`` is the handling side's (reset when a redirect hands the case to another system),
``citizen_sequence`` 1177's. ``ix_case_record_desk`` serves the desk's case
list (the cases handled in the desk, by unit, newest first).

Statistics read a snapshot taken at registration (``unit_name``, ``care_provider``, ``region`` of the
concerned unit, else the recipient unit: see ``gateway.stats.snapshot``); ``ix_case_record_stats``
covers what they read, received time first for their date filter (a scan of it reads a third of the
table's bytes).
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Index, Integer, String, Table, text

from contracts.db import metadata
from contracts.model import PersonId, parse_timestamp
from gateway.cases.state import CaseState
from routing import RoutingTable

__all__ = [
    "DESK",
    "PATIENT_BOARD_KIND",
    "STATUS_BY_UPDATE",
    "age_at",
    "case_record",
    "hsa_kind",
    "recipient_type_of",
    "state_of",
]

#: what statistics read of a case record (``ix_case_record_stats``, received time first for the filter)
STATS_COLUMNS = (
    "received_at",
    "closed_at",
    "concerned_unit",
    "recipient_unit",
    "care_provider",
    "region",
    "subject_age",
    "subject_gender",
    "main_problem",
    "sub_problem",
    "experienced_problem",
    "business_area",
    "event_date",
    "unit_name",
)

case_record = Table(
    "case_record",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("category", String(16), nullable=False),
    Column("recipient_type", String(16), nullable=False),
    Column("recipient_unit", String(64), nullable=False),
    Column("concerned_unit", String(64), nullable=True),
    Column("handling_unit", String(64), nullable=False),
    Column("subject_age", Integer, nullable=True),
    Column("subject_gender", String(8), nullable=True),
    Column("main_problem", String(16), nullable=True),
    Column("sub_problem", String(16), nullable=True),
    Column("experienced_problem", String(16), nullable=True),
    Column("business_area", String(16), nullable=True),
    Column("event_date", Date, nullable=False),
    Column("submitted_at", DateTime, nullable=False),  # Swedish local time, as sent
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime, nullable=True),
    Column("status", String(24), nullable=False),
    Column("route_target", String(64), nullable=False),  # endpoint name or "internal"
    Column("receiving_system", String(64), nullable=False),  # HSA-id of the system, or "internal"
    Column("routing_version", Integer, nullable=False),
    Column("last_sequence", BigInteger, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("open_question", String(64), nullable=True),
    Column("handler_turn_since", DateTime(timezone=True), nullable=True),
    Column("attachments_allowed", Boolean, nullable=False, server_default=text("false")),
    # 1177's own numbering of its messages about the case (the citizen's reply, supplements)
    Column("citizen_sequence", BigInteger, nullable=True),
    Column("reporter_role", String(16), nullable=True),  # NULL for cases stored before it was kept
    Column("channel", String(8), nullable=False, server_default=text("'WEB'")),
    # the registration snapshot of the case's unit (concerned unit, else recipient unit) for statistics
    Column("unit_name", String(200), nullable=True),
    Column("care_provider", String(64), nullable=True),
    Column("region", String(64), nullable=True),
    # covering: statistics read only these columns, and filter on the first
    Index(
        "ix_case_record_stats",
        *STATS_COLUMNS,
    ),
    Index(
        "ix_case_record_desk",
        "handling_unit",
        "received_at",
        "case_id",
        sqlite_where=text("receiving_system = 'internal'"),
        postgresql_where=text("receiving_system = 'internal'"),
    ),
)

#: cases handled in the gateway's own case desk have this receiving system (and route target)
DESK = "internal"

STATUS_BY_UPDATE = {
    "RECEIVED": "RECEIVED",
    "IN_PROGRESS": "IN_PROGRESS",
    "PARTIAL_ANSWER": "IN_PROGRESS",
    "QUESTION": "WAITING_FOR_REPORTER",
    "ANSWER": "ANSWERED",
    "CLOSED": "CLOSED",
    "REDIRECTED": "REDIRECTED",
    "UNIT_CORRECTED": None,  # the concerned unit changes, the status does not
    "CITIZEN_REPLY": "IN_PROGRESS",
    "SUPPLEMENT": None,
}

#: the HSA tree's kind of a patient board (``routing`` catalogue, ``hsa[].kind``)
PATIENT_BOARD_KIND = "patient-board"


_kinds_lock = threading.Lock()
_kinds: tuple[RoutingTable, dict[str, str]] | None = None


def hsa_kind(table: RoutingTable, hsa_id: str) -> str | None:
    """The kind of ``hsa_id`` in the catalogue's HSA tree (unit, patient-board, …); None if not in it.

    Indexed once per catalogue version (a table is immutable; only the active one is asked for)."""
    global _kinds  # one index, replaced when the catalogue version changes
    current = _kinds
    if current is None or current[0] is not table:
        with _kinds_lock:
            current = _kinds
            if current is None or current[0] is not table:
                current = _kinds = (table, {n.hsa_id: n.kind for n in table.catalogue.hsa})
    return current[1].get(hsa_id)


def recipient_type_of(kind: str | None) -> str:
    """The RegisterCase recipientType of a unit of this HSA kind."""
    return "PATIENT_BOARD" if kind == PATIENT_BOARD_KIND else "CARE_UNIT"


def state_of(row: Any, table: RoutingTable) -> CaseState:
    """The state machine's view of a case record row (``status``, ``open_question``,
    ``attachments_allowed``, ``recipient_type``, ``handling_unit``)."""
    board = row.recipient_type == "PATIENT_BOARD" or hsa_kind(table, row.handling_unit) == PATIENT_BOARD_KIND
    return CaseState(row.status, row.open_question, bool(row.attachments_allowed), board)


def age_at(person: PersonId, on: date) -> int | None:
    """Age in whole years on ``on`` from a personnummer or samordningsnummer (day + 60); None if unknown."""
    digits = person.id
    if len(digits) != 12 or not digits.isdigit():
        return None
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    if day > 60:  # samordningsnummer
        day -= 60
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return years if 0 <= years < 150 else None


def local(value: str) -> datetime:
    """A contract timestamp (``YYYYMMDDhhmmss``, Swedish local time) as a naive datetime."""
    return parse_timestamp(value)
