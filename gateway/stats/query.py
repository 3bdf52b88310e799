"""Counts of cases at a level by one parameter, with the handling time per row.

``count(engine, StatsQuery(...))`` runs two GROUP BY queries over ``case_record`` (the counts per row and
column, and the histogram of handling days per row; no per-case work in Python): rows are the level's units,
care providers or regions (their HSA-ids from the registration snapshot, ``unknown`` where it has none), or
one row ``SE``. ``--from``/``--to`` bound the received date (UTC, inclusive) and use
``ix_case_record_stats``; ``scope`` keeps the cases whose unit, care provider or region is that HSA-id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, literal_column, or_, select

from gateway.cases.records import case_record
from gateway.stats.dimensions import (
    AGE_BANDS,
    LEVELS,
    NOT_CLOSED,
    PARAMETERS,
    PERIODS,
    UNKNOWN,
    handling_days,
    level_sql,
    parameter_sql,
    unit_sql,
)
from gateway.stats.handling import HandlingTime, handling_time

__all__ = ["Counts", "StatsQuery", "count", "statements"]

c = case_record.c
NO_CLOSED = HandlingTime(0, None, None)


@dataclass(frozen=True)
class StatsQuery:
    level: str
    by: str
    period: str = "month"
    start: date | None = None  # received on or after (UTC date)
    end: date | None = None  # received on or before
    scope: str | None = None  # an HSA-id: unit, care provider or region

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("level", self.level, LEVELS),
            ("parameter", self.by, PARAMETERS),
            ("period", self.period, PERIODS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: one of {', '.join(allowed)}")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"--from {self.start} is after --to {self.end}")


@dataclass(frozen=True)
class Counts:
    query: StatsQuery
    cells: dict[tuple[str, str], int]  # (row, column) → cases
    rows: list[str]
    columns: list[str]
    names: dict[str, str] = field(default_factory=dict)  # unit HSA-id → its snapshot name
    handling: dict[str, HandlingTime] = field(default_factory=dict)  # per row
    overall: HandlingTime = NO_CLOSED  # every row's closed cases together


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _where(query: StatsQuery) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if query.start is not None:
        conditions.append(c.received_at >= _instant(query.start))
    if query.end is not None:
        conditions.append(c.received_at < _instant(query.end + timedelta(days=1)))
    if query.scope is not None:
        scope = query.scope
        unit: ColumnElement[str] = literal_column(unit_sql)
        conditions.append(or_(c.care_provider == scope, c.region == scope, unit == scope))
    return and_(True, *conditions)


def statements(query: StatsQuery, dialect: str) -> tuple[Any, Any]:
    """The counts statement (row, col, cases, name) and the handling statement (row, days, cases)."""
    row: ColumnElement[str] = literal_column(level_sql(query.level))
    col: ColumnElement[str] = literal_column(parameter_sql(query.by, query.period, dialect))
    grouped_row = [] if query.level == "national" else [row]  # PostgreSQL refuses a constant to group by
    named = query.level == "unit" or query.by == "unit"
    name = func.max(c.unit_name) if named else literal_column("NULL")
    counts = (
        select(row.label("row"), col.label("col"), func.count().label("cases"), name.label("name"))
        .select_from(case_record)
        .where(_where(query))
        .group_by(*grouped_row, col)
    )
    days: ColumnElement[int] = literal_column(handling_days(dialect))
    handling = (
        select(row.label("row"), days.label("days"), func.count().label("cases"))
        .select_from(case_record)
        .where(_where(query), c.closed_at.is_not(None))
        .group_by(*grouped_row, days)
    )
    return counts, handling


def _column_order(by: str, columns: set[str]) -> list[str]:
    if by == "age":
        return [band for band, _ in AGE_BANDS if band in columns] + ([UNKNOWN] if UNKNOWN in columns else [])
    last = {UNKNOWN, NOT_CLOSED}
    return sorted(columns - last) + sorted(columns & last)


def count(engine: Engine, query: StatsQuery) -> Counts:
    """The counts and handling times of ``query`` (read-only)."""
    counts_sql, handling_sql = statements(query, engine.dialect.name)
    cells: dict[tuple[str, str], int] = {}
    names: dict[str, str] = {}
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for r in conn.execute(counts_sql):
            cells[(str(r.row), str(r.col))] = int(r.cases)
            if r.name:
                names[str(r.row) if query.level == "unit" else str(r.col)] = str(r.name)
        for r in conn.execute(handling_sql):
            histograms[str(r.row)][int(r.days)] = int(r.cases)
    rows = _column_order("", {row for row, _ in cells})
    columns = _column_order(query.by, {col for _, col in cells})
    handling = {row: handling_time(histograms.get(row, {})) for row in rows}
    merged: dict[int, int] = defaultdict(int)
    for histogram in histograms.values():
        for days, cases in histogram.items():
            merged[days] += cases
    return Counts(query, cells, rows, columns, names, handling, handling_time(merged))
