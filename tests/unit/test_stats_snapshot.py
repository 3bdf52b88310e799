"""The registration snapshot: the unit's name, care provider and region from the routing version's HSA tree
(the request's own unit fields where the tree lacks them); migration 0007 fills existing rows; a closed case
always has its closed date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from gateway import migrate
from gateway.cases.records import case_record
from gateway.db import make_engine
from gateway.stats.snapshot import UnitSnapshot, snapshot_of
from routing.model import HsaNode
from tests.unit.deskkit import (
    CARE_PROVIDER,
    CASE_SERVICE,
    DESK_UNIT,
    DEV1,
    OTHER_UNIT,
    REGION,
    Gateway,
    update_payload,
)
from tests.unit.test_stats_query import CASES

TREE = (
    HsaNode(hsa_id="R1", parent="SE", kind="region", name="Region"),
    HsaNode(hsa_id="VG1", parent="R1", kind="care-provider", name="Provider"),
    HsaNode(hsa_id="U1", parent="VG1", kind="unit", name="Unit one"),
    HsaNode(hsa_id="U2", parent="R1", kind="unit", name=""),
    HsaNode(hsa_id="LOOP", parent="LOOP", kind="unit", name="Loop"),
)


def test_the_tree_wins_and_the_request_fills_gaps() -> None:
    assert snapshot_of(TREE, "U1", "Other name", "VGX", "RX") == UnitSnapshot("Unit one", "VG1", "R1")
    assert snapshot_of(TREE, "U2", "Named", "VGX") == UnitSnapshot("Named", "VGX", "R1")
    assert snapshot_of(TREE, "NOPE", "N", "VGX", "RX") == UnitSnapshot("N", "VGX", "RX")
    assert snapshot_of(TREE, "NOPE") == UnitSnapshot(None, None, None)
    assert snapshot_of(TREE, "LOOP") == UnitSnapshot("Loop", None, None)
    assert snapshot_of(list(TREE), "U1") == UnitSnapshot("Unit one", "VG1", "R1")


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    yield gateway
    gateway.close()


def test_registration_takes_the_snapshot(gw: Gateway) -> None:
    gw.register("SNAP-1", DESK_UNIT)
    record = gw.record("SNAP-1")
    assert (record["unit_name"], record["care_provider"], record["region"]) == (
        "Vårdcentralen Desk",
        CARE_PROVIDER,
        REGION,
    )


def test_a_soap_closed_needs_closed_at(gw: Gateway) -> None:
    """The SOAP path: a CLOSED without closedAt is refused, so every closed case has its closed time."""
    gw.register("CLOSE-1", OTHER_UNIT)
    payload = update_payload("CLOSE-1", "CLOSED", 1)
    closed_at = payload.find("{*}closedAt")
    assert closed_at is not None
    payload.remove(closed_at)
    assert gw.call(payload, CASE_SERVICE, DEV1)["subCode"] == "CLOSED_AT_REQUIRED"
    assert gw.call(update_payload("CLOSE-1", "CLOSED", 1), CASE_SERVICE, DEV1)["resultCode"] == "OK"
    record = gw.record("CLOSE-1")
    assert (record["status"], record["closed_at"]) == ("CLOSED", datetime(2026, 11, 27, 12))


def test_migration_fills_existing_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0006")
        content = '{"hsa": [{"hsa_id": "SE-VG", "parent": "SE-R", "kind": "care-provider", "name": "P"},'
        content += ' {"hsa_id": "SE-R", "parent": "SE", "kind": "region", "name": "R"},'
        content += ' {"hsa_id": "SE-U1", "parent": "SE-VG", "kind": "unit", "name": "Unit 1"}]}'
        old = [
            {k: v for k, v in case.items() if k not in ("unit_name", "care_provider", "region")}
            for case in CASES
        ]
        old[2] = {**old[2], "status": "CLOSED", "updated_at": datetime(2026, 11, 5, 11, tzinfo=UTC)}
        columns = ", ".join(old[0])
        values = ", ".join(f":{name}" for name in old[0])
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO routing_version (version, content_hash, author, created_at, comment, source,"
                    " content) VALUES (1, 'x', 't', :at, '', 'test', :content)"
                ),
                {"at": datetime.now(UTC), "content": content},
            )
            insert = f"INSERT INTO case_record ({columns}) VALUES ({values})"  # noqa: S608 (fixed names)
            conn.execute(text(insert), old)
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    case_record.c.case_id,
                    case_record.c.unit_name,
                    case_record.c.care_provider,
                    case_record.c.region,
                )
            ).all()
        snapshot = {row.case_id: (row.unit_name, row.care_provider, row.region) for row in rows}
        assert snapshot["C001"] == ("Unit 1", "SE-VG", "SE-R")  # SE-U1
        assert snapshot["C009"] == ("Unit 1", "SE-VG", "SE-R")  # concerned unit SE-U1
        assert snapshot["C006"] == (None, None, None)  # SE-U2: not in the tree
        with engine.connect() as conn:
            closed = conn.execute(
                select(case_record.c.closed_at).where(case_record.c.case_id == "C003")
            ).scalar()
        assert closed == datetime(2026, 11, 5, 12)  # Swedish local time of its last change
    finally:
        engine.dispose()
