"""The inbox: every accepted RegisterCase and UpdateCase, stored once, idempotent on caseId / messageId.

A request is stored in one transaction and only then acknowledged. A repeat with the same key and the same
content is a duplicate (answered OK again, nothing stored); the same key with other content is a conflict.
Routing and delivery build on these rows. Payloads are stored as received (validated XML); they contain
health data and are never logged.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from contracts.db import metadata
from contracts.statements import Prepared
from gateway.groupcommit import GroupCommit

__all__ = ["Inbox", "InboxMessage", "Outcome", "content_hash", "inbox_message"]

inbox_message = Table(
    "inbox_message",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("operation", String(32), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("case_id", String(64), nullable=False),
    Column("message_id", String(64), nullable=True),
    Column("sequence_number", BigInteger, nullable=True),
    Column("logical_address", String(64), nullable=False),
    Column("consumer_hsa_id", String(64), nullable=False),
    Column("original_consumer_hsa_id", String(64), nullable=True),
    Column("correlation_id", String(64), nullable=False),
    Column("log_id", String(36), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # the route resolved when the request was accepted: endpoint name or "internal", the address that
    # matched (after any HSA climb) and the catalogue version that decided
    Column("route_target", String(64), nullable=True),
    Column("route_address", String(64), nullable=True),
    Column("routing_version", Integer, nullable=True),
    UniqueConstraint("operation", "idempotency_key"),
    Index(None, "case_id", "operation", "sequence_number"),
)


# The request path runs these for every request: compiled once, run on the driver cursor.
_EXISTING = Prepared(
    select(inbox_message.c.content_hash).where(
        inbox_message.c.operation == bindparam("b_operation"),
        inbox_message.c.idempotency_key == bindparam("b_key"),
    )
)
_COLUMNS = [c.name for c in inbox_message.c if c.name != "id"]


def _insert_new(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: no row back means the key is taken (a repeat)."""
    construct = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        construct(inbox_message)
        .on_conflict_do_nothing(index_elements=["operation", "idempotency_key"])
        .returning(inbox_message.c.id)
    )


_INSERT = Prepared(_insert_new, column_keys=_COLUMNS)


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    STALE = "stale"
    UNKNOWN_CASE = "unknown-case"
    NOT_ALLOWED = "not-allowed"
    UNROUTABLE_REDIRECT = "unroutable-redirect"


@dataclass(frozen=True)
class InboxMessage:
    operation: str
    idempotency_key: str
    case_id: str
    logical_address: str
    consumer_hsa_id: str
    correlation_id: str
    log_id: str
    payload: etree._Element
    message_id: str | None = None
    sequence_number: int | None = None
    original_consumer_hsa_id: str | None = None
    route_target: str | None = None
    route_address: str | None = None
    routing_version: int | None = None


def content_hash(payload: etree._Element, logical_address: str) -> str:
    """Hash of what makes two submissions "the same": the canonical payload and its address."""
    canonical = etree.tostring(payload, method="c14n", exclusive=True, with_comments=False)
    return hashlib.sha256(logical_address.encode() + b"\n" + canonical).hexdigest()


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.commits = GroupCommit(engine)

    def close(self) -> None:
        self.commits.close()

    def _existing_hash(self, message: InboxMessage) -> str | None:
        with self.engine.begin() as conn:
            found: str | None = _EXISTING.scalar(
                conn, {"b_operation": message.operation, "b_key": message.idempotency_key}
            )
            return found

    def accept(
        self,
        message: InboxMessage,
        *,
        check: Callable[[Connection], Outcome | None] | None = None,
        then: Callable[[Connection, int, bytes], None] | None = None,
    ) -> Outcome:
        """Store ``message`` unless it repeats or contradicts what is stored; commit before returning.

        In the same transaction, ``check`` may refuse the message (returning an outcome) after the duplicate
        check, and ``then`` receives the new inbox row id and the stored payload bytes to store what follows
        from it (case record, outbox messages): all of it is committed together, or none of it.
        """
        digest = content_hash(message.payload, message.logical_address)
        payload = etree.tostring(message.payload, encoding="UTF-8", xml_declaration=False)
        row = {
            "operation": message.operation,
            "idempotency_key": message.idempotency_key,
            "case_id": message.case_id,
            "message_id": message.message_id,
            "sequence_number": message.sequence_number,
            "logical_address": message.logical_address,
            "consumer_hsa_id": message.consumer_hsa_id,
            "original_consumer_hsa_id": message.original_consumer_hsa_id,
            "correlation_id": message.correlation_id,
            "log_id": message.log_id,
            "content_hash": digest,
            "payload": payload,
            "received_at": datetime.now(UTC),
            "route_target": message.route_target,
            "route_address": message.route_address,
            "routing_version": message.routing_version,
        }
        keys = {"b_operation": message.operation, "b_key": message.idempotency_key}

        def judge(existing: str | None) -> Outcome:
            return Outcome.DUPLICATE if existing == digest else Outcome.CONFLICT

        def work(conn: Connection) -> Outcome:
            if check is not None:
                # the duplicate test comes first: a repeat of an applied update is a duplicate, not stale
                existing = _EXISTING.scalar(conn, keys)
                if existing is not None:
                    return judge(existing)
                refused = check(conn)
                if refused is not None:
                    return refused
            key = _INSERT.scalar(conn, row)
            if key is None:  # the key is taken: by an earlier submission, or a concurrent one just now
                return judge(_EXISTING.scalar(conn, keys))
            if then is not None:
                then(conn, int(key), payload)
            return Outcome.STORED

        try:
            return self.commits.run(work)
        except IntegrityError:
            # A concurrent submission with the same key committed first: judge against what it stored.
            existing = self._existing_hash(message)
            if existing is None:
                raise
            return Outcome.DUPLICATE if existing == digest else Outcome.CONFLICT
