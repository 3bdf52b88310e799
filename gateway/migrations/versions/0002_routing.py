"""Routing catalogue (draft tables, versions, audit) and the route each accepted request took.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "routing_component",
        sa.Column("hsa_id", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("hsa_id", name="pk_routing_component"),
    )
    op.create_table(
        "routing_contract",
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("hsa_climb", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", name="pk_routing_contract"),
    )
    op.create_table(
        "routing_address",
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_routing_address"),
    )
    op.create_table(
        "routing_endpoint",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("connect_timeout", sa.Float(), nullable=False),
        sa.Column("read_timeout", sa.Float(), nullable=False),
        sa.Column("client_certificate", sa.String(1000), nullable=True),
        sa.Column("client_key", sa.String(1000), nullable=True),
        sa.Column("trust_store", sa.String(1000), nullable=True),
        sa.Column("verify_hostname", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_routing_endpoint"),
    )
    op.create_table(
        "routing_route",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("valid_from", _instant(), nullable=True),
        sa.Column("valid_to", _instant(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_route"),
        sa.UniqueConstraint(
            "contract", "address", "valid_from", name="uq_routing_route_contract_address_valid_from"
        ),
    )
    op.create_table(
        "routing_permission",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("contract", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("valid_from", _instant(), nullable=True),
        sa.Column("valid_to", _instant(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_permission"),
        sa.UniqueConstraint(
            "consumer",
            "contract",
            "address",
            "valid_from",
            name="uq_routing_permission_consumer_contract_address_valid_from",
        ),
    )
    op.create_table(
        "routing_hsa_node",
        sa.Column("hsa_id", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("hsa_id", name="pk_routing_hsa_node"),
    )
    op.create_table(
        "routing_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_routing_version"),
    )
    op.create_table(
        "routing_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_key", sa.String(500), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_audit"),
    )
    with op.batch_alter_table("inbox_message") as batch:
        batch.add_column(sa.Column("route_target", sa.String(64), nullable=True))
        batch.add_column(sa.Column("route_address", sa.String(64), nullable=True))
        batch.add_column(sa.Column("routing_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_message") as batch:
        batch.drop_column("routing_version")
        batch.drop_column("route_address")
        batch.drop_column("route_target")
    for table in (
        "routing_audit",
        "routing_version",
        "routing_hsa_node",
        "routing_permission",
        "routing_route",
        "routing_endpoint",
        "routing_address",
        "routing_contract",
        "routing_component",
    ):
        op.drop_table(table)
