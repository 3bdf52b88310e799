"""The case state machine, as a table: (state, update, sender) -> new status or refusal."""

from __future__ import annotations

import pytest

from gateway.cases.state import CaseState, Refusal, Sender, Transition, judge

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
