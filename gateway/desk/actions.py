"""Desk actions: each one is what an integrated system's UpdateCase is, sent by the desk for the case.

One transaction per action: the case is read, the person's role checked (a refusal is audited on its
own), the version the person saw compared (``Conflict`` when the case changed since), the update judged by
the shared state machine (``gateway.cases.state``, as for the SOAP path), and then, together: the case
record updated ``WHERE case_id = :id AND version = :seen`` (zero rows: someone else won, ``Conflict``,
nothing written), the UpdateCase to 1177 queued in the outbox with the case's next sequence number, and an
audit row naming who did what (codes and counts, never the text). A refusal writes nothing.

Whether the citizen may attach files is one setting of the case (``attachments_allowed``): the gateway
checks the citizen's messages against it, ALLOW_ATTACHMENTS changes it in the desk, and every IN_PROGRESS
and QUESTION the desk sends carries it to 1177 as ``attachmentsAllowed`` (and may change it too, with
``allow``), as an integrated system's would. SET_CONCERNED_UNIT sends UNIT_CORRECTED with the unit in
``concernedUnit``; the patient board stays the handling unit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, update

from contracts import updatecase
from contracts.attachments import MIME_TYPES, content_matches
from contracts.codelists import CodeLists
from contracts.model import CV, Unit
from gateway.cases.outgoing import SWEDEN, CaseService, contract_timestamp, payload_bytes
from gateway.cases.records import case_record
from gateway.cases.state import CLOSED, CaseState, Refusal, Sender, judge
from gateway.desk import audit
from gateway.desk.errors import Conflict, Refused
from gateway.desk.model import ACTION_KINDS, Action
from gateway.desk.queries import Denied, Queries
from gateway.desk.rules import MESSAGE_KINDS, UPDATE_OF, out_of_order
from gateway.desk.timeline import message_target
from outbox import enqueue

__all__ = ["MAX_ATTACHMENTS", "MAX_TEXT", "Actions"]

MAX_ATTACHMENTS = 10  # per message to the citizen (the 1177 staff tool's limit)
MAX_TEXT = 20_000  # message/text in the contract
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_COLUMNS = {
    "mainProblem": "main_problem",
    "subProblem": "sub_problem",
    "experiencedProblem": "experienced_problem",
    "businessArea": "business_area",
}
#: what a person reads when the state machine refuses (its own messages are for integrated systems)
_REFUSALS = {
    "CASE_CLOSED": "Ärendet är avslutat och kan inte ändras",
    "NOT_SENDERS_UPDATE": "Den här åtgärden kan inte göras från ärendehanteringen",
    "NO_OPEN_QUESTION": "Ärendet har ingen öppen motfråga",
}
_HANDLERS = frozenset({"handler"})
#: the actions whose UpdateCase says whether the citizen may attach files (attachmentsAllowed)
_TELLS_ATTACHMENTS = ("IN_PROGRESS", "QUESTION")
MOVE_REFUSED = "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare"


@dataclass
class _Plan:
    values: dict[str, Any] = field(default_factory=dict)
    message: bytes | None = None
    message_id: str | None = None
    detail: list[str] = field(default_factory=list)


def _text(value: str, what: str, limit: int) -> str:
    if not value.strip():
        raise Refused("TEXT_REQUIRED", f"{what} saknas")
    if len(value) > limit:
        raise Refused("TEXT_TOO_LONG", f"{what} är längre än {limit} tecken")
    if _NOT_XML.search(value):
        raise Refused("INVALID_TEXT", f"{what} innehåller tecken som inte kan skickas")
    return value


class Actions:
    def __init__(
        self,
        engine: Engine,
        queries: Queries,
        code_lists: CodeLists,
        case_service: CaseService,
        max_attachment_bytes: int,
        clock: Callable[[], datetime],
        outbox_clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.queries = queries
        self.code_lists = code_lists
        self.case_service = case_service
        self.max_attachment_bytes = max_attachment_bytes
        self.clock = clock
        self.outbox_clock = outbox_clock

    def act(self, person: str, case_id: str, version: int, action: Action) -> int:
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                self._act(conn, person, case_id, version, action, now)
        except Denied as refused:
            raise self.queries.refuse(
                person, refused.what, case_id=refused.case_id, unit=refused.unit
            ) from None
        return version + 1

    def _act(
        self, conn: Connection, person: str, case_id: str, version: int, action: Action, now: datetime
    ) -> None:
        row = self.queries.case_row(conn, case_id)
        self.queries.require(conn, person, row, _HANDLERS, f"action {action.kind}")
        if int(row.version) != version:
            raise Conflict()
        plan = self._plan(row, action, now)
        decision = self.case_service.route(now) if plan.message is not None else None
        if plan.message is not None and decision is None:
            raise Refused("NO_ROUTE_TO_1177", "Det finns ingen väg till 1177 just nu; försök igen senare")
        changed = conn.execute(
            update(case_record)
            .where(case_record.c.case_id == case_id, case_record.c.version == version)
            .values(version=version + 1, updated_at=now, **plan.values)
        ).rowcount
        if changed != 1:
            raise Conflict()  # another action (or an update from elsewhere) came first
        if plan.message is not None and plan.message_id is not None and decision is not None:
            message = self.case_service.message(decision, case_id, plan.message_id, plan.message)
            enqueue(conn, message, self.outbox_clock())
        audit.record(
            conn,
            now,
            self.queries.actor(person),
            action.kind,
            case_id=case_id,
            target=message_target(plan.message_id) if plan.message_id else None,
            detail=" ".join(plan.detail) or None,
        )

    # -- what an action does ------------------------------------------------------------------------------
    def _plan(self, row: Any, action: Action, now: datetime) -> _Plan:
        kind = action.kind
        if kind not in ACTION_KINDS:
            raise Refused("UNKNOWN_ACTION", f"Okänd åtgärd {kind!r}")
        if row.status == CLOSED:
            raise Refused("CASE_CLOSED", _REFUSALS["CASE_CLOSED"])
        if kind == "MOVE":
            raise Refused("MOVE_NOT_SUPPORTED", MOVE_REFUSED)
        self._no_stray_fields(action)
        if kind == "ALLOW_ATTACHMENTS":
            if not isinstance(action.allow, bool):
                raise Refused("ALLOW_REQUIRED", "Ange om invånaren får bifoga filer (ja eller nej)")
            return _Plan({"attachments_allowed": action.allow}, detail=[f"allow={str(action.allow).lower()}"])
        if out_of_order(kind, row.status):
            raise Refused("NOT_NOW", f"Åtgärden {kind} kan inte göras när ärendet har status {row.status}")
        update_type = UPDATE_OF[kind]
        assert update_type is not None
        message_id = str(uuid.uuid4())
        verdict = judge(
            CaseState(row.status, row.open_question), update_type, Sender.HANDLER, message_id=message_id
        )
        if isinstance(verdict, Refusal):
            raise Refused(verdict.sub_code, _REFUSALS.get(verdict.sub_code, verdict.message))
        sequence = int(row.last_sequence or 0) + 1
        plan = _Plan(
            {
                "status": verdict.status,
                "open_question": verdict.open_question,
                "handler_turn_since": (row.handler_turn_since or now) if verdict.handler_turn else None,
                "last_sequence": sequence,
            },
            message_id=message_id,
            detail=[f"updateType={update_type}", f"sequenceNumber={sequence}"],
        )
        tree = self.queries.access.tree
        request: dict[str, Any] = {
            "case_id": row.case_id,
            "message_id": message_id,
            "sequence_number": sequence,
            "update_type": update_type,
            "created_at": contract_timestamp(now),
            "handling_unit": Unit(row.handling_unit, tree.name(row.handling_unit) or None),
        }
        if kind in MESSAGE_KINDS:
            request.update(self._message(action, plan))
        if kind == "CLOSED":
            closed = row.closed_at or now.astimezone(SWEDEN).replace(tzinfo=None, microsecond=0)
            plan.values["closed_at"] = closed
            request["closed_at"] = closed.strftime("%Y%m%d%H%M%S")
        if kind == "CORRECT_STATISTICS":
            request["statistics"] = self._statistics(row, action, plan)
        if kind == "SET_CONCERNED_UNIT":
            request["concerned_unit"] = self._concerned_unit(row, action, plan)
        if kind in _TELLS_ATTACHMENTS:
            # the desk's setting travels with every IN_PROGRESS and QUESTION, so 1177 knows whether the
            # citizen may attach files; the action may change it at the same time
            allowed = bool(row.attachments_allowed) if action.allow is None else action.allow
            request["attachments_allowed"] = allowed
            plan.values["attachments_allowed"] = allowed
            plan.detail.append(f"attachmentsAllowed={str(allowed).lower()}")
        plan.message = payload_bytes(updatecase.build_request(**request))
        return plan

    @staticmethod
    def _no_stray_fields(action: Action) -> None:
        """Parts of an action that its kind does not take are refused, not silently dropped."""
        kind = action.kind
        if kind not in MESSAGE_KINDS and (action.text is not None or action.attachments):
            raise Refused("NO_MESSAGE_HERE", f"Åtgärden {kind} skickar inget meddelande eller bilagor")
        if kind != "ANSWER" and action.standard_answer is not None:
            raise Refused("STANDARD_ANSWER_NOT_HERE", "Standardsvar kan bara användas i ett slutsvar")
        if kind != "CORRECT_STATISTICS" and action.codes is not None:
            raise Refused("CODES_NOT_HERE", f"Åtgärden {kind} tar inga koder")
        if kind not in ("SET_CONCERNED_UNIT", "MOVE") and action.unit is not None:
            raise Refused("UNIT_NOT_HERE", f"Åtgärden {kind} tar ingen enhet")
        if kind not in ("ALLOW_ATTACHMENTS", *_TELLS_ATTACHMENTS) and action.allow is not None:
            raise Refused("ALLOW_NOT_HERE", f"Åtgärden {kind} tar inget ja eller nej")

    def _message(self, action: Action, plan: _Plan) -> dict[str, Any]:
        text = action.text
        standard: CV | None = None
        if action.standard_answer is not None:
            answers = self.code_lists.for_field("standardAnswer")
            fixed = answers.texts.get(action.standard_answer)
            if fixed is None:
                raise Refused("UNKNOWN_STANDARD_ANSWER", f"Okänt standardsvar {action.standard_answer!r}")
            standard = self.code_lists.cv("standardAnswer", action.standard_answer)
            # the fixed text is sent as it is; the handler's own words, if any, follow it
            text = fixed if not (text or "").strip() else f"{fixed}\n\n{text}"
            plan.detail.append(f"standardAnswer={action.standard_answer}")
        text = _text(text or "", "Meddelandet", MAX_TEXT)
        files = action.attachments
        if len(files) > MAX_ATTACHMENTS:
            raise Refused("TOO_MANY_ATTACHMENTS", f"Högst {MAX_ATTACHMENTS} bilagor per meddelande")
        outgoing = []
        for n, file in enumerate(files, start=1):
            name = _text(file.file_name, f"Filnamnet på bilaga {n}", 255)
            if "/" in name or "\\" in name:
                raise Refused("ATTACHMENT_NAME", f"Filnamnet på bilaga {n} får inte innehålla / eller \\")
            if file.mime_type not in MIME_TYPES:
                raise Refused("ATTACHMENT_TYPE", f"Bilaga {n}: bara PDF, GIF, JPEG och PNG kan skickas")
            if not file.data:
                raise Refused("ATTACHMENT_EMPTY", f"Bilaga {n} är tom")
            if len(file.data) > self.max_attachment_bytes:
                limit = self.max_attachment_bytes // (1024 * 1024)
                raise Refused("ATTACHMENT_TOO_LARGE", f"Bilaga {n} är större än {limit} MB")
            if not content_matches(file.mime_type, file.data):
                raise Refused(
                    "ATTACHMENT_TYPE_MISMATCH", f"Bilaga {n} är inte en fil av typen {file.mime_type}"
                )
            outgoing.append(updatecase.OutgoingAttachment(str(n), name, file.mime_type, file.data))
        if outgoing:
            plan.detail.append(f"attachments={len(outgoing)} ({','.join(a.mime_type for a in outgoing)})")
        return {"message_text": text, "standard_answer": standard, "attachments": outgoing}

    def _statistics(self, row: Any, action: Action, plan: _Plan) -> dict[str, CV]:
        codes = action.codes or {}
        if not codes:
            raise Refused("CODES_REQUIRED", "Ange minst en kod att rätta")
        unknown = sorted(set(codes) - set(_COLUMNS))
        if unknown:
            raise Refused("UNKNOWN_FIELD", f"Okänt fält {unknown[0]!r}: {', '.join(_COLUMNS)}")
        cvs: dict[str, CV] = {}
        for name, code in codes.items():
            try:
                cvs[name] = self.code_lists.cv(name, code)
            except KeyError:
                raise Refused("INVALID_CODE", f"{name}: koden finns inte i kodverket") from None
        # a corrected sub-problem must belong to the main problem the case will have
        checked: dict[str, CV | None] = dict(cvs)
        main = cvs.get("mainProblem") or (
            self.code_lists.cv("mainProblem", row.main_problem) if row.main_problem else None
        )
        checked["mainProblem"] = main
        sub = cvs.get("subProblem")
        if sub is None and row.sub_problem and "mainProblem" in cvs:
            checked["subProblem"] = self.code_lists.cv("subProblem", row.sub_problem)
        problems = self.code_lists.check(checked)
        if problems:
            raise Refused("INVALID_CODE", "; ".join(problems))
        for name, cv in cvs.items():
            plan.values[_COLUMNS[name]] = cv.code
            plan.detail.append(f"{name}={cv.code}")
        return cvs

    def _concerned_unit(self, row: Any, action: Action, plan: _Plan) -> Unit:
        tree = self.queries.access.tree
        board = tree.kind(row.handling_unit) == "patient-board" or row.recipient_type == "PATIENT_BOARD"
        if not board:
            raise Refused(
                "NOT_PATIENT_BOARD", "Bara en patientnämnd kan ange enheten där händelsen inträffade"
            )
        unit = action.unit or ""
        if tree.kind(unit) != "unit":
            raise Refused("UNKNOWN_UNIT", "Välj en enhet ur HSA-trädet")
        plan.values["concerned_unit"] = unit
        plan.detail.append(f"concernedUnit={unit}")
        return Unit(unit, tree.name(unit) or None)
