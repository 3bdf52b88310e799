"""The case desk: its access table and audit log, and what the case record needs for handling a case.

``case_record`` gains ``version`` (the optimistic lock, 1 for existing rows), ``open_question``,
``handler_turn_since`` and ``attachments_allowed`` (false for existing rows), and the partial index of the
desk's case list. Existing cases handled in the desk keep their status; their handler's turn starts now
unknown (NULL) until the next change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DESK = sa.text("receiving_system = 'internal'")
ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))
        batch.add_column(sa.Column("open_question", sa.String(64), nullable=True))
        batch.add_column(sa.Column("handler_turn_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attachments_allowed", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    op.create_index(
        "ix_case_record_desk",
        "case_record",
        ["handling_unit", "received_at", "case_id"],
        sqlite_where=DESK,
        postgresql_where=DESK,
    )
    op.create_table(
        "desk_access",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('reader', 'handler', 'operator', 'statistician')", name="ck_desk_access_role"
        ),
        sa.CheckConstraint("(revoked_by IS NULL) = (revoked_at IS NULL)", name="ck_desk_access_revoked"),
        sa.PrimaryKeyConstraint("id", name="pk_desk_access"),
    )
    op.create_index(
        "ux_desk_access_active",
        "desk_access",
        ["person", "scope", "role"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "desk_audit",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_desk_audit"),
    )
    op.create_index("ix_desk_audit_case_id_id", "desk_audit", ["case_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_desk_audit_case_id_id", table_name="desk_audit")
    op.drop_table("desk_audit")
    op.drop_index("ux_desk_access_active", table_name="desk_access")
    op.drop_table("desk_access")
    op.drop_index("ix_case_record_desk", table_name="case_record")
    with op.batch_alter_table("case_record") as batch:
        batch.drop_column("attachments_allowed")
        batch.drop_column("handler_turn_since")
        batch.drop_column("open_question")
        batch.drop_column("version")
