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
from contracts.statements import Prepared, PreparedRows
from gateway.cases.groupcommit import GroupCommit
from gateway.cases.records import case_record
from gateway.db import DEFAULT_LOCK_TIMEOUT_MS
from outbox.store import FIRST_MESSAGES, NewMessage, first_message

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


def _insert_rows(dialect: str, values: list[dict[str, Any]]) -> Any:
    """New cases of a batch in one INSERT; the keys that come back are the rows stored (any order)."""
    construct = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        construct(inbox_message)
        .values(values)
        .on_conflict_do_nothing(index_elements=["operation", "idempotency_key"])
        .returning(inbox_message.c.id, inbox_message.c.idempotency_key)
    )


_INSERT_ROWS = PreparedRows(inbox_message, _COLUMNS, _insert_rows)
_CASE_ROWS = PreparedRows(case_record, [c.name for c in case_record.c])
_OUTBOX_KEY = FIRST_MESSAGES.index("idempotency_key")
_REGISTERED = (
    select(inbox_message.c.idempotency_key, inbox_message.c.content_hash)
    .where(inbox_message.c.operation == "RegisterCase")
    .where(inbox_message.c.idempotency_key.in_(bindparam("b_keys", expanding=True)))
)


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    STALE = "stale"
    UNKNOWN_CASE = "unknown-case"
    NOT_ALLOWED = "not-allowed"
    UNROUTABLE_REDIRECT = "unroutable-redirect"
    CASE_CLOSED = "case-closed"
    # the state machine's and the citizen direction's refusals (the member's name is the subCode)
    NOT_SENDERS_UPDATE = "not-senders-update"
    NOT_CITIZEN_SERVICE = "not-citizen-service"
    NOT_CASE_UNIT = "not-case-unit"
    NO_OPEN_QUESTION = "no-open-question"
    ATTACHMENTS_NOT_ALLOWED = "attachments-not-allowed"
    NOT_PATIENT_BOARD_CASE = "not-patient-board-case"
    UNKNOWN_UNIT = "unknown-unit"


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


@dataclass(frozen=True, slots=True)
class NewCase:
    """What follows from a new case besides its inbox row: its case record and its first delivery.

    ``delivery`` makes the first outbox message from the stored payload (for a unit handled in the gateway's
    own case desk: the desk's RECEIVED to 1177, which does not depend on it); None when there is nothing to
    send. Its idempotency key is made by ``delivery_key`` from the inbox row's id, known
    once the row is stored.
    """

    record: dict[str, Any]
    delivery: Callable[[bytes], NewMessage] | None = None
    delivery_key: Callable[[int], str] | None = None
    at_ms: int = 0


@dataclass(frozen=True, slots=True)
class _Bound:
    key: str
    digest: str
    inbox: list[Any]
    record: list[Any]
    delivery: list[Any] | None
    delivery_key: Callable[[int], str] | None


class _Digest:
    """A file-like object that hashes what lxml writes into it (c14n streamed, not built in memory)."""

    __slots__ = ("sha",)

    def __init__(self, head: bytes) -> None:
        self.sha = hashlib.sha256(head)

    def write(self, data: bytes) -> None:
        self.sha.update(data)


def content_hash(payload: etree._Element, logical_address: str) -> str:
    """Hash of what makes two submissions "the same": the canonical payload and its address.

    A request with attachments may be hundreds of megabytes: its canonical form is streamed into the hash
    instead of being built as one more copy in memory (the same digest; for small requests building it is
    faster than the stream's callbacks).
    """
    head = logical_address.encode() + b"\n"
    if payload.find("{*}attachment") is None:
        canonical = etree.tostring(payload, method="c14n", exclusive=True, with_comments=False)
        return hashlib.sha256(head + canonical).hexdigest()
    digest = _Digest(head)
    etree.ElementTree(payload).write_c14n(digest, exclusive=True, with_comments=False)
    return digest.sha.hexdigest()


class Inbox:
    def __init__(self, engine: Engine, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> None:
        """``lock_timeout_ms``: the engine's (``make_engine``): the longest a request waits for a lock."""
        self.engine = engine
        self.commits = GroupCommit(engine, lock_timeout_ms=lock_timeout_ms)

    def close(self) -> None:
        self.commits.close()

    def register(self, message: InboxMessage, case: NewCase) -> Outcome:
        """Store a new case (``message`` is its RegisterCase, keyed by caseId) with what follows from it.

        The same as ``accept`` with a ``then`` that inserts ``case``, but the rows are bound here, in the
        request's thread, and the cases of one group commit are inserted with one statement per table.
        """
        if message.operation != "RegisterCase":  # the batch judges repeats among stored RegisterCases
            raise ValueError(f"register stores RegisterCase messages, not {message.operation}")
        digest = content_hash(message.payload, message.logical_address)
        payload = etree.tostring(message.payload, encoding="UTF-8", xml_declaration=False)
        dialect = self.engine.dialect
        delivery = None
        if case.delivery is not None:
            delivery = FIRST_MESSAGES.bind(dialect, first_message(case.delivery(payload), case.at_ms))
        bound = _Bound(
            message.idempotency_key,
            digest,
            _INSERT_ROWS.bind(dialect, self._row(message, digest, payload)),
            _CASE_ROWS.bind(dialect, case.record),
            delivery,
            case.delivery_key,
        )
        return self._committed(message, digest, lambda: self.commits.run_shared(self._store_new, bound))

    @staticmethod
    def _store_new(conn: Connection, cases: list[_Bound]) -> list[Outcome]:
        first: dict[str, _Bound] = {}
        for case in cases:
            first.setdefault(case.key, case)
        cursor = _INSERT_ROWS.execute(conn, [first[key].inbox for key in sorted(first)])
        try:
            ids: dict[str, int] = {key: int(row_id) for row_id, key in cursor.fetchall()}
        finally:
            cursor.close()
        taken = [key for key in first if key not in ids]
        stored: dict[str, str] = {}
        if taken:
            stored = {
                row.idempotency_key: row.content_hash for row in conn.execute(_REGISTERED, {"b_keys": taken})
            }
        outcomes: list[Outcome] = []
        records: list[tuple[str, list[Any]]] = []
        deliveries: list[tuple[str, list[Any]]] = []
        for case in cases:
            key = case.key
            if key in ids and first[key] is case:
                outcomes.append(Outcome.STORED)
                records.append((key, case.record))
                if case.delivery is not None and case.delivery_key is not None:
                    row = list(case.delivery)
                    row[_OUTBOX_KEY] = case.delivery_key(ids[key])
                    deliveries.append((key, row))
                continue
            existing = first[key].digest if key in ids else stored.get(key)
            if existing is None:  # taken, yet not there: let the batch run again, each case on its own
                raise IntegrityError("inbox", None, Exception("key taken by an invisible row"))
            outcomes.append(Outcome.DUPLICATE if existing == case.digest else Outcome.CONFLICT)
        # rows go in in key order, as the inbox rows above: two PostgreSQL transactions inserting the
        # same keys then wait for each other in one order and cannot deadlock
        if records:
            _CASE_ROWS.execute(conn, [row for _, row in sorted(records)]).close()
        if deliveries:
            FIRST_MESSAGES.execute(conn, [row for _, row in sorted(deliveries)]).close()
        return outcomes

    @staticmethod
    def _row(message: InboxMessage, digest: str, payload: bytes) -> dict[str, Any]:
        return {
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

    def _committed(self, message: InboxMessage, digest: str, store: Callable[[], Outcome]) -> Outcome:
        """``store``'s outcome; if a concurrent submission with the same key committed first, judged
        against what that one stored."""
        try:
            return store()
        except IntegrityError:
            existing = self._existing_hash(message)
            if existing is None:
                raise
            return Outcome.DUPLICATE if existing == digest else Outcome.CONFLICT

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
        row = self._row(message, digest, payload)
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

        return self._committed(message, digest, lambda: self.commits.run(work))
