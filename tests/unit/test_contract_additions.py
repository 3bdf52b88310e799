"""Issue 15's contract additions: new optional elements and enumeration values, read and written.

Old requests stay valid (the minimal payloads of ``test_contract_files``); new requests with every addition
validate with both schema processors and parse into the typed values; ``updatecase.build_request`` writes
the additions in the schema's order.
"""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from contracts import registercase, updatecase
from contracts.model import CAF_CORE_NS, Unit
from tests.unit.test_contract_files import (
    _add,
    _assert_valid,
    _core,
    _is_valid,
    minimal_register_case,
    minimal_update_case,
)

UPDATE_NS, REGISTER_NS = updatecase.NAMESPACE, registercase.NAMESPACE
QUESTION_ID = "6a1d3f0e-9b2c-4e5d-8f7a-1b2c3d4e5f60"


def _with_power_of_attorney(root: etree._Element, **fields: str) -> etree._Element:
    reporter = root.find(f"{{{REGISTER_NS}}}reporter")
    assert reporter is not None
    reporter.find(f"{{{CAF_CORE_NS}}}role").text = "REPRESENTATIVE"  # type: ignore[union-attr]
    power = _core(reporter, "powerOfAttorney")
    for name, value in fields.items():
        _core(power, name, value)
    return root


def test_register_case_with_channel_and_power_of_attorney() -> None:
    root = _with_power_of_attorney(
        minimal_register_case(), kind="POWER_OF_ATTORNEY", reference="FM-2026-0042", validUntil="20271231"
    )
    _add(root, REGISTER_NS, "channel", "PHONE")
    _assert_valid("RegisterCase", root)
    req = registercase.parse(root)
    assert req.channel == "PHONE"
    assert req.reporter_role == "REPRESENTATIVE"
    assert req.power_of_attorney == registercase.PowerOfAttorney(
        "POWER_OF_ATTORNEY", "FM-2026-0042", "20271231"
    )


def test_an_old_register_case_reads_as_web_without_power_of_attorney() -> None:
    req = registercase.parse(minimal_register_case())
    assert (req.channel, req.power_of_attorney) == ("WEB", None)


@pytest.mark.parametrize(
    ("mutation", "valid"),
    [
        ("channel WEB", True),
        ("channel VISIT", True),
        ("channel INBOX", False),  # a contact channel, not how the case came
        ("kind only", True),
        ("kind unknown", False),
        ("reference too long", False),
        ("no kind", False),
    ],
)
def test_register_case_additions_are_checked(mutation: str, valid: bool) -> None:
    root = minimal_register_case()
    if mutation.startswith("channel"):
        _add(root, REGISTER_NS, "channel", mutation.split()[1])
    elif mutation == "kind only":
        _with_power_of_attorney(root, kind="GUARDIANSHIP")
    elif mutation == "kind unknown":
        _with_power_of_attorney(root, kind="MANDATE")
    elif mutation == "reference too long":
        _with_power_of_attorney(root, kind="OTHER", reference="x" * 65)
    elif mutation == "no kind":
        _with_power_of_attorney(root, reference="FM-1")
    assert _is_valid("RegisterCase", root) is valid


def _citizen_reply() -> etree._Element:
    root = minimal_update_case()
    root.find(f"{{{UPDATE_NS}}}updateType").text = "CITIZEN_REPLY"  # type: ignore[union-attr]
    created = root.find(f"{{{UPDATE_NS}}}createdAt")
    assert created is not None
    message = etree.Element(f"{{{UPDATE_NS}}}message")
    _core(message, "text", "Det var på eftermiddagen.")
    created.addnext(message)
    return root


def test_update_case_additions_parse() -> None:
    root = _citizen_reply()
    _add(root, UPDATE_NS, "inReplyTo", QUESTION_ID.upper())
    _add(root, UPDATE_NS, "attachmentsAllowed", " 1 ")
    unit = _add(root, UPDATE_NS, "concernedUnit")
    _core(unit, "unitId", "SE2321000016-7Q6X")
    _core(unit, "unitName", "Vårdcentralen Exempel")
    _assert_valid("UpdateCase", root)
    req = updatecase.parse(root)
    assert req.update_type == "CITIZEN_REPLY"
    assert req.in_reply_to == QUESTION_ID  # UUIDs compare in lower case, as messageId
    assert req.attachments_allowed is True
    assert req.concerned_unit == Unit("SE2321000016-7Q6X", "Vårdcentralen Exempel")


def test_an_old_update_case_has_none_of_the_additions() -> None:
    req = updatecase.parse(minimal_update_case())
    assert (req.in_reply_to, req.attachments_allowed, req.concerned_unit) == (None, None, None)


@pytest.mark.parametrize("update_type", ["CITIZEN_REPLY", "SUPPLEMENT"])
def test_new_update_types_validate(update_type: str) -> None:
    root = minimal_update_case()
    root.find(f"{{{UPDATE_NS}}}updateType").text = update_type  # type: ignore[union-attr]
    assert _is_valid("UpdateCase", root)


def test_additions_before_statistics_are_refused() -> None:
    """They come after statistics: the order of the sequence is the contract's."""
    root = minimal_update_case()
    _add(root, UPDATE_NS, "attachmentsAllowed", "true")
    _add(root, UPDATE_NS, "statistics")
    assert not _is_valid("UpdateCase", root)


@pytest.mark.parametrize("allowed", [True, False])
def test_build_request_writes_the_additions_in_order(allowed: bool) -> None:
    root = updatecase.build_request(
        case_id="C-1",
        message_id=QUESTION_ID,
        sequence_number=3,
        update_type="UNIT_CORRECTED",
        created_at="20261201120000",
        handling_unit=Unit("SE2321000016-PN01"),
        in_reply_to=QUESTION_ID,
        attachments_allowed=allowed,
        concerned_unit=Unit("SE2321000016-7Q6X", "Vårdcentralen Exempel"),
    )
    _assert_valid("UpdateCase", root)
    again = updatecase.parse(copy.deepcopy(root))
    assert again.attachments_allowed is allowed
    assert again.in_reply_to == QUESTION_ID
    assert again.concerned_unit == Unit("SE2321000016-7Q6X", "Vårdcentralen Exempel")
    tail = [etree.QName(child).localname for child in root][-3:]
    assert tail == ["inReplyTo", "attachmentsAllowed", "concernedUnit"]
