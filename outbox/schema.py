"""Outbox tables: the message state machine, its append-only attempt log, and per-destination breakers.

Times are integer epoch milliseconds (UTC) so the same comparisons run on SQLite and PostgreSQL and the
clock can be injected in tests. The partial indexes match the claim query exactly: pending messages in
``(next_attempt_ms, id)`` order, and at most one ``inflight`` message per stream (case).

Quarantine (``outbox.policy.QuarantinePolicy``): ``lease_expiries`` counts the deaths in a row of a message
(its lease expired: its worker died or stalled with it) since its last completed attempt; a message with
``lease_expiries > 0`` is a suspect, claimed only alone. ``alone_deaths`` counts how many of the latest of
those deaths in a row found it in flight alone (the evidence), ``quarantined_ms`` when the run began.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    text,
)

from contracts.db import metadata

__all__ = ["STATUSES", "outbox_attempt", "outbox_destination", "outbox_message"]

STATUSES = ("pending", "inflight", "done", "dead", "skipped")
_BIGINT_PK = BigInteger().with_variant(Integer, "sqlite")

outbox_message = Table(
    "outbox_message",
    metadata,
    Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("stream", String(64), nullable=False),  # the case id: messages of one case leave in seq order
    Column("seq", Integer, nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("destination", String(64), nullable=False),  # endpoint name in the routing catalogue
    Column("logical_address", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("original_consumer", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # deaths in a row since the last completed attempt (see the module docstring)
    Column("lease_expiries", Integer, nullable=False, server_default=text("0")),
    Column("alone_deaths", Integer, nullable=False, server_default=text("0")),
    Column("quarantined_ms", BigInteger, nullable=True),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_token", String(36), nullable=True),
    Column("lease_expires_ms", BigInteger, nullable=True),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("done_ms", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("dead_reason", String(500), nullable=True),
    CheckConstraint("status IN ('pending', 'inflight', 'done', 'dead', 'skipped')", name="status"),
    CheckConstraint(
        "(status = 'inflight') = (lease_token IS NOT NULL AND lease_expires_ms IS NOT NULL)", name="lease"
    ),
    UniqueConstraint("idempotency_key"),
    UniqueConstraint("stream", "seq"),
    Index(
        "ix_outbox_message_due",
        "next_attempt_ms",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ux_outbox_message_inflight_stream",
        "stream",
        unique=True,
        sqlite_where=text("status = 'inflight'"),
        postgresql_where=text("status = 'inflight'"),
    ),
    Index(
        "ix_outbox_message_suspect",
        "next_attempt_ms",
        "id",
        sqlite_where=text("status = 'pending' AND lease_expiries > 0"),
        postgresql_where=text("status = 'pending' AND lease_expiries > 0"),
    ),
    Index(
        "ix_outbox_message_lease",
        "lease_expires_ms",
        sqlite_where=text("status = 'inflight'"),
        postgresql_where=text("status = 'inflight'"),
    ),
    Index("ix_outbox_message_destination_status", "destination", "status"),
)

outbox_attempt = Table(
    "outbox_attempt",
    metadata,
    Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("detail", String(500), nullable=True),
)

outbox_destination = Table(
    "outbox_destination",
    metadata,
    Column("destination", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # closed | open | half-open
    Column("consecutive_failures", Integer, nullable=False),
    Column("opens", Integer, nullable=False),  # opens in a row, for the growing pause
    Column("open_until_ms", BigInteger, nullable=True),
    Column(
        "ramp", Integer, nullable=True
    ),  # after recovery: messages allowed in flight, doubling per success
    CheckConstraint("state IN ('closed', 'open', 'half-open')", name="state"),
)
