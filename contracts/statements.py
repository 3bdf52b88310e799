"""Statements of the request path, compiled once per dialect and run on the DBAPI cursor.

An accepted case runs three or four statements; through SQLAlchemy's execution layer (events, result
objects, parameter processing per call) they cost more Python than the database needs to run them. A
``Prepared`` statement is compiled from the same Core construct (one definition of each table), keeps the
column types' bind processors, and executes on the driver cursor of the caller's SQLAlchemy connection, so
it joins that connection's transaction. Only simple statements belong here: inserts, and selects that
return plain values. It lives in ``contracts`` (the bottom of the dependency graph, like the shared
metadata) so that ``gateway`` and ``outbox`` can both use it.

``PreparedRows`` inserts the rows of many requests in one statement. Their values are bound (converted by
the column types) by each request's own thread beforehand, so the one thread that runs a group commit's
batch does little more than the statement (see ``gateway.cases.groupcommit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

__all__ = ["Prepared", "PreparedRows"]


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
            raise _dbapi_error(conn, compiled.sql, exc) from exc
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


def _dbapi_error(conn: Connection, sql: str, exc: Exception) -> Exception:
    return DBAPIError.instance(
        sql, None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True, dialect=conn.dialect
    )


class PreparedRows:
    """``INSERT INTO table (columns) VALUES (...), (...), ...``: any number of rows in one statement.

    ``build(dialect_name, values)`` makes the statement from ``values``, one mapping of column name to bind
    parameter per row (so a caller can add ``ON CONFLICT`` and ``RETURNING``). It is compiled once per
    dialect and row count. ``bind`` turns one row into the values the driver gets, in column order: callers
    do that before they queue for the write lock.
    """

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        build: Callable[[str, list[dict[str, BindParameter[Any]]]], ClauseElement] | None = None,
    ) -> None:
        self.table = table
        # in the table's order, which is the order the compiled statement takes them in
        wanted = set(columns)
        self.columns = tuple(c.name for c in table.c if c.name in wanted)
        assert len(self.columns) == len(wanted), "a column that is not in the table"
        self.build = build
        self._processors: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}
        self._compiled: dict[tuple[str, int], tuple[str, bool]] = {}

    def index(self, column: str) -> int:
        """Where ``column`` sits in a bound row."""
        return self.columns.index(column)

    def bind(self, dialect: Dialect, row: Mapping[str, Any]) -> list[Any]:
        processors = self._processors.get(dialect.name)
        if processors is None:
            processors = self._processors[dialect.name] = tuple(
                self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.columns
            )
        return [
            value if process is None or value is None else process(value)
            for process, value in zip(processors, (row[name] for name in self.columns), strict=True)
        ]

    def _statement(self, dialect: Dialect, count: int) -> tuple[str, bool]:
        found = self._compiled.get((dialect.name, count))
        if found is None:
            values: list[dict[str, BindParameter[Any]]] = [
                {name: bindparam(f"{name}__{i}") for name in self.columns} for i in range(count)
            ]
            statement = (
                self.build(dialect.name, values)
                if self.build is not None
                else self.table.insert().values(values)
            )
            compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
            names = [f"{name}__{i}" for i in range(count) for name in self.columns]
            if compiled.positional:
                # the rows' values are handed over flat, row after row: that must be the statement's order
                assert list(compiled.positiontup or ()) == names, "unexpected parameter order"
            found = self._compiled[(dialect.name, count)] = (str(compiled), bool(compiled.positional))
        return found

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> Any:
        """Insert ``rows`` (each from ``bind``) on ``conn``'s driver connection; returns the DBAPI cursor."""
        sql, positional = self._statement(conn.dialect, len(rows))
        if positional:
            params: Any = [value for row in rows for value in row]
        else:
            params = {
                f"{name}__{i}": value
                for i, row in enumerate(rows)
                for name, value in zip(self.columns, row, strict=True)
            }
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
        except conn.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise _dbapi_error(conn, sql, exc) from exc
        return cursor
