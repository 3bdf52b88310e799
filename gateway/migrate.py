"""Schema migrations (Alembic), run programmatically by ``gateway db upgrade`` and ``gateway serve``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

__all__ = ["current_revision", "downgrade", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def load_tables() -> None:
    """Import every module that defines tables, so the shared metadata is complete."""
    import gateway.cases.inbox
    import gateway.cases.records  # noqa: F401
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
