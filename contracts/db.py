"""The one SQLAlchemy ``MetaData`` shared by every package's tables.

It lives in ``contracts`` because that package is the bottom of the dependency graph: ``gateway``, ``routing``
and ``outbox`` may all import it without importing each other. Tables are defined by the package that uses
them; Alembic migrations in ``gateway/migrations`` create them, and a test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
