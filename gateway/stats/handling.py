"""Handling time (received → closed, in calendar days) from a histogram of days: the median and the 90th
percentile, computed from per-row counts of each number of days (the database groups; no per-case loop).

The median is the middle value (the mean of the two middle values for an even count); the 90th percentile
is the nearest-rank value (the smallest value with at least 90 % of the cases at or below it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["HandlingTime", "handling_time"]


@dataclass(frozen=True)
class HandlingTime:
    closed: int  # closed cases counted
    median: float | None
    p90: float | None


def _nth(ordered: list[tuple[int, int]], rank: int) -> int:
    """The ``rank``-th value (1-based) of the histogram ``ordered`` (value, count) sorted by value."""
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    raise ValueError("rank beyond the histogram")


def handling_time(histogram: Mapping[int, int]) -> HandlingTime:
    """The handling time of one row from ``{days: cases}``."""
    ordered = sorted((days, count) for days, count in histogram.items() if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return HandlingTime(0, None, None)
    low, high = _nth(ordered, (total + 1) // 2), _nth(ordered, total // 2 + 1)
    median = float(low) if total % 2 else (low + high) / 2
    return HandlingTime(total, median, float(_nth(ordered, math.ceil(0.9 * total))))
