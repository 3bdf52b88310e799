"""Instants as the desk shows and filters them: stored in UTC, dates meant in Swedish local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gateway.cases.outgoing import SWEDEN

__all__ = ["from_ms", "local_day_start", "utc"]


def utc(value: Any) -> Any:
    """An aware UTC instant from a stored one (SQLite gives timezone columns back naive, in UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def local_day_start(day: date, plus_days: int = 0) -> datetime:
    """The UTC instant at which ``day`` (+ ``plus_days``) begins in Sweden."""
    return datetime.combine(day + timedelta(days=plus_days), time(0), SWEDEN).astimezone(UTC)
