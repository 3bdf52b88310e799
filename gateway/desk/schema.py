"""The desk's own tables: who may see and handle which units (``desk_access``) and what people did
(``desk_audit``).

``desk_access`` holds one row per grant; a revoked grant keeps its row (revoked_by / revoked_at), so the
table is its own history, and at most one grant of a (person, scope, role) is active at a time (a partial
unique index). ``desk_audit`` is append-only: every grant and revocation, every desk action on a case,
every refusal of access and every export. Its ``detail`` names codes, counts and file types, never text
from a case or a personal identity number. Case data itself lives in ``case_record`` and the inbox and
outbox rows of the case: the desk keeps no second copy.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, String, Table, text

from contracts.db import metadata

__all__ = ["desk_access", "desk_audit"]

_BIGINT_PK = BigInteger().with_variant(Integer, "sqlite")

desk_access = Table(
    "desk_access",
    metadata,
    Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("person", String(64), nullable=False),  # the person's HSA-id
    Column("scope", String(64), nullable=False),  # a unit, care provider, region, or SE (national)
    Column("role", String(16), nullable=False),
    Column("granted_by", String(128), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", String(128), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('reader', 'handler', 'operator', 'statistician')", name="role"),
    CheckConstraint("(revoked_by IS NULL) = (revoked_at IS NULL)", name="revoked"),
    Index(
        "ux_desk_access_active",
        "person",
        "scope",
        "role",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

desk_audit = Table(
    "desk_audit",
    metadata,
    Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),  # a person's HSA-id, or "cli:<login>:<HSA-id>"
    Column("action", String(32), nullable=False),
    Column("case_id", String(64), nullable=True),
    Column("target", String(200), nullable=True),
    Column("detail", String(500), nullable=True),
    Index(None, "case_id", "id"),
)
