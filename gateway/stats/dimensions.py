"""The SQL of the statistics' levels (rows) and parameters (columns), per dialect.

Each dimension is a fixed SQL fragment over ``case_record``'s columns with its constants written in (no
bound parameters), so the same text serves the SELECT list and the GROUP BY. Dates group by day
(``YYYY-MM-DD``), ISO week (the week's Monday, ``YYYY-MM-DD``) or month (``YYYY-MM``); the received date
is the UTC date of ``received_at``, the closed date and the event date are Swedish dates as stored.
"""

from __future__ import annotations

__all__ = [
    "AGE_BANDS",
    "LEVELS",
    "NOT_CLOSED",
    "PARAMETERS",
    "PERIODS",
    "UNKNOWN",
    "handling_days",
    "level_sql",
    "parameter_sql",
    "unit_sql",
]

LEVELS = ("unit", "care-provider", "region", "national")
PARAMETERS = (
    "unit",
    "age",
    "gender",
    "main-problem",
    "sub-problem",
    "experienced-problem",
    "business-area",
    "event-date",
    "received",
    "closed",
)
PERIODS = ("day", "week", "month")
UNKNOWN = "unknown"
NOT_CLOSED = "not closed"
#: (label, upper bound exclusive); the last band has none
AGE_BANDS: tuple[tuple[str, int | None], ...] = (
    ("0-17", 18),
    ("18-29", 30),
    ("30-44", 45),
    ("45-64", 65),
    ("65-79", 80),
    ("80+", None),
)
NATIONAL = "'SE'"

#: the case's unit: the concerned unit when set, else the recipient unit (the snapshot's unit)
unit_sql = "COALESCE(concerned_unit, recipient_unit)"

_CODES = {
    "gender": "subject_gender",
    "main-problem": "main_problem",
    "sub-problem": "sub_problem",
    "experienced-problem": "experienced_problem",
    "business-area": "business_area",
}


def level_sql(level: str) -> str:
    """The row key of ``level``: an HSA-id (``unknown`` when not known) or ``SE``."""
    if level == "unit":
        return unit_sql
    if level == "care-provider":
        return f"COALESCE(care_provider, '{UNKNOWN}')"
    if level == "region":
        return f"COALESCE(region, '{UNKNOWN}')"
    if level == "national":
        return NATIONAL
    raise ValueError(f"unknown level {level!r}")


def _age_sql() -> str:
    whens = " ".join(f"WHEN subject_age < {bound} THEN '{label}'" for label, bound in AGE_BANDS if bound)
    return f"CASE WHEN subject_age IS NULL THEN '{UNKNOWN}' {whens} ELSE '{AGE_BANDS[-1][0]}' END"


def _period_sql(column: str, period: str, dialect: str) -> str:
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    if dialect == "postgresql":
        value = f"CAST({column} AS timestamp)"
        if period == "week":
            value = f"date_trunc('week', {value})"
        return f"to_char({value}, '{'YYYY-MM' if period == 'month' else 'YYYY-MM-DD'}')"
    # SQLite keeps dates and times as ISO text: the day and month are prefixes (cheaper than date functions)
    if period == "day":
        return f"substr({column}, 1, 10)"
    if period == "month":
        return f"substr({column}, 1, 7)"
    return f"date({column}, '-' || ((CAST(strftime('%w', {column}) AS INTEGER) + 6) % 7) || ' days')"


def _received(dialect: str) -> str:
    return "(received_at AT TIME ZONE 'UTC')" if dialect == "postgresql" else "received_at"


def parameter_sql(parameter: str, period: str, dialect: str) -> str:
    """The column key of ``parameter`` (dates by ``period``) on ``dialect``."""
    if parameter == "unit":
        return unit_sql
    if parameter == "age":
        return _age_sql()
    if parameter in _CODES:
        return f"COALESCE({_CODES[parameter]}, '{UNKNOWN}')"
    if parameter == "event-date":
        return _period_sql("event_date", period, dialect)
    if parameter == "received":
        return _period_sql(_received(dialect), period, dialect)
    if parameter == "closed":
        return f"COALESCE({_period_sql('closed_at', period, dialect)}, '{NOT_CLOSED}')"
    raise ValueError(f"unknown parameter {parameter!r}")


def handling_days(dialect: str) -> str:
    """Calendar days from the received date to the closed date (NULL while open)."""
    if dialect == "postgresql":
        return f"(CAST(closed_at AS date) - CAST({_received(dialect)} AS date))"
    # whole Julian days counted from midnight (+ 0.5): the calendar days between the two dates
    return "CAST(julianday(closed_at) + 0.5 AS INTEGER) - CAST(julianday(received_at) + 0.5 AS INTEGER)"
