"""The case state machine, as a table: (state, update, sender) -> new status or refusal."""

from __future__ import annotations

import pytest

from gateway.cases.state import (
    CaseState,
    Refusal,
    Sender,
    Transition,
    content_refusal,
    judge,
    sequence_refusal,
)

H, C = Sender.HANDLER, Sender.CITIZEN
ROWS = [
    # status, open question, update, sender, expected status or refusal subCode, open question after
    ("REGISTERED", None, "RECEIVED", H, "RECEIVED", None),
    ("RECEIVED", None, "IN_PROGRESS", H, "IN_PROGRESS", None),
    ("IN_PROGRESS", None, "PARTIAL_ANSWER", H, "IN_PROGRESS", None),
    ("IN_PROGRESS", None, "QUESTION", H, "WAITING_FOR_REPORTER", "Q-1"),
    ("WAITING_FOR_REPORTER", "Q-1", "CITIZEN_REPLY", C, "IN_PROGRESS", None),
    ("WAITING_FOR_REPORTER", "Q-1", "ANSWER", H, "ANSWERED", None),
    ("ANSWERED", None, "CLOSED", H, "CLOSED", None),
    ("REGISTERED", None, "CLOSED", H, "CLOSED", None),
    ("IN_PROGRESS", None, "REDIRECTED", H, "REDIRECTED", None),
    ("IN_PROGRESS", None, "UNIT_CORRECTED", H, "IN_PROGRESS", None),
    ("ANSWERED", None, "SUPPLEMENT", C, "ANSWERED", None),
    ("CLOSED", None, "ANSWER", H, "CASE_CLOSED", None),
    ("CLOSED", None, "SUPPLEMENT", C, "CASE_CLOSED", None),
    ("CLOSED", None, "CLOSED", H, "CASE_CLOSED", None),
    ("IN_PROGRESS", None, "CITIZEN_REPLY", C, "NO_OPEN_QUESTION", None),
    ("IN_PROGRESS", None, "CITIZEN_REPLY", H, "NOT_SENDERS_UPDATE", None),
    ("IN_PROGRESS", None, "ANSWER", C, "NOT_SENDERS_UPDATE", None),
]


@pytest.mark.parametrize(("status", "question", "update", "sender", "expected", "after"), ROWS)
def test_transitions(
    status: str, question: str | None, update: str, sender: Sender, expected: str, after: str | None
) -> None:
    result = judge(CaseState(status, question), update, sender, message_id="Q-1")
    if isinstance(result, Refusal):
        assert result.sub_code == expected
    else:
        assert isinstance(result, Transition)
        assert result.status == expected
        assert result.open_question == after
        assert result.closes == (expected == "CLOSED")


def test_a_reply_must_answer_the_open_question() -> None:
    state = CaseState("WAITING_FOR_REPORTER", "Q-1")
    assert isinstance(judge(state, "CITIZEN_REPLY", C, in_reply_to="Q-2"), Refusal)
    assert isinstance(judge(state, "CITIZEN_REPLY", C, in_reply_to="Q-1"), Transition)


def test_whose_turn() -> None:
    assert judge(CaseState("IN_PROGRESS"), "QUESTION", H, message_id="Q").handler_turn is False  # type: ignore[union-attr]
    assert judge(CaseState("WAITING_FOR_REPORTER", "Q"), "CITIZEN_REPLY", C).handler_turn is True  # type: ignore[union-attr]
    assert judge(CaseState("ANSWERED"), "SUPPLEMENT", C).handler_turn is True  # type: ignore[union-attr]


# -- issue 15: attachments, UNIT_CORRECTED, content and sequence rules -------------------------------------
ALLOWED = CaseState("IN_PROGRESS", attachments_allowed=True)
BOARD = CaseState("IN_PROGRESS", patient_board=True)
JUDGED = [
    # state, update, sender, keyword arguments, expected status or refusal subCode
    (CaseState("IN_PROGRESS"), "SUPPLEMENT", C, {"attachments": 1}, "ATTACHMENTS_NOT_ALLOWED"),
    (ALLOWED, "SUPPLEMENT", C, {"attachments": 2}, "IN_PROGRESS"),
    (
        CaseState("WAITING_FOR_REPORTER", "Q"),
        "CITIZEN_REPLY",
        C,
        {"attachments": 1},
        "ATTACHMENTS_NOT_ALLOWED",
    ),
    (
        CaseState("IN_PROGRESS"),
        "IN_PROGRESS",
        H,
        {"attachments": 1},
        "IN_PROGRESS",
    ),  # the handler's own files
    (CaseState("CLOSED", attachments_allowed=True), "SUPPLEMENT", C, {"attachments": 1}, "CASE_CLOSED"),
    (
        CaseState("IN_PROGRESS"),
        "UNIT_CORRECTED",
        H,
        {"corrected_unit": "U", "unit_kind": "unit"},
        "NOT_PATIENT_BOARD_CASE",
    ),
    (BOARD, "UNIT_CORRECTED", H, {"corrected_unit": "U", "unit_kind": None}, "UNKNOWN_UNIT"),
    (BOARD, "UNIT_CORRECTED", H, {"corrected_unit": "U", "unit_kind": "care-provider"}, "UNKNOWN_UNIT"),
    (BOARD, "UNIT_CORRECTED", H, {"corrected_unit": "U", "unit_kind": "unit"}, "IN_PROGRESS"),
    # the desk's correction of codes alone names no unit: any case
    (CaseState("IN_PROGRESS"), "UNIT_CORRECTED", H, {}, "IN_PROGRESS"),
    (CaseState("CLOSED", patient_board=True), "UNIT_CORRECTED", H, {"corrected_unit": "U"}, "CASE_CLOSED"),
]


@pytest.mark.parametrize(("state", "update", "sender", "kwargs", "expected"), JUDGED)
def test_judged_with_the_update_s_content(
    state: CaseState, update: str, sender: Sender, kwargs: dict[str, object], expected: str
) -> None:
    result = judge(state, update, sender, **kwargs)  # type: ignore[arg-type]
    assert (result.sub_code if isinstance(result, Refusal) else result.status) == expected


@pytest.mark.parametrize(
    ("update", "text", "attachments", "expected"),
    [
        ("CITIZEN_REPLY", False, 0, "MESSAGE_REQUIRED"),
        ("CITIZEN_REPLY", False, 1, "MESSAGE_REQUIRED"),
        ("CITIZEN_REPLY", True, 0, None),
        ("SUPPLEMENT", False, 0, "SUPPLEMENT_EMPTY"),
        ("SUPPLEMENT", False, 1, None),
        ("SUPPLEMENT", True, 0, None),
        ("IN_PROGRESS", False, 0, None),
    ],
)
def test_content_rules(update: str, text: bool, attachments: int, expected: str | None) -> None:
    refusal = content_refusal(update, text, attachments)
    assert (refusal.sub_code if refusal is not None else None) == expected


@pytest.mark.parametrize(
    ("last", "number", "stale"), [(None, 1, False), (1, 2, False), (3, 9, False), (3, 3, True), (3, 1, True)]
)
def test_sequence_rule(last: int | None, number: int, stale: bool) -> None:
    assert (sequence_refusal(last, number) is not None) is stale
