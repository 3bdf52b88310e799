"""The state machine of a case: which update may follow which, from whom, and where it leads.

One judge for every update, whether it comes from an integrated system over SOAP, from a handler in the
case desk, or from 1177 (the citizen's reply or supplement)::

    REGISTERED ─RECEIVED─▶ RECEIVED ─IN_PROGRESS / PARTIAL_ANSWER─▶ IN_PROGRESS ─ANSWER─▶ ANSWERED
        │                     │              │  ▲                                           │
        │                     │        QUESTION │ CITIZEN_REPLY                             │
        │                     │              ▼  │                                           │
        │                     │       WAITING_FOR_REPORTER                                  │
        └─────────────────────┴─────── CLOSED from any open state (final) ◀─────────────────┘

``REDIRECTED`` hands the case to another unit (status ``REDIRECTED`` until its new system answers);
``UNIT_CORRECTED`` and ``SUPPLEMENT`` leave the status as it is. After ``CLOSED`` nothing is accepted from
anyone (``CASE_CLOSED``); a citizen's reply needs an open question (``NO_OPEN_QUESTION``, also when
``inReplyTo`` names another message); updates that only the handling side may send are refused from 1177
and the other way round (``NOT_SENDERS_UPDATE``); the citizen attaches files only when the handler allowed
it for the case (``ATTACHMENTS_NOT_ALLOWED``); ``UNIT_CORRECTED`` that names a corrected unit is for
patient-board cases only (``NOT_PATIENT_BOARD_CASE``) and the unit must be a unit of the HSA tree
(``UNKNOWN_UNIT``). ``content_refusal`` holds the rules that need no state: a reply has text
(``MESSAGE_REQUIRED``), a supplement has text or attachments (``SUPPLEMENT_EMPTY``).

Sequence numbers are kept per case and sender (``sequence_refusal``): the handling side's and 1177's
are compared with their own last accepted number (``STALE_SEQUENCE``).

Nothing here touches the database: callers read the case's state, ask ``judge``, and store what it says in
the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CLOSED",
    "OPEN_STATES",
    "CaseState",
    "Refusal",
    "Sender",
    "Transition",
    "content_refusal",
    "judge",
    "sequence_refusal",
]

REGISTERED = "REGISTERED"
RECEIVED = "RECEIVED"
IN_PROGRESS = "IN_PROGRESS"
WAITING_FOR_REPORTER = "WAITING_FOR_REPORTER"
ANSWERED = "ANSWERED"
REDIRECTED = "REDIRECTED"
CLOSED = "CLOSED"
OPEN_STATES = frozenset({REGISTERED, RECEIVED, IN_PROGRESS, WAITING_FOR_REPORTER, ANSWERED, REDIRECTED})


class Sender(enum.Enum):
    HANDLER = "handler"  # the case's handling system, or a handler in the desk
    CITIZEN = "citizen"  # 1177, on the citizen's behalf


#: the status each handler update leads to (None: unchanged)
_HANDLER_UPDATES: dict[str, str | None] = {
    "RECEIVED": RECEIVED,
    "IN_PROGRESS": IN_PROGRESS,
    "PARTIAL_ANSWER": IN_PROGRESS,
    "QUESTION": WAITING_FOR_REPORTER,
    "ANSWER": ANSWERED,
    "CLOSED": CLOSED,
    "REDIRECTED": REDIRECTED,
    "UNIT_CORRECTED": None,
}
_CITIZEN_UPDATES: dict[str, str | None] = {"CITIZEN_REPLY": IN_PROGRESS, "SUPPLEMENT": None}


@dataclass(frozen=True)
class CaseState:
    status: str
    #: the messageId of the question the citizen has not answered yet
    open_question: str | None = None
    #: whether the handler allowed the citizen to attach files (the latest attachmentsAllowed)
    attachments_allowed: bool = False
    #: the case's recipient is a patient board
    patient_board: bool = False


@dataclass(frozen=True)
class Transition:
    status: str
    open_question: str | None
    #: True when the handler is expected to act next (the desk's "waiting for the handler")
    handler_turn: bool
    closes: bool = False


@dataclass(frozen=True)
class Refusal:
    sub_code: str
    message: str


def judge(
    state: CaseState,
    update_type: str,
    sender: Sender,
    *,
    message_id: str = "",
    in_reply_to: str | None = None,
    attachments: int = 0,
    corrected_unit: str | None = None,
    unit_kind: str | None = None,
) -> Transition | Refusal:
    """What ``update_type`` from ``sender`` does to a case in ``state``, or why it is refused.

    ``attachments``: how many files the update carries; ``corrected_unit``: the unit a UNIT_CORRECTED
    names (None for a correction of codes only) and ``unit_kind`` its kind in the HSA tree (None: unknown).
    """
    if state.status == CLOSED:
        return Refusal("CASE_CLOSED", "the case is closed and takes no further updates")
    table = _HANDLER_UPDATES if sender is Sender.HANDLER else _CITIZEN_UPDATES
    if update_type not in table:
        side = "the handling system" if sender is Sender.CITIZEN else "1177"
        return Refusal("NOT_SENDERS_UPDATE", f"updateType {update_type} is sent by {side} only")
    if sender is Sender.CITIZEN and attachments and not state.attachments_allowed:
        return Refusal("ATTACHMENTS_NOT_ALLOWED", "the handler has not allowed attachments for this case")
    if update_type == "UNIT_CORRECTED" and corrected_unit is not None:
        if not state.patient_board:
            return Refusal("NOT_PATIENT_BOARD_CASE", "UNIT_CORRECTED is only for cases to a patient board")
        if unit_kind != "unit":
            return Refusal("UNKNOWN_UNIT", "the corrected unit is not a unit of the HSA tree")
    target = table[update_type] or state.status
    question = state.open_question
    if update_type == "CITIZEN_REPLY":
        if question is None:
            return Refusal("NO_OPEN_QUESTION", "the case has no open question to reply to")
        if in_reply_to is not None and in_reply_to != question:
            return Refusal("NO_OPEN_QUESTION", "inReplyTo is not the case's open question")
        question = None
    elif update_type == "QUESTION":
        question = message_id or question
    elif update_type in ("ANSWER", "CLOSED", "REDIRECTED"):
        question = None
    if sender is Sender.CITIZEN:
        handler_turn = True
    else:
        handler_turn = target in (REGISTERED, RECEIVED, IN_PROGRESS, REDIRECTED)
    return Transition(target, question, handler_turn, closes=target == CLOSED)


def content_refusal(update_type: str, has_text: bool, attachments: int) -> Refusal | None:
    """The rules of a citizen's update that need no case state; None when it may go on to ``judge``."""
    if update_type == "CITIZEN_REPLY" and not has_text:
        return Refusal("MESSAGE_REQUIRED", "updateType CITIZEN_REPLY needs message/text")
    if update_type == "SUPPLEMENT" and not has_text and not attachments:
        return Refusal("SUPPLEMENT_EMPTY", "updateType SUPPLEMENT needs message/text or an attachment")
    return None


def sequence_refusal(last_accepted: int | None, sequence_number: int) -> Refusal | None:
    """A sequence number not above the sender's last accepted one for the case is stale."""
    if last_accepted is not None and sequence_number <= last_accepted:
        return Refusal("STALE_SEQUENCE", "sequenceNumber is not above the last accepted for this case")
    return None
