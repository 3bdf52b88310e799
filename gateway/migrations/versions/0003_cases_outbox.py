"""Case records and the durable outbox (messages, attempts, destination breakers, operator audit).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("status = 'pending'")
INFLIGHT = sa.text("status = 'inflight'")


def upgrade() -> None:
    op.create_table(
        "case_record",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("recipient_type", sa.String(16), nullable=False),
        sa.Column("recipient_unit", sa.String(64), nullable=False),
        sa.Column("concerned_unit", sa.String(64), nullable=True),
        sa.Column("handling_unit", sa.String(64), nullable=False),
        sa.Column("subject_age", sa.Integer(), nullable=True),
        sa.Column("subject_gender", sa.String(8), nullable=True),
        sa.Column("main_problem", sa.String(16), nullable=True),
        sa.Column("sub_problem", sa.String(16), nullable=True),
        sa.Column("experienced_problem", sa.String(16), nullable=True),
        sa.Column("business_area", sa.String(16), nullable=True),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("route_target", sa.String(64), nullable=False),
        sa.Column("receiving_system", sa.String(64), nullable=False),
        sa.Column("routing_version", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_case_record"),
    )
    op.create_table(
        "outbox_message",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("logical_address", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("original_consumer", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_expiries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("done_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("dead_reason", sa.String(500), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'inflight', 'done', 'dead', 'skipped')", name="ck_outbox_message_status"
        ),
        sa.CheckConstraint(
            "(status = 'inflight') = (lease_token IS NOT NULL AND lease_expires_ms IS NOT NULL)",
            name="ck_outbox_message_lease",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_message"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_message_idempotency_key"),
        sa.UniqueConstraint("stream", "seq", name="uq_outbox_message_stream_seq"),
    )
    op.create_index(
        "ix_outbox_message_due",
        "outbox_message",
        ["next_attempt_ms", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ux_outbox_message_inflight_stream",
        "outbox_message",
        ["stream"],
        unique=True,
        sqlite_where=INFLIGHT,
        postgresql_where=INFLIGHT,
    )
    op.create_index(
        "ix_outbox_message_lease",
        "outbox_message",
        ["lease_expires_ms"],
        sqlite_where=INFLIGHT,
        postgresql_where=INFLIGHT,
    )
    op.create_index("ix_outbox_message_destination_status", "outbox_message", ["destination", "status"])
    op.create_table(
        "outbox_attempt",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_attempt"),
    )
    op.create_index("ix_outbox_attempt_message_id", "outbox_attempt", ["message_id"])
    op.create_table(
        "outbox_destination",
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("open_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("ramp", sa.Integer(), nullable=True),
        sa.CheckConstraint("state IN ('closed', 'open', 'half-open')", name="ck_outbox_destination_state"),
        sa.PrimaryKeyConstraint("destination", name="pk_outbox_destination"),
    )
    op.create_table(
        "outbox_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_audit"),
    )


def downgrade() -> None:
    op.drop_table("outbox_audit")
    op.drop_table("outbox_destination")
    op.drop_index("ix_outbox_attempt_message_id", table_name="outbox_attempt")
    op.drop_table("outbox_attempt")
    for index in (
        "ix_outbox_message_destination_status",
        "ix_outbox_message_lease",
        "ux_outbox_message_inflight_stream",
        "ix_outbox_message_due",
    ):
        op.drop_index(index, table_name="outbox_message")
    op.drop_table("outbox_message")
    op.drop_table("case_record")
