"""Both contracts in both directions (issue 15): what the case record keeps of 1177's side.

``case_record`` gains ``citizen_sequence`` (1177's last accepted sequence number for the case: sequence
numbers are per case and sender), ``reporter_role`` (NULL for existing rows: it was not kept) and
``channel`` (how the case came; existing rows all came through 1177, ``WEB``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("citizen_sequence", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("reporter_role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(8), server_default=sa.text("'WEB'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.drop_column("channel")
        batch.drop_column("reporter_role")
        batch.drop_column("citizen_sequence")
