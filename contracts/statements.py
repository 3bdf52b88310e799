"""Statements of the request path, compiled once per dialect and run on the DBAPI cursor.

An accepted case runs three or four statements; through SQLAlchemy's execution layer (events, result
objects, parameter processing per call) they cost more Python than the database needs to run them. A
``Prepared`` statement is compiled from the same Core construct (one definition of each table), keeps the
column types' bind processors, and executes on the driver cursor of the caller's SQLAlchemy connection, so
it joins that connection's transaction. Only simple statements belong here: inserts, and selects that
return plain values. It lives in ``contracts`` (the bottom of the dependency graph, like the shared
metadata) so that ``gateway`` and ``outbox`` can both use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared"]


class _Compiled:
    __slots__ = ("names", "positional", "processors", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = cast(
            SQLCompiler,
            statement.compile(
                dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
            ),
        )
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else ()
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for bind in compiled.binds.values():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[bind.key] = processor


class Prepared:
    """One statement, compiled lazily for each dialect it meets (SQLite and PostgreSQL).

    ``statement`` is a Core construct, or a function of the dialect name that builds one (for constructs
    that each dialect spells with its own module, such as ``INSERT ... ON CONFLICT``).
    """

    def __init__(
        self,
        statement: ClauseElement | Callable[[str], ClauseElement],
        column_keys: Sequence[str] | None = None,
    ) -> None:
        self.statement = statement
        self.column_keys = column_keys
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            statement = (
                self.statement if isinstance(self.statement, ClauseElement) else self.statement(dialect.name)
            )
            compiled = self._by_dialect[dialect.name] = _Compiled(statement, dialect, self.column_keys)
        return compiled

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run on ``conn``'s driver connection (inside its transaction); returns the DBAPI cursor."""
        compiled = self._compiled(conn.dialect)
        processors = compiled.processors
        if processors:
            params = {
                key: (processors[key](value) if key in processors and value is not None else value)
                for key, value in params.items()
            }
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if compiled.positional:
                cursor.execute(compiled.sql, tuple(params[name] for name in compiled.names))
            else:
                cursor.execute(compiled.sql, params)
        except conn.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            # the same exception classes as SQLAlchemy's own execution (IntegrityError, OperationalError),
            # without the parameters in the message: they hold health data
            raise DBAPIError.instance(
                compiled.sql,
                None,
                exc,
                conn.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=conn.dialect,
            ) from exc
        return cursor

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute for its effect (an insert without RETURNING)."""
        self.execute(conn, params).close()

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        cursor = self.execute(conn, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else row[0]
