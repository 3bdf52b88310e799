"""Statistics query: exact counts per level and parameter over known cases, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.cases.records import case_record
from gateway.stats.handling import handling_time
from gateway.stats.query import StatsQuery, count

CP1, CP2, R1 = "SE-CP1", "SE-CP2", "SE-R1"
U1, U2, U3 = "SE-U1", "SE-U2", "SE-U3"


def _case(n: int, unit: str, received: datetime, **values: Any) -> dict[str, Any]:
    care_provider = {U1: CP1, U2: CP1, U3: CP2}[unit]
    row: dict[str, Any] = {
        "case_id": f"C{n:03d}",
        "category": "COMPLAINT",
        "recipient_type": "CARE_UNIT",
        "recipient_unit": unit,
        "concerned_unit": None,
        "handling_unit": unit,
        "subject_age": 40,
        "subject_gender": "1",
        "main_problem": "1",
        "sub_problem": "1.3",
        "experienced_problem": None,
        "business_area": "A",
        "event_date": received.date(),
        "submitted_at": received.replace(tzinfo=None),
        "received_at": received,
        "closed_at": None,
        "status": "RECEIVED",
        "route_target": "internal",
        "receiving_system": "internal",
        "routing_version": 1,
        "updated_at": received,
        "unit_name": f"Unit {unit[-1]}",
        "care_provider": care_provider,
        "region": R1 if unit != U3 else None,
    }
    row.update(values)
    return row


def _at(day: int, month: int = 11, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


CASES = [
    # U1: five cases in November (two closed), ages over the bands
    _case(1, U1, _at(2), subject_age=5, closed_at=datetime(2026, 11, 4, 10)),  # 2 days
    _case(2, U1, _at(2), subject_age=17, closed_at=datetime(2026, 11, 12, 10)),  # 10 days
    _case(3, U1, _at(3), subject_age=18, subject_gender="2"),
    _case(4, U1, _at(9), subject_age=80, main_problem=None),
    _case(5, U1, _at(30), subject_age=None, event_date=date(2026, 10, 1)),
    # U2 (same care provider): two cases, one in December
    _case(6, U2, _at(10), subject_age=64, closed_at=datetime(2026, 11, 11, 9)),  # 1 day
    _case(7, U2, _at(1, 12), subject_age=65),
    # U3 (another care provider, no region in the snapshot), its case concerned a unit U1 (counted at U1)
    _case(8, U3, _at(15), subject_age=30),
    _case(
        9, U3, _at(16), concerned_unit=U1, unit_name="Unit 1", care_provider=CP1, region=R1, subject_age=45
    ),
]


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    with migrated_engine.begin() as conn:
        conn.execute(case_record.insert(), CASES)
    return migrated_engine


def test_national_by_age(engine: Engine) -> None:
    counts = count(engine, StatsQuery("national", "age"))
    assert counts.rows == ["SE"]
    assert counts.columns == ["0-17", "18-29", "30-44", "45-64", "65-79", "80+", "unknown"]
    assert counts.cells == {
        ("SE", "0-17"): 2,
        ("SE", "18-29"): 1,
        ("SE", "30-44"): 1,
        ("SE", "45-64"): 2,
        ("SE", "65-79"): 1,
        ("SE", "80+"): 1,
        ("SE", "unknown"): 1,
    }
    assert counts.handling["SE"] == handling_time({2: 1, 10: 1, 1: 1})


def test_unit_level_uses_the_concerned_unit_and_names(engine: Engine) -> None:
    counts = count(engine, StatsQuery("unit", "gender"))
    assert counts.rows == [U1, U2, U3]
    assert counts.cells == {(U1, "1"): 5, (U1, "2"): 1, (U2, "1"): 2, (U3, "1"): 1}
    assert counts.names == {U1: "Unit 1", U2: "Unit 2", U3: "Unit 3"}
    assert counts.handling[U1].closed == 2
    assert counts.handling[U1].median == 6.0
    assert counts.handling[U1].p90 == 10.0
    assert counts.handling[U3].closed == 0
    assert counts.handling[U3].median is None


def test_care_provider_and_region_levels(engine: Engine) -> None:
    by_provider = count(engine, StatsQuery("care-provider", "main-problem"))
    assert by_provider.cells == {(CP1, "1"): 7, (CP1, "unknown"): 1, (CP2, "1"): 1}
    assert by_provider.columns == ["1", "unknown"]
    by_region = count(engine, StatsQuery("region", "business-area"))
    assert by_region.rows == [R1, "unknown"]
    assert by_region.cells == {(R1, "A"): 8, ("unknown", "A"): 1}


def test_by_unit(engine: Engine) -> None:
    counts = count(engine, StatsQuery("care-provider", "unit"))
    assert counts.cells == {(CP1, U1): 6, (CP1, U2): 2, (CP2, U3): 1}
    assert counts.names[U2] == "Unit 2"


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", {"2026-11-02": 2, "2026-11-03": 1, "2026-11-09": 1, "2026-11-10": 1, "2026-11-15": 1}),
        ("week", {"2026-11-02": 3, "2026-11-09": 3, "2026-11-16": 1, "2026-11-30": 2}),
        ("month", {"2026-11": 8, "2026-12": 1}),
    ],
)
def test_received_periods(engine: Engine, period: str, expected: dict[str, int]) -> None:
    counts = count(engine, StatsQuery("national", "received", period))
    got = {col: n for (_, col), n in counts.cells.items()}
    for key, value in expected.items():
        assert got[key] == value, key
    assert sum(got.values()) == len(CASES)


def test_event_date_and_closed(engine: Engine) -> None:
    event = count(engine, StatsQuery("national", "event-date", "month"))
    assert event.cells == {("SE", "2026-10"): 1, ("SE", "2026-11"): 7, ("SE", "2026-12"): 1}
    closed = count(engine, StatsQuery("national", "closed", "day"))
    assert closed.columns == ["2026-11-04", "2026-11-11", "2026-11-12", "not closed"]
    assert closed.cells[("SE", "not closed")] == 6


def test_from_to_inclusive(engine: Engine) -> None:
    counts = count(engine, StatsQuery("national", "gender", start=date(2026, 11, 3), end=date(2026, 11, 30)))
    assert sum(counts.cells.values()) == 6  # the 3rd and the 30th included, the 2nd and December not


def test_scope(engine: Engine) -> None:
    assert count(engine, StatsQuery("unit", "gender", scope=CP2)).cells == {(U3, "1"): 1}
    assert sum(count(engine, StatsQuery("national", "age", scope=U1)).cells.values()) == 6
    assert sum(count(engine, StatsQuery("national", "age", scope=R1)).cells.values()) == 8


def test_empty_database(migrated_engine: Engine) -> None:
    counts = count(migrated_engine, StatsQuery("region", "closed"))
    assert counts.cells == {}
    assert counts.rows == []
    assert counts.handling == {}


def test_bad_query() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        StatsQuery("planet", "age")
    with pytest.raises(ValueError, match="after"):
        StatsQuery("national", "age", start=date(2026, 2, 1), end=date(2026, 1, 1))


def test_handling_time_percentiles() -> None:
    assert handling_time({}).median is None
    assert handling_time({3: 1}) == handling_time({3: 1})
    result = handling_time({1: 5, 2: 4, 30: 1})  # 1,1,1,1,1,2,2,2,2,30
    assert (result.closed, result.median, result.p90) == (10, 1.5, 2.0)
    assert handling_time({0: 9, 7: 1}).p90 == 0.0
    assert handling_time({0: 8, 7: 2}).p90 == 7.0
