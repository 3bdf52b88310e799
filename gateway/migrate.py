"""Schema migrations (Alembic), run programmatically by ``gateway db upgrade`` and ``gateway serve``.

Only ``gateway db upgrade``, ``gateway serve`` and ``gateway routes bootstrap`` (what ``make run`` uses)
change the schema. Every other command checks it with ``require_current`` and refuses an old, empty or
unknown schema with one line that says what to run; it never changes the database to get there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from gateway.errors import DatabaseError

__all__ = ["current_revision", "downgrade", "head_revision", "require_current", "upgrade"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def load_tables() -> None:
    """Import every module that defines tables, so the shared metadata is complete."""
    import gateway.cases.inbox
    import gateway.cases.records
    import gateway.desk.schema  # noqa: F401
    import outbox.schema
    import outbox.store  # noqa: F401
    import routing.store  # noqa: F401


def _config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


# Several gateways sharing one PostgreSQL may start at once; one migrates, the others wait for it.
_MIGRATION_LOCK = 0x43414647  # "CAFG"


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_current(engine: Engine) -> str:
    """The schema revision when it is this version's newest; otherwise ``DatabaseError`` with what to run.

    Reads only the ``alembic_version`` table (or finds it missing): nothing is created or changed.
    """
    current, head = current_revision(engine), head_revision()
    if current == head and head is not None:
        return head
    script = ScriptDirectory.from_config(_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise DatabaseError(
            f"database schema is at {current}, which this version (newest {head}) does not know: "
            "a newer gateway migrated it; run that version"
        )
    shown = current if current is not None else "none (an empty database)"
    raise DatabaseError(f"database schema is at {shown}, this version needs {head}: run gateway db upgrade")
