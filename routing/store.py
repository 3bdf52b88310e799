"""The catalogue in the database: draft tables, immutable published versions, and an append-only audit log.

Operators edit the draft (one table per entity kind), preview it as a diff against the active version, and
publish it as a numbered snapshot whose content is the catalogue's canonical JSON and whose hash is that
JSON's SHA-256. The active version is the newest one; a rollback publishes an old version's content again,
so history is never rewritten. Every change is recorded in ``routing_audit`` with who, what, before and after.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)

from contracts.db import metadata
from routing.errors import CatalogueError
from routing.model import SECTIONS, Catalogue, _Entity

__all__ = ["CatalogueStore", "Diff", "VersionInfo"]


def _instant() -> DateTime:
    return DateTime(timezone=True)


tables: dict[str, Table] = {
    "components": Table(
        "routing_component",
        metadata,
        Column("hsa_id", String(64), primary_key=True),
        Column("description", String(500), nullable=False, default=""),
    ),
    "contracts": Table(
        "routing_contract",
        metadata,
        Column("namespace", String(255), primary_key=True),
        Column("name", String(100), nullable=False, default=""),
        Column("hsa_climb", Boolean, nullable=False, default=True),
    ),
    "addresses": Table(
        "routing_address",
        metadata,
        Column("address", String(64), primary_key=True),
        Column("description", String(500), nullable=False, default=""),
    ),
    "endpoints": Table(
        "routing_endpoint",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("component", String(64), nullable=False),
        Column("url", String(1000), nullable=False),
        Column("profile", String(32), nullable=False, default="rivtabp21"),
        Column("connect_timeout", Float, nullable=False, default=2.0),
        Column("read_timeout", Float, nullable=False, default=29.0),
        Column("client_certificate", String(1000), nullable=True),
        Column("client_key", String(1000), nullable=True),
        Column("trust_store", String(1000), nullable=True),
        Column("verify_hostname", Boolean, nullable=False, default=True),
    ),
    "routes": Table(
        "routing_route",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("contract", String(255), nullable=False),
        Column("address", String(64), nullable=False),
        Column("target", String(64), nullable=False),
        Column("valid_from", _instant(), nullable=True),
        Column("valid_to", _instant(), nullable=True),
        UniqueConstraint("contract", "address", "valid_from"),
    ),
    "permissions": Table(
        "routing_permission",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("consumer", String(64), nullable=False),
        Column("contract", String(255), nullable=False),
        Column("address", String(64), nullable=False),
        Column("valid_from", _instant(), nullable=True),
        Column("valid_to", _instant(), nullable=True),
        UniqueConstraint("consumer", "contract", "address", "valid_from"),
    ),
    "hsa": Table(
        "routing_hsa_node",
        metadata,
        Column("hsa_id", String(64), primary_key=True),
        Column("parent", String(64), nullable=False),
        Column("kind", String(32), nullable=False, default="unit"),
        Column("name", String(500), nullable=False, default=""),
    ),
}

routing_version = Table(
    "routing_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("content_hash", String(64), nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", _instant(), nullable=False),
    Column("comment", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("content", Text, nullable=False),
)

routing_audit = Table(
    "routing_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", _instant(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("entity_key", String(500), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    content_hash: str
    author: str
    created_at: datetime
    comment: str
    source: str


@dataclass(frozen=True)
class Diff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def lines(self) -> list[str]:
        return (
            [f"+ {a}" for a in self.added]
            + [f"- {r}" for r in self.removed]
            + [f"~ {c}" for c in self.changed]
        )


def _utc(value: Any) -> Any:
    """Instants from the database as UTC: SQLite returns them naive, PostgreSQL in the session's zone."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _row_dict(section: str, row: Any) -> dict[str, Any]:
    return {f.name: _utc(row._mapping[f.name]) for f in dataclasses.fields(SECTIONS[section])}  # type: ignore[arg-type]


def _entity_values(section: str, entity: _Entity) -> dict[str, Any]:
    """The row of ``entity``; text longer than its column is refused here, as one line, on every database
    (SQLite would store it, PostgreSQL would fail the whole transaction with a driver error)."""
    values = {f.name: getattr(entity, f.name) for f in dataclasses.fields(entity)}  # type: ignore[arg-type]
    for name, value in values.items():
        length = getattr(tables[section].c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            label = _label(section, entity)
            label = label if len(label) <= 80 else label[:77] + "..."
            raise CatalogueError(f"{label}: {name} is longer than {length} characters")
    return values


def _label(section: str, entity: _Entity) -> str:
    return f"{section} {'/'.join(p for p in entity.key() if p != 'None')}"


def diff(old: Catalogue, new: Catalogue) -> Diff:
    added, removed, changed = [], [], []
    for section in SECTIONS:
        before = {e.key(): e for e in getattr(old, section)}
        after = {e.key(): e for e in getattr(new, section)}
        for key in sorted(after.keys() - before.keys()):
            added.append(_label(section, after[key]))
        for key in sorted(before.keys() - after.keys()):
            removed.append(_label(section, before[key]))
        for key in sorted(before.keys() & after.keys()):
            if before[key] != after[key]:
                changed.append(_label(section, after[key]))
    return Diff(tuple(added), tuple(removed), tuple(changed))


class CatalogueStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- draft ----------------------------------------------------------------------------------------------
    @staticmethod
    def _read_draft(conn: Connection) -> Catalogue:
        sections: dict[str, tuple[Any, ...]] = {}
        for section, table in tables.items():
            entity = SECTIONS[section]
            rows = conn.execute(select(table)).fetchall()
            sections[section] = tuple(entity(**_row_dict(section, row)) for row in rows)
        return Catalogue(**sections).normalised()

    def draft(self) -> Catalogue:
        with self.engine.begin() as conn:
            return self._read_draft(conn)

    def _audit(
        self, conn: Connection, actor: str, action: str, entity: str, key: str, before: Any, after: Any
    ) -> None:
        conn.execute(
            insert(routing_audit).values(
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                entity=entity,
                entity_key=key,
                before=None if before is None else json.dumps(before, sort_keys=True, default=str),
                after=None if after is None else json.dumps(after, sort_keys=True, default=str),
            )
        )

    @staticmethod
    def _where_key(section: str, entity: _Entity) -> list[Any]:
        table = tables[section]
        clauses = []
        for name in type(entity).key_fields:
            value = getattr(entity, name)
            clauses.append(table.c[name].is_(None) if value is None else table.c[name] == value)
        return clauses

    def add(self, section: str, entity: _Entity, actor: str, *, replace: bool = False) -> None:
        table = tables[section]
        with self.engine.begin() as conn:
            existing = conn.execute(select(table).where(*self._where_key(section, entity))).first()
            if existing is not None and not replace:
                raise CatalogueError(f"{_label(section, entity)} already exists in the draft")
            before = (
                SECTIONS[section](**_row_dict(section, existing)).to_dict() if existing is not None else None
            )
            if existing is not None:
                conn.execute(delete(table).where(*self._where_key(section, entity)))
            conn.execute(insert(table).values(**_entity_values(section, entity)))
            self._audit(conn, actor, "add", section, "/".join(entity.key()), before, entity.to_dict())

    def remove(self, section: str, entity: _Entity, actor: str) -> None:
        table = tables[section]
        with self.engine.begin() as conn:
            existing = conn.execute(select(table).where(*self._where_key(section, entity))).first()
            if existing is None:
                raise CatalogueError(f"{_label(section, entity)} is not in the draft")
            conn.execute(delete(table).where(*self._where_key(section, entity)))
            before = SECTIONS[section](**_row_dict(section, existing)).to_dict()
            self._audit(conn, actor, "remove", section, "/".join(entity.key()), before, None)

    def replace_draft(self, catalogue: Catalogue, actor: str, action: str = "import") -> Diff:
        """Make the draft equal ``catalogue`` (import, rollback), auditing each entity that changes."""
        with self.engine.begin() as conn:
            return self._replace(conn, catalogue, actor, action)

    def _replace(self, conn: Connection, catalogue: Catalogue, actor: str, action: str) -> Diff:
        current = self._read_draft(conn)
        change = diff(current, catalogue)
        for section, table in tables.items():
            before = {e.key(): e for e in getattr(current, section)}
            after = {e.key(): e for e in getattr(catalogue, section)}
            for key, entity in before.items():
                if after.get(key) != entity:
                    self._audit(conn, actor, action, section, "/".join(key), entity.to_dict(), None)
            for key, entity in after.items():
                if before.get(key) != entity:
                    self._audit(conn, actor, action, section, "/".join(key), None, entity.to_dict())
            conn.execute(delete(table))
            rows = [_entity_values(section, e) for e in getattr(catalogue, section)]
            if rows:
                conn.execute(insert(table), rows)
        return change

    # -- versions -------------------------------------------------------------------------------------------
    def active_version(self, conn: Connection | None = None) -> tuple[int, str] | None:
        """(version, hash) of the active version: one indexed lookup, cheap enough to poll."""
        query = (
            select(routing_version.c.version, routing_version.c.content_hash)
            .order_by(routing_version.c.version.desc())
            .limit(1)
        )
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def version_content(self, version: int, conn: Connection | None = None) -> tuple[Catalogue, str]:
        query = select(routing_version.c.content, routing_version.c.content_hash).where(
            routing_version.c.version == version
        )
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        if row is None:
            raise CatalogueError(f"no version {version}")
        return Catalogue.from_dict(json.loads(row[0])), str(row[1])

    def active(self) -> tuple[int, str, Catalogue] | None:
        with self.engine.connect() as conn:
            current = self.active_version(conn)
            if current is None:
                return None
            catalogue, digest = self.version_content(current[0], conn)
        return current[0], digest, catalogue

    def pending_diff(self) -> Diff:
        active = self.active()
        return diff(active[2] if active else Catalogue(), self.draft())

    def publish(self, actor: str, comment: str, *, max_changes: int = 50, force: bool = False) -> VersionInfo:
        with self.engine.begin() as conn:
            draft = self._read_draft(conn)
            return self._publish(conn, draft, actor, comment, "publish", max_changes=max_changes, force=force)

    def _publish(
        self,
        conn: Connection,
        catalogue: Catalogue,
        actor: str,
        comment: str,
        source: str,
        *,
        max_changes: int,
        force: bool,
    ) -> VersionInfo:
        if not comment.strip():
            raise CatalogueError("publish needs a comment (-m)")
        if catalogue.is_empty():
            raise CatalogueError("refusing to publish an empty catalogue (no routes and no permissions)")
        catalogue.check()
        current = self.active_version(conn)
        previous = self.version_content(current[0], conn)[0] if current else Catalogue()
        change = diff(previous, catalogue)
        if source == "publish" and change.size == 0:
            raise CatalogueError(
                f"nothing to publish: the draft equals version {current[0] if current else 0}"
            )
        if change.size > max_changes and not force:
            raise CatalogueError(
                f"the change has {change.size} entries (limit {max_changes}); review the diff and use --force"
            )
        version = (current[0] if current else 0) + 1
        info = VersionInfo(version, catalogue.content_hash(), actor, datetime.now(UTC), comment, source)
        conn.execute(
            insert(routing_version).values(
                version=info.version,
                content_hash=info.content_hash,
                author=info.author,
                created_at=info.created_at,
                comment=info.comment,
                source=info.source,
                content=catalogue.canonical_json(),
            )
        )
        self._audit(
            conn,
            actor,
            source.split(":")[0],
            "version",
            str(version),
            None,
            {"hash": info.content_hash, "comment": comment},
        )
        return info

    def rollback(self, version: int, actor: str, comment: str | None = None) -> VersionInfo:
        with self.engine.begin() as conn:
            catalogue, _ = self.version_content(version, conn)
            self._replace(conn, catalogue, actor, "rollback")
            return self._publish(
                conn,
                catalogue,
                actor,
                comment or f"rollback to version {version}",
                f"rollback:{version}",
                max_changes=0,
                force=True,
            )

    def history(self) -> list[VersionInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    routing_version.c.version,
                    routing_version.c.content_hash,
                    routing_version.c.author,
                    routing_version.c.created_at,
                    routing_version.c.comment,
                    routing_version.c.source,
                ).order_by(routing_version.c.version)
            ).fetchall()
        return [VersionInfo(int(r[0]), r[1], r[2], _utc(r[3]), r[4], r[5]) for r in rows]

    def audit_log(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(routing_audit).order_by(routing_audit.c.id)).fetchall()
        return [{**r._mapping, "at": _utc(r._mapping["at"])} for r in rows]

    def count_versions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(routing_version)).scalar_one())
