"""Writing the desk's audit log (``desk_audit``): who did what to which case or grant, and when.

The detail names codes, counts, MIME types and message ids, never text from a case, a file name or a
personal identity number. Actors are a person's HSA-id, or ``cli:<login>:<HSA-id>`` for the CLI.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, insert

from gateway.desk.schema import desk_audit

__all__ = ["record", "record_alone"]


def record(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    *,
    case_id: str | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit row, in the caller's transaction (the one that does what it records)."""
    conn.execute(
        insert(desk_audit).values(
            at=at,
            actor=actor[:128],
            action=action,
            case_id=case_id,
            target=None if target is None else target[:200],
            detail=None if detail is None else detail[:500],
        )
    )


def record_alone(
    engine: Engine,
    at: datetime,
    actor: str,
    action: str,
    *,
    case_id: str | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit row in a transaction of its own (a refusal: nothing else is written)."""
    with engine.begin() as conn:
        record(conn, at, actor, action, case_id=case_id, target=target, detail=detail)
