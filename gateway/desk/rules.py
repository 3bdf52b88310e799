"""Which desk actions a person may take on a case now: from their role and the case's state.

The state machine (``gateway.cases.state``) decides what an update does; these rules only keep the desk's
buttons sensible (RECEIVED and IN_PROGRESS only before work has started) and say what needs a handler.
"""

from __future__ import annotations

from gateway.cases.state import CLOSED, RECEIVED, REDIRECTED, REGISTERED

__all__ = ["MESSAGE_KINDS", "UPDATE_OF", "out_of_order", "possible"]

#: actions that send a message to the citizen (text required, attachments allowed)
MESSAGE_KINDS = frozenset({"PARTIAL_ANSWER", "QUESTION", "ANSWER"})

#: the updateType each action sends (None: desk state only)
UPDATE_OF: dict[str, str | None] = {
    "RECEIVED": "RECEIVED",
    "IN_PROGRESS": "IN_PROGRESS",
    "PARTIAL_ANSWER": "PARTIAL_ANSWER",
    "QUESTION": "QUESTION",
    "ANSWER": "ANSWER",
    "CLOSED": "CLOSED",
    "ALLOW_ATTACHMENTS": None,
    # the contract has no updateType for corrected codes alone: UNIT_CORRECTED leaves the status as it is
    # and carries statistics, with the handling unit unchanged
    "CORRECT_STATISTICS": "UNIT_CORRECTED",
    "SET_CONCERNED_UNIT": "UNIT_CORRECTED",
}

_BEFORE_WORK = {
    "RECEIVED": frozenset({REGISTERED, REDIRECTED}),
    "IN_PROGRESS": frozenset({REGISTERED, REDIRECTED, RECEIVED}),
}


def possible(status: str, roles: set[str] | frozenset[str], patient_board: bool) -> list[str]:
    """The action kinds a person with ``roles`` may take on a case in ``status``, in the desk's order."""
    if "handler" not in roles or status == CLOSED:
        return []
    kinds = []
    for kind in UPDATE_OF:
        allowed_in = _BEFORE_WORK.get(kind)
        if allowed_in is not None and status not in allowed_in:
            continue
        if kind == "SET_CONCERNED_UNIT" and not patient_board:
            continue
        kinds.append(kind)
    return kinds


def out_of_order(kind: str, status: str) -> bool:
    """True for RECEIVED / IN_PROGRESS once the case is further along (they would move it back)."""
    allowed_in = _BEFORE_WORK.get(kind)
    return allowed_in is not None and status not in allowed_in and status != CLOSED
