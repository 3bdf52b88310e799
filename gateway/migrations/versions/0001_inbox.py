"""Inbox of accepted RegisterCase and UpdateCase requests.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbox_message",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("logical_address", sa.String(64), nullable=False),
        sa.Column("consumer_hsa_id", sa.String(64), nullable=False),
        sa.Column("original_consumer_hsa_id", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("log_id", sa.String(36), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_message"),
        sa.UniqueConstraint(
            "operation", "idempotency_key", name="uq_inbox_message_operation_idempotency_key"
        ),
    )
    op.create_index(
        "ix_inbox_message_case_id_operation_sequence_number",
        "inbox_message",
        ["case_id", "operation", "sequence_number"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_message_case_id_operation_sequence_number", table_name="inbox_message")
    op.drop_table("inbox_message")
