"""Statistics (issue 16): the registration snapshot of a case's unit and the statistics' covering index.

``case_record`` gains ``unit_name``, ``care_provider`` and ``region`` (HSA-ids) of the case's unit (the
concerned unit, else the recipient unit), taken at registration. Existing rows are filled from the active
routing version's HSA tree where the unit is in it (NULL otherwise): the tree of the version that routed
them may be gone. A CLOSED case without a closed time (stored before every path set it) gets its last
change's time, in Swedish local time like ``closed_at``. ``ix_case_record_stats`` covers what the
statistics read (received time first, for their date filter).

The climb is written out here (not imported) so the migration keeps meaning what it meant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_STATS_COLUMNS = (
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


def _tree(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """The active (newest) routing version's HSA tree by HSA-id (empty without a version)."""
    row = conn.execute(sa.text("SELECT content FROM routing_version ORDER BY version DESC LIMIT 1")).first()
    if row is None:
        return {}
    nodes = json.loads(row[0]).get("hsa") or []
    return {str(node["hsa_id"]): node for node in nodes if isinstance(node, dict) and "hsa_id" in node}


def _snapshot(tree: dict[str, dict[str, Any]], unit: str) -> dict[str, str | None]:
    node = tree.get(unit)
    found: dict[str, str | None] = {
        "unit_name": (node.get("name") or None) if node else None,
        "care_provider": None,
        "region": None,
    }
    for _ in range(64):  # a cycle in a broken tree ends the climb
        if node is None:
            break
        kind = node.get("kind", "unit")
        if kind == "care-provider" and found["care_provider"] is None:
            found["care_provider"] = node["hsa_id"]
        if kind == "region" and found["region"] is None:
            found["region"] = node["hsa_id"]
        parent = node.get("parent")
        node = tree.get(parent) if parent and parent != node["hsa_id"] else None
    return found


def _fill(conn: sa.Connection) -> None:
    tree = _tree(conn)
    if not tree:
        return
    units = conn.execute(
        sa.text("SELECT DISTINCT COALESCE(concerned_unit, recipient_unit) FROM case_record")
    ).scalars()
    rows = [{"unit": unit, **_snapshot(tree, unit)} for unit in units if unit in tree]
    if rows:
        conn.execute(
            sa.text(
                "UPDATE case_record SET unit_name = :unit_name, care_provider = :care_provider,"
                " region = :region WHERE COALESCE(concerned_unit, recipient_unit) = :unit"
            ),
            rows,
        )


def _close(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text("SELECT case_id, updated_at FROM case_record WHERE status = 'CLOSED' AND closed_at IS NULL")
    ).all()
    sweden = ZoneInfo("Europe/Stockholm")
    closed = []
    for case_id, updated in rows:
        if isinstance(updated, str):  # SQLite without the column's type: ISO text in UTC
            updated = datetime.fromisoformat(updated)
        instant = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
        closed.append(
            {"case_id": case_id, "at": instant.astimezone(sweden).replace(tzinfo=None, microsecond=0)}
        )
    if closed:
        conn.execute(sa.text("UPDATE case_record SET closed_at = :at WHERE case_id = :case_id"), closed)


def upgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("unit_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("care_provider", sa.String(64), nullable=True))
        batch.add_column(sa.Column("region", sa.String(64), nullable=True))
    op.create_index("ix_case_record_stats", "case_record", list(_STATS_COLUMNS))
    _fill(op.get_bind())
    _close(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_case_record_stats", table_name="case_record")
    with op.batch_alter_table("case_record") as batch:
        batch.drop_column("region")
        batch.drop_column("care_provider")
        batch.drop_column("unit_name")
