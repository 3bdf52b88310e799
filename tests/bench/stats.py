"""``python -m tests.bench.run stats``: statistics queries over 1 000 000 case records (issue 16).

The records are made by one INSERT … SELECT over a recursive counter in the database (seconds, not the
minutes a million bound rows take): 1 000 units under 50 care providers under 5 regions, ages 0-96 (every
50th unknown), two genders, problem and business-area codes, received over two years (a case every
63 s), three in four closed 0-59 days later. Then each query of QUERIES is timed (best and median of
RUNS, in-process through ``gateway.stats.query.count``: both its GROUP BY statements), and the suppression
and rendering of its result separately (``gateway.stats.report``). The plans of the first query are
logged (EXPLAIN). Figures only, no timed asserts; the issue's goal is a query under 2 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gateway import migrate
from gateway.db import make_engine
from gateway.stats.query import StatsQuery, count, statements
from gateway.stats.report import report

__all__ = ["CASES", "bench_stats", "fill_cases"]

CASES = 1_000_000
RUNS = 3
QUERIES = (
    StatsQuery("national", "age"),
    StatsQuery("region", "closed", "month"),
    StatsQuery("care-provider", "main-problem", start=date(2025, 6, 1), end=date(2025, 6, 30)),
    StatsQuery("unit", "received", "month"),
    StatsQuery("unit", "gender", "month", scope="SE-R3"),
    StatsQuery("national", "received", "week"),
)

#: per dialect: the received instant of case i, its closed local time, its event date
_TIMES = {
    "sqlite": (
        "(datetime('2025-01-01', '+' || (i * 63) || ' seconds') || '.000000')",  # SQLAlchemy's format
        "CASE WHEN i % 4 = 0 THEN NULL"
        " ELSE datetime('2025-01-01', '+' || (i * 63 + 3600) || ' seconds', '+' || (i % 60) || ' days')"
        " || '.000000' END",
        "date('2025-01-01', '+' || (i * 63) || ' seconds', '-' || (i % 30) || ' days')",
    ),
    "postgresql": (
        "(TIMESTAMPTZ '2025-01-01 00:00:00+00' + i * INTERVAL '63 seconds')",
        "CASE WHEN i % 4 = 0 THEN NULL ELSE (TIMESTAMP '2025-01-01 01:00:00' + i * INTERVAL '63 seconds'"
        " + (i % 60) * INTERVAL '1 day') END",
        "CAST(TIMESTAMP '2025-01-01' + i * INTERVAL '63 seconds' - (i % 30) * INTERVAL '1 day' AS DATE)",
    ),
}

#: the fill; {unit}, {received}, {closed}, {event} are replaced by the dialect's fixed fragments
_FILL = (
    "WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
    " INSERT INTO case_record (case_id, category, recipient_type, recipient_unit, concerned_unit,"
    " handling_unit, subject_age, subject_gender, main_problem, sub_problem, experienced_problem,"
    " business_area, event_date, submitted_at, received_at, closed_at, status, route_target,"
    " receiving_system, routing_version, updated_at, unit_name, care_provider, region)"
    " SELECT 'ST-' || CAST(i AS VARCHAR(20)), 'COMPLAINT', 'CARE_UNIT', {unit}, NULL, {unit},"
    " CASE WHEN i % 50 = 0 THEN NULL ELSE CAST(i % 97 AS INTEGER) END,"
    " CAST(i % 2 + 1 AS VARCHAR(8)), CAST(i % 9 AS VARCHAR(16)),"
    " CAST(i % 9 AS VARCHAR(8)) || '.' || CAST(i % 5 AS VARCHAR(8)), CAST(i % 7 AS VARCHAR(16)),"
    " CAST(i % 4 AS VARCHAR(16)), {event}, {received}, {received}, {closed},"
    " CASE WHEN i % 4 = 0 THEN 'IN_PROGRESS' ELSE 'CLOSED' END, 'deviation-a', 'SE2321000016-DEV1', 1,"
    " {received}, 'Unit ' || CAST(i % 1000 AS VARCHAR(8)), 'SE-VG' || CAST(i % 1000 / 20 AS VARCHAR(8)),"
    " 'SE-R' || CAST(i % 1000 / 200 AS VARCHAR(8)) FROM n"
)


def fill_cases(engine: Engine, count_: int = CASES) -> None:
    """Add ``count_`` case records in one statement that makes its own rows."""
    received, closed, event = _TIMES[engine.dialect.name]
    unit = "'SE-U' || CAST(i % 1000 AS VARCHAR(8))"
    sql = _FILL
    for name, fragment in (("unit", unit), ("received", received), ("closed", closed), ("event", event)):
        sql = sql.replace("{" + name + "}", fragment)
    with engine.begin() as conn:
        conn.execute(text(sql), {"last": count_})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _explain(engine: Engine, query: StatsQuery, log: Callable[[str], None]) -> None:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        for statement in statements(query, engine.dialect.name):
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            plan = conn.exec_driver_sql(prefix + str(compiled).replace("%%", "%")).all()
            log("  plan: " + " | ".join(" ".join(str(v) for v in row) for row in plan))


def _label(query: StatsQuery) -> str:
    extra = f" {query.start}..{query.end}" if query.start else ""
    extra += f" scope {query.scope}" if query.scope else ""
    return (
        f"{query.level} by {query.by}"
        + (f"/{query.period}" if query.by in ("received", "closed") else "")
        + extra
    )


def bench_stats(
    work: Path,
    figures: list[dict[str, Any]],
    databases: list[tuple[str, Callable[[], AbstractContextManager[str]]]],
    figure: Callable[..., dict[str, Any]],
    log: Callable[[str], None],
) -> None:
    for db_name, url_cm in databases:
        with url_cm() as url:
            engine = make_engine(url, pool_size=2)
            try:
                migrate.upgrade(engine)
                started = time.monotonic()
                fill_cases(engine)
                log(f"stats {db_name}: {CASES:,} cases stored in {time.monotonic() - started:.0f} s")
                _explain(engine, QUERIES[0], log)
                for query in QUERIES:
                    seconds = []
                    for _ in range(RUNS):
                        begun = time.perf_counter()
                        counts = count(engine, query)
                        seconds.append(time.perf_counter() - begun)
                    begun = time.perf_counter()
                    report(counts)
                    rendered = time.perf_counter() - begun
                    name = f"stats {db_name} {_label(query)}"
                    cells = len(counts.cells)
                    log(
                        f"{name}: best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s,"
                        f" {cells} cells; suppression and rendering {rendered:.2f} s"
                    )
                    figures.append(
                        figure(
                            name,
                            min(seconds),
                            None,
                            "s",
                            median_s=round(statistics.median(seconds), 3),
                            cells=cells,
                            rows=CASES,
                            report_s=round(rendered, 3),
                        )
                    )
            finally:
                engine.dispose()
