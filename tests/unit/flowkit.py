"""An in-process gateway for the case-flow tests of both directions (issue 15): the SOAP app (WSGI, no
sockets) of ``deskkit`` on a catalogue of its own, where 1177, two regional systems and the desk each
handle units, and every party may call every contract where the catalogue routes it.

Requests are written with ``updatecase.build_request`` and the RegisterCase example; ``snapshot`` is
everything a request can write (inbox, outbox, case records), to show a refusal leaves nothing behind.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from sqlalchemy import select

from contracts import registercase, updatecase
from contracts.model import CAF_CORE_NS, Unit
from gateway.cases.inbox import inbox_message
from gateway.cases.records import case_record
from outbox.schema import outbox_message
from tests.unit.deskkit import Gateway, board_payload, register_payload

INERA = "SE5565594230-1177"  # 1177: the component of the case service's endpoint
SYSTEM_A = "SE2321000016-DEV1"
SYSTEM_B = "SE2321000016-DEV2"
UNIT_A = "SE2321000016-7Q6X"  # handled by system A
UNIT_A2 = "SE2321000016-7Q6Y"  # handled by system A too
UNIT_B = "SE2321000016-8B8B"  # handled by system B
DESK_UNIT = "SE2321000016-9K2M"  # handled in the desk
BOARD = "SE2321000016-PN01"  # a patient board, handled by system B
CARE_PROVIDER = "SE2321000016-VG01"
REGION = "SE2321000016-R001"
CASE_SERVICE = "SE5565594230-CAF1"
PDF = b"%PDF-1.4 fictional"
CORE = "{" + CAF_CORE_NS + "}"

_R, _U = registercase.NAMESPACE, updatecase.NAMESPACE
_UNITS = {
    UNIT_A: "system-a",
    UNIT_A2: "system-a",
    UNIT_B: "system-b",
    DESK_UNIT: "internal",
    BOARD: "system-b",
}


def _endpoint(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "component": component, "url": f"https://localhost:9/{name}/never-called"}


CATALOGUE: dict[str, Any] = {
    "components": [{"hsa_id": h} for h in (INERA, SYSTEM_A, SYSTEM_B)],
    "endpoints": [
        _endpoint("1177-case-service", INERA),
        _endpoint("system-a", SYSTEM_A),
        _endpoint("system-b", SYSTEM_B),
    ],
    "contracts": [
        {"namespace": _R, "name": "RegisterCase", "hsa_climb": True},
        {"namespace": _U, "name": "UpdateCase", "hsa_climb": False},
    ],
    "addresses": [{"address": a} for a in (*_UNITS, CASE_SERVICE, CARE_PROVIDER)],
    "hsa": [
        {"hsa_id": REGION, "kind": "region", "name": "Region Exempel", "parent": "SE"},
        {"hsa_id": CARE_PROVIDER, "kind": "care-provider", "name": "Vårdgivaren", "parent": REGION},
        {"hsa_id": UNIT_A, "kind": "unit", "name": "Vårdcentralen A", "parent": CARE_PROVIDER},
        {"hsa_id": UNIT_A2, "kind": "unit", "name": "Vårdcentralen A2", "parent": CARE_PROVIDER},
        {"hsa_id": UNIT_B, "kind": "unit", "name": "Vårdcentralen B", "parent": CARE_PROVIDER},
        {"hsa_id": DESK_UNIT, "kind": "unit", "name": "Vårdcentralen Desk", "parent": CARE_PROVIDER},
        {"hsa_id": BOARD, "kind": "patient-board", "name": "Patientnämnden", "parent": REGION},
    ],
    "routes": [
        *({"contract": c, "address": a, "target": t} for a, t in _UNITS.items() for c in (_R, _U)),
        {"contract": _R, "address": CASE_SERVICE, "target": "1177-case-service"},
        {"contract": _U, "address": CASE_SERVICE, "target": "1177-case-service"},
    ],
    "permissions": [
        {"consumer": who, "contract": c, "address": "*"}
        for who in (INERA, SYSTEM_A, SYSTEM_B)
        for c in (_R, _U)
    ],
}


class FlowGateway(Gateway):
    def __init__(self, db_url: str, tmp: Path) -> None:
        path = tmp / "flow-catalogue.yaml"
        path.write_text(yaml.safe_dump(CATALOGUE, allow_unicode=True), encoding="utf-8")
        super().__init__(db_url, tmp, catalogue=path)

    def update(
        self, caller: str, address: str, case_id: str, update_type: str, sequence: int, **fields: Any
    ) -> dict[str, str | None]:
        fields.setdefault("message_id", str(uuid.uuid4()))
        if update_type in ("PARTIAL_ANSWER", "QUESTION", "ANSWER", "CITIZEN_REPLY"):
            fields.setdefault("message_text", "Ett meddelande.")
        if update_type == "CLOSED":
            fields.setdefault("closed_at", "20261201120000")
        payload = updatecase.build_request(
            case_id=case_id,
            sequence_number=sequence,
            update_type=update_type,
            created_at="20261201110000",
            **fields,
        )
        return self.call(payload, address, caller)

    def outbox(self, case_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox_message)
                .where(outbox_message.c.stream == case_id)
                .order_by(outbox_message.c.seq)
            ).all()
        return [dict(row._mapping) for row in rows]

    def snapshot(self) -> tuple[list[Any], list[Any], list[Any]]:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(inbox_message.c.id).order_by(inbox_message.c.id)).all(),
                conn.execute(select(outbox_message.c.id).order_by(outbox_message.c.id)).all(),
                conn.execute(select(case_record).order_by(case_record.c.case_id)).all(),
            )


def ok(result: dict[str, str | None]) -> None:
    assert result["resultCode"] == "OK", result


def attachment(n: int = 1) -> updatecase.OutgoingAttachment:
    return updatecase.OutgoingAttachment(str(n), f"bilaga-{n}.pdf", "application/pdf", PDF)


def case_payload(case_id: str, unit: str, *, channel: str | None = None) -> etree._Element:
    """The example RegisterCase for ``unit`` (a patient board's with a location), with ``channel``."""
    root = board_payload(case_id) if unit == BOARD else register_payload(case_id, unit)
    name = root.find(f"{{{_R}}}recipient/{CORE}unit/{CORE}unitName")
    if name is not None:
        name.text = "Mottagaren"
    if channel is not None:
        etree.SubElement(root, f"{{{_R}}}channel").text = channel
    return root


def representative(root: etree._Element) -> etree._Element:
    """``root`` filed by a representative with a power of attorney."""
    root = copy.deepcopy(root)
    reporter = root.find(f"{{{_R}}}reporter")
    assert reporter is not None
    role = reporter.find(f"{CORE}role")
    assert role is not None
    role.text = "REPRESENTATIVE"
    power = etree.SubElement(reporter, f"{CORE}powerOfAttorney")
    etree.SubElement(power, f"{CORE}kind").text = "POWER_OF_ATTORNEY"
    etree.SubElement(power, f"{CORE}reference").text = "FM-2026-0042"
    etree.SubElement(power, f"{CORE}validUntil").text = "20271231"
    return root


def unit(hsa_id: str, name: str | None = None) -> Unit:
    return Unit(hsa_id, name)
