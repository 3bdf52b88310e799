"""A statistics table as it may be published: the counts after small-cell suppression (``suppress``, the
rule of ``gateway.stats.suppress``), with row and column totals and the handling time per row, as text
lines (table, CSV) or JSON.

Handling time is shown for a row with at least ``threshold`` closed cases; a smaller closed count is shown
suppressed and its median and p90 are left out (they would describe fewer than ``threshold`` persons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.stats.handling import HandlingTime
from gateway.stats.query import Counts
from gateway.stats.suppress import Suppressed, suppress

__all__ = ["HANDLING_HEADER", "Report", "report"]

HANDLING_HEADER = ["closed", "median days", "p90 days"]
TOTAL = "total"


@dataclass(frozen=True)
class Report:
    header: list[str]
    lines: list[list[str]]  # one per row, then the totals line
    data: dict[str, Any]  # the same as JSON: numbers, or "<5" where suppressed


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _handling(time: HandlingTime, threshold: int) -> tuple[list[str], dict[str, Any]]:
    if 0 < time.closed < threshold:
        return [f"<{threshold}", "", ""], {"closed": f"<{threshold}", "median_days": None, "p90_days": None}
    shown = [str(time.closed), _number(time.median), _number(time.p90)]
    return shown, {"closed": time.closed, "median_days": time.median, "p90_days": time.p90}


def _json_value(table: Suppressed, value: int | None) -> int | str:
    return table.shown(value) if value is None else value


def report(counts: Counts, threshold: int = 5) -> Report:
    """The published form of ``counts`` (suppression always on; ``threshold`` at least 3)."""
    table = suppress(counts.cells, threshold)
    named = counts.query.level == "unit"
    header = [counts.query.level, *(["name"] if named else []), *counts.columns, TOTAL, *HANDLING_HEADER]
    lines: list[list[str]] = []
    rows: list[dict[str, Any]] = []
    for row in counts.rows:
        values = [table.cells.get((row, col), 0) for col in counts.columns]
        shown, handling = _handling(counts.handling[row], threshold)
        total = table.row_totals[row]
        name = counts.names.get(row, "")
        lines.append([row, *([name] if named else []), *map(table.shown, values), table.shown(total), *shown])
        rows.append(
            {
                "key": row,
                **({"name": name} if named else {}),
                "cells": {col: _json_value(table, v) for col, v in zip(counts.columns, values, strict=True)},
                "total": _json_value(table, total),
                "handling": handling,
            }
        )
    column_totals = [table.column_totals.get(col, 0) for col in counts.columns]
    shown, handling = _handling(counts.overall, threshold)
    lines.append(
        [TOTAL, *([""] if named else []), *map(table.shown, column_totals), table.shown(table.total), *shown]
    )
    query = counts.query
    data = {
        "level": query.level,
        "by": query.by,
        "period": query.period if query.by in ("event-date", "received", "closed") else None,
        "from": query.start.isoformat() if query.start else None,
        "to": query.end.isoformat() if query.end else None,
        "scope": query.scope,
        "threshold": threshold,
        "columns": counts.columns,
        "column_names": {col: counts.names[col] for col in counts.columns if col in counts.names},
        "rows": rows,
        "column_totals": {
            col: _json_value(table, v) for col, v in zip(counts.columns, column_totals, strict=True)
        },
        "total": _json_value(table, table.total if counts.rows else 0),
        "handling": handling,
    }
    return Report(header, lines, data)
