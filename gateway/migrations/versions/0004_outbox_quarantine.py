"""Outbox quarantine: the evidence kept about a message whose worker died with it, and an index of suspects.

``alone_deaths`` (deaths in a row in flight alone) and ``quarantined_ms`` (when its run of deaths began)
join ``lease_expiries``, which from now on counts deaths in a row since the last completed attempt. Existing
rows get 0 and NULL: a message that is a suspect today stays one, with no evidence against it yet.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SUSPECT = sa.text("status = 'pending' AND lease_expiries > 0")


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("alone_deaths", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("quarantined_ms", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_outbox_message_suspect",
        "outbox_message",
        ["next_attempt_ms", "id"],
        sqlite_where=SUSPECT,
        postgresql_where=SUSPECT,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_suspect", table_name="outbox_message")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("quarantined_ms")
        batch.drop_column("alone_deaths")
