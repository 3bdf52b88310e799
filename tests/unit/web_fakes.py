"""An in-memory ``Desk`` for the web app's unit tests: the desk's interface, its rules in small.

It keeps grants and cases in dicts, judges actions with the real state machine (``gateway.cases.state``),
checks the optimistic-lock version and the person's role like the real desk, and records what it was asked
(``acted``), so tests can see exactly what a form or a JSON body turned into. Integration and browser tests
use the real desk.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.cases.state import CaseState, Refusal, Sender, judge
from gateway.desk import (
    Action,
    AttachmentRef,
    CaseNotFound,
    CasePage,
    CaseSummary,
    CaseView,
    CodeText,
    Conflict,
    Desk,
    Forbidden,
    Grant,
    PersonView,
    Refused,
    TimelineEvent,
)

HANDLER = "SE2321000016-HND1"
READER = "SE2321000016-RDR1"
OTHER = "SE2321000016-OTH1"
NOBODY = "SE2321000016-NOB1"
UNIT = "SE2321000016-9K2M"
OTHER_UNIT = "SE2321000016-7Q6X"
BOARD = "SE2321000016-PN01"
PROVIDER = "SE2321000016-VG01"
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)

UNIT_NAMES = {
    UNIT: "Vårdcentralen Desk",
    OTHER_UNIT: "Vårdcentralen Exempel",
    BOARD: "Patientnämnden Region Exempel",
}
PARENTS = {UNIT: PROVIDER, OTHER_UNIT: PROVIDER, BOARD: "SE2321000016-R001", PROVIDER: "SE2321000016-R001"}
STANDARD = [
    ("1", "Tack för din synpunkt", "Tack för att du har hört av dig. Vi har läst din synpunkt."),
    ("2", "Ärendet har tagits emot", "Vi har tagit emot ditt ärende och återkommer."),
]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _ancestors(unit: str) -> list[str]:
    chain = [unit]
    while chain[-1] in PARENTS:
        chain.append(PARENTS[chain[-1]])
    return [*chain, "SE"]


class FakeDesk(Desk):
    def __init__(self) -> None:  # no engine, no routing: everything in memory
        self.grants_by_person: dict[str, list[Grant]] = {}
        self.cases_by_id: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str], tuple[str, str, bytes]] = {}
        self.acted: list[tuple[str, str, int, Action]] = []
        self.denied: list[tuple[str, str]] = []
        self.exports: list[str] = []

    # -- access -------------------------------------------------------------------------------------------
    def add_grant(self, person: str, scope: str, role: str) -> None:
        self.grants_by_person.setdefault(person, []).append(
            Grant(person, scope, role, "SE2321000016-ADM1", NOW)
        )

    def grants(self, person: str) -> list[Grant]:
        return list(self.grants_by_person.get(person, []))

    def roles_for(self, person: str, unit: str) -> set[str]:
        scopes = set(_ancestors(unit))
        return {g.role for g in self.grants(person) if g.scope in scopes}

    def units(self, person: str) -> list[tuple[str, str]]:
        return [(u, n) for u, n in UNIT_NAMES.items() if self.roles_for(person, u) & {"reader", "handler"}]

    # -- cases --------------------------------------------------------------------------------------------
    def add_case(self, case_id: str, **values: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "case_id": case_id,
            "category": "COMPLAINT",
            "status": "RECEIVED",
            "version": 1,
            "channel": "WEB",
            "recipient_type": "CARE_UNIT",
            "handling_unit": UNIT,
            "location_description": None,
            "concerned_unit": None,
            "event_date": date(2026, 3, 1),
            "submitted_at": datetime(2026, 3, 2, 10, 15),
            "received_at": NOW - timedelta(days=8),
            "closed_at": None,
            "reporter_role": "SUBJECT_OF_CARE",
            "reporter": PersonView(
                "Anna", "Andersson", "191212121212", "070-1234567", "anna@example.invalid"
            ),
            "subject": PersonView("Anna", "Andersson", "191212121212"),
            "description": "Jag fick vänta länge.\nIngen sa något.",
            "codes": {"mainProblem": CodeText("1", "Vård och behandling")},
            "reply_wanted": True,
            "contact_channel": "INBOX",
            "attachments_allowed": False,
            "open_question": None,
            "handler_turn": True,
            "waiting_since": NOW - timedelta(days=8),
            "attachments": [],
            "timeline": [
                TimelineEvent(NOW - timedelta(days=8), "in", "RegisterCase", "SE5565594230-1177"),
            ],
        }
        record.update(values)
        if "received_at" in values and "waiting_since" not in values:
            record["waiting_since"] = values["received_at"]
        self.cases_by_id[case_id] = record
        return record

    def add_file(
        self, case_id: str, name: str, mime: str, data: bytes, direction: str = "from-citizen"
    ) -> str:
        ref = f"in-{len(self.files) + 1}-0"
        self.files[(case_id, ref)] = (name, mime, data)
        self.cases_by_id[case_id]["attachments"].append(AttachmentRef(ref, name, mime, len(data), direction))
        return ref

    def _case(self, person: str, case_id: str, role: str = "reader") -> dict[str, Any]:
        record = self.cases_by_id.get(case_id)
        if record is None:
            raise CaseNotFound("Ärendet finns inte")
        roles = self.roles_for(person, record["handling_unit"])
        if not roles & ({"reader", "handler"} if role == "reader" else {"handler"}):
            self.denied.append((person, case_id))
            raise Forbidden("Du har inte behörighet till ärendet")
        return record

    def _actions(self, record: dict[str, Any], roles: set[str]) -> list[str]:
        if "handler" not in roles or record["status"] == "CLOSED":
            return []
        state = CaseState(record["status"], record["open_question"])
        kinds = [
            k
            for k in ("RECEIVED", "IN_PROGRESS", "PARTIAL_ANSWER", "QUESTION", "ANSWER", "CLOSED")
            if not isinstance(judge(state, k, Sender.HANDLER), Refusal)
        ]
        if record["status"] != "REGISTERED":
            kinds.remove("RECEIVED")
        kinds += ["ALLOW_ATTACHMENTS", "CORRECT_STATISTICS"]
        if record["recipient_type"] == "PATIENT_BOARD":
            kinds.append("SET_CONCERNED_UNIT")
        return kinds

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
        if unit is not None and not self.roles_for(person, unit) & {"reader", "handler"}:
            raise Forbidden("Du har inte behörighet till enheten")
        visible = [
            r
            for r in self.cases_by_id.values()
            if self.roles_for(person, r["handling_unit"]) & {"reader", "handler"}
            and (unit is None or r["handling_unit"] == unit)
            and (status is None or r["status"] == status)
            and (category is None or r["category"] == category)
            and (case_id is None or r["case_id"] == case_id)
            and (received_from is None or r["received_at"].date() >= received_from)
            and (received_to is None or r["received_at"].date() <= received_to)
            and (
                waiting_days is None
                or (r["handler_turn"] and r["waiting_since"] < NOW - timedelta(days=waiting_days))
            )
        ]
        visible.sort(key=lambda r: r["received_at"], reverse=True)
        chunk = visible[(page - 1) * per_page : page * per_page]
        items = [
            CaseSummary(
                r["case_id"],
                r["category"],
                r["status"],
                r["handling_unit"],
                UNIT_NAMES.get(r["handling_unit"], ""),
                r["received_at"],
                r["waiting_since"] if r["handler_turn"] else None,
                r["handler_turn"],
                "Klagomål: " + r["codes"].get("mainProblem", CodeText("", "okänt")).text,
                r["version"],
            )
            for r in chunk
        ]
        return CasePage(items, len(visible), page, per_page)

    def case(self, person: str, case_id: str) -> CaseView:
        record = self._case(person, case_id)
        roles = self.roles_for(person, record["handling_unit"])
        values = {f.name: record[f.name] for f in dataclasses.fields(CaseView) if f.name in record}
        return (
            CaseView(
                **values,
                unit_name=UNIT_NAMES.get(record["handling_unit"], ""),
                patient_board=record["recipient_type"] == "PATIENT_BOARD",
                concerned_unit_name=UNIT_NAMES.get(record["concerned_unit"] or ""),
                actions=self._actions(record, roles),
                roles=frozenset(roles),
            )
            if "handler" in roles
            else CaseView(
                **{**values, "reporter": None},
                unit_name=UNIT_NAMES.get(record["handling_unit"], ""),
                patient_board=record["recipient_type"] == "PATIENT_BOARD",
                concerned_unit_name=UNIT_NAMES.get(record["concerned_unit"] or ""),
                actions=[],
                roles=frozenset(roles),
            )
        )

    def attachment(self, person: str, case_id: str, ref: str) -> tuple[str, str, bytes]:
        self._case(person, case_id)
        found = self.files.get((case_id, ref))
        if found is None:
            raise CaseNotFound("Bilagan finns inte")
        return found

    def standard_answers(self) -> list[tuple[str, str, str]]:
        return list(STANDARD)

    def act(self, person: str, case_id: str, version: int, action: Action) -> int:
        record = self._case(person, case_id, role="handler")
        self.acted.append((person, case_id, version, action))
        if version != record["version"]:
            raise Conflict()
        if action.kind == "MOVE":
            raise Refused(
                "MOVE_NOT_SUPPORTED",
                "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare",
            )
        if action.kind in ("PARTIAL_ANSWER", "QUESTION") and not action.text:
            raise Refused("TEXT_REQUIRED", "Meddelandet saknas")
        if action.kind == "ANSWER" and not (action.text or action.standard_answer):
            raise Refused("TEXT_REQUIRED", "Meddelandet saknas")
        if action.standard_answer is not None and action.standard_answer not in {c for c, _, _ in STANDARD}:
            raise Refused("UNKNOWN_STANDARD_ANSWER", f"Okänt standardsvar {action.standard_answer!r}")
        for n, new in enumerate(action.attachments, start=1):
            if new.mime_type == "application/pdf" and not new.data.startswith(b"%PDF"):
                raise Refused(
                    "ATTACHMENT_TYPE_MISMATCH", f"Bilaga {n} är inte en fil av typen {new.mime_type}"
                )
        if action.kind in ("RECEIVED", "IN_PROGRESS", "PARTIAL_ANSWER", "QUESTION", "ANSWER", "CLOSED"):
            verdict = judge(CaseState(record["status"], record["open_question"]), action.kind, Sender.HANDLER)
            if isinstance(verdict, Refusal):
                raise Refused(verdict.sub_code, verdict.message)
            record["status"] = verdict.status
            record["open_question"] = verdict.open_question
            record["handler_turn"] = verdict.handler_turn
            if verdict.closes:
                record["closed_at"] = NOW.replace(tzinfo=None)
        elif record["status"] == "CLOSED":
            raise Refused("CASE_CLOSED", "the case is closed")
        if action.kind == "ALLOW_ATTACHMENTS":
            record["attachments_allowed"] = bool(action.allow)
        if action.kind == "SET_CONCERNED_UNIT":
            if record["recipient_type"] != "PATIENT_BOARD":
                raise Refused("NOT_PATIENT_BOARD", "inte patientnämnd")
            record["concerned_unit"] = action.unit
        answer = next((n for c, n, _ in STANDARD if c == action.standard_answer), None)
        record["timeline"].append(
            TimelineEvent(NOW, "out", action.kind, person, action.text, answer, [], "pending")
        )
        record["version"] += 1
        return int(record["version"])

    def export(self, person: str, case_id: str) -> bytes:
        self._case(person, case_id, role="handler")
        self.exports.append(case_id)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("RegisterCase.xml", "<RegisterCase/>")
        return out.getvalue()


class FixedIdentity:
    """Whoever the test says is asking (``None``: no certificate)."""

    def __init__(self, person: str | None = HANDLER) -> None:
        self.person = person

    def caller(self, environ: Any) -> str:
        from gateway.errors import IdentityError

        header = environ.get("HTTP_X_TEST_PERSON")
        person = header if header is not None else self.person
        if not person:
            raise IdentityError("No client certificate")
        return str(person)


def unit_choices() -> Sequence[tuple[str, str]]:
    return [(UNIT, UNIT_NAMES[UNIT]), (OTHER_UNIT, UNIT_NAMES[OTHER_UNIT])]


def standard_desk() -> FakeDesk:
    """Grants and cases most tests start from."""
    desk = FakeDesk()
    desk.add_grant(HANDLER, UNIT, "handler")
    desk.add_grant(READER, PROVIDER, "reader")
    desk.add_grant(OTHER, OTHER_UNIT, "handler")
    desk.add_case("CASE-1")
    desk.add_file("CASE-1", "journal.pdf", "application/pdf", PDF)
    desk.add_case("CASE-2", status="REGISTERED", category="FEEDBACK", received_at=NOW - timedelta(days=1))
    desk.add_case(
        "CASE-PN",
        recipient_type="PATIENT_BOARD",
        handling_unit=BOARD,
        location_description="Akuten, på natten",
        received_at=NOW - timedelta(days=3),
    )
    desk.add_grant(HANDLER, BOARD, "handler")
    desk.add_case("CASE-OTHER", handling_unit=OTHER_UNIT)
    return desk
