"""``gateway stats``: the table, CSV and JSON outputs with suppression, totals and handling time; mistakes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.cases.records import case_record
from gateway.cli.main import main
from tests.unit.test_stats_query import CASES, U1, U2, U3

CapSys = pytest.CaptureFixture[str]


@pytest.fixture
def database(migrated_engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with migrated_engine.begin() as conn:
        conn.execute(case_record.insert(), CASES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    return db_url


def _run(capsys: CapSys, *argv: str) -> tuple[int, str, str]:
    code = main(["stats", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_suppresses_small_cells(database: str, capsys: CapSys) -> None:
    code, out, err = _run(capsys, "--level", "unit", "--by", "gender", "--threshold", "3")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["unit", "name", "1", "2", "total", "closed", "median", "days", "p90", "days"]
    assert lines[1].split()[:3] == [U1, "Unit", "1"]
    assert lines[-1].split()[0] == "total"
    assert "<3" in out  # U1's one case of gender 2 and U3's one case


def _true_or_suppressed(shown: object, truth: int, mark: str = "<5") -> bool:
    """A published value is the true count, or the suppression mark (suppress's own rule decides which)."""
    return shown in (truth, str(truth), mark)


def test_json_output(database: str, capsys: CapSys) -> None:
    code, out, _ = _run(capsys, "--level", "care-provider", "--by", "age", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["level"] == "care-provider"
    assert data["columns"] == ["0-17", "18-29", "30-44", "45-64", "65-79", "80+", "unknown"]
    assert [row["key"] for row in data["rows"]] == ["SE-CP1", "SE-CP2"]
    assert _true_or_suppressed(data["total"], 9)
    assert _true_or_suppressed(data["rows"][0]["total"], 8)
    assert data["rows"][1]["total"] == "<5"  # one case
    truth = {"0-17": 2, "18-29": 1, "30-44": 0, "45-64": 2, "65-79": 1, "80+": 1, "unknown": 1}
    for column, value in data["rows"][0]["cells"].items():
        assert _true_or_suppressed(value, truth[column]), column
    assert "<5" in data["rows"][0]["cells"].values()
    assert data["handling"] == {"closed": "<5", "median_days": None, "p90_days": None}


def test_csv_output_with_handling_time(database: str, capsys: CapSys) -> None:
    code, out, _ = _run(
        capsys, "--level", "national", "--by", "received", "--format", "csv", "--threshold", "3"
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["national", "2026-11", "2026-12", "total", "closed", "median days", "p90 days"]
    assert rows[1][0] == "SE"
    assert rows[1][2] == "<3"  # the one case of December
    assert _true_or_suppressed(rows[1][1], 8, "<3")
    assert rows[1][1:3] != ["8", "<3"] or rows[1][3] == "<3"  # the total must not give December away
    assert rows[1][4:] == ["3", "2", "10"]  # closed in 2, 10 and 1 days
    assert rows[2][0] == "total"
    assert rows[2][4:] == ["3", "2", "10"]


def test_from_to_and_scope(database: str, capsys: CapSys) -> None:
    argv = ["--level", "unit", "--by", "unit", "--scope", "SE-CP1", "--format", "json", "--threshold", "3"]
    code, out, _ = _run(capsys, *argv, "--from", "2026-11-01", "--to", "2026-11-30")
    assert code == 0
    data = json.loads(out)
    assert [row["key"] for row in data["rows"]] == [U1, U2]
    assert data["column_names"] == {U1: "Unit 1", U2: "Unit 2"}
    assert U3 not in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--level", "unit", "--by", "age", "--threshold", "2"], "--threshold must be at least 3"),
        (["--level", "unit", "--by", "age", "--from", "2026-12-01", "--to", "2026-11-01"], "is after --to"),
    ],
)
def test_mistakes_are_one_line(database: str, capsys: CapSys, argv: list[str], fragment: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert fragment in err


def test_a_bad_date_is_a_usage_error(database: str, capsys: CapSys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", "--level", "unit", "--by", "age", "--from", "yesterday"])
    assert exit_info.value.code == 2
    assert "not a date like 2026-11-30" in capsys.readouterr().err


def test_read_only_refuses_an_old_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: CapSys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    code, _, err = _run(capsys, "--level", "national", "--by", "age")
    assert code == 4
    assert "does not exist" in err
    assert not (tmp_path / "missing.db").exists()
