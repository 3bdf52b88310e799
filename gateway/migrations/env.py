"""Alembic environment: always run with a connection handed in by ``gateway.migrate``."""

from __future__ import annotations

from alembic import context

from contracts.db import metadata
from gateway.migrate import load_tables

load_tables()

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only gateway.migrate runs migrations
    raise RuntimeError("run migrations through 'gateway db upgrade'")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
