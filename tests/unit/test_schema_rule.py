"""Read-only commands never migrate: with an old or empty schema each answers one line and changes nothing.

Only ``db upgrade``, ``serve`` and ``routes bootstrap`` migrate (serve is covered by every integration test
that starts a gateway on a fresh database); the commands that write to the catalogue or the outbox refuse an
old schema as well.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from gateway import migrate
from gateway.cli import main
from gateway.db import make_engine
from gateway.errors import DatabaseError

ROOT = Path(__file__).resolve().parents[2]
HEAD = migrate.head_revision()

READ_ONLY = [
    ["routes", "list"],
    ["routes", "list", "--active"],
    ["routes", "show"],
    ["routes", "history"],
    ["routes", "audit"],
    ["routes", "diff"],
    ["routes", "export"],
    ["routes", "resolve", "RegisterCase", "SE2321000016-7Q6X"],
    ["outbox", "status"],
    ["outbox", "list"],
    ["outbox", "show", "1"],
    ["db", "current"],
]
WRITING = [
    ["routes", "add-component", "SE2321000016-DEV1"],
    ["routes", "import", str(ROOT / "examples" / "routing.yaml")],
    ["routes", "publish", "-m", "x"],
    ["outbox", "retry", "1"],
    ["outbox", "skip", "1"],
    ["outbox", "purge", "--done-older-than", "30d"],
]


def _picture(url: str) -> tuple[list[str], str | None]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
        return tables, migrate.current_revision(engine)
    finally:
        engine.dispose()


@pytest.fixture
def at_revision(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str | None], str]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def make(revision: str | None) -> str:
        engine = make_engine(db_url, pool_size=1)
        try:
            if revision is None:
                with engine.begin():
                    pass  # the database exists (SQLite: the file), without any table
            else:
                migrate.upgrade(engine, revision)
        finally:
            engine.dispose()
        return db_url

    return make


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == DatabaseError.exit_code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured
    return lines[0]


@pytest.mark.parametrize("argv", READ_ONLY + WRITING, ids=" ".join)
def test_old_schema_is_refused_and_left_alone(
    argv: list[str], at_revision: Callable[[str | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = at_revision("0001")
    before = _picture(url)
    line = _refused(argv, capsys)
    assert line == f"gateway: database schema is at 0001, this version needs {HEAD}: run gateway db upgrade"
    assert _picture(url) == before == (before[0], "0001")


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_empty_database_is_refused_and_left_empty(
    argv: list[str], at_revision: Callable[[str | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = at_revision(None)
    line = _refused(argv, capsys)
    assert line == (
        f"gateway: database schema is at none (an empty database), this version needs {HEAD}: "
        "run gateway db upgrade"
    )
    assert _picture(url) == ([], None)


def test_a_schema_newer_than_this_version_is_named(
    at_revision: Callable[[str | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = at_revision(HEAD)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        engine.dispose()
    line = _refused(["routes", "list"], capsys)
    assert "database schema is at 9999, which this version" in line
    assert "a newer gateway migrated it" in line


def test_missing_sqlite_file_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "var" / "gateway.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{target}")
    for argv in READ_ONLY:
        line = _refused(argv, capsys)
        assert line == (
            f"gateway: database file {target} does not exist: check --config and database.url, "
            "or create it with gateway db upgrade"
        )
    assert not (tmp_path / "var").exists()


def test_db_current_json_reports_before_refusing(
    at_revision: Callable[[str | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    at_revision("0001")
    assert main(["db", "current", "--json"]) == 4
    captured = capsys.readouterr()
    assert '"upToDate": false' in captured.out
    assert "run gateway db upgrade" in captured.err


@pytest.mark.parametrize(
    "argv",
    [["db", "upgrade"], ["routes", "bootstrap", str(ROOT / "examples" / "routing.yaml"), "--author", "t"]],
    ids=" ".join,
)
def test_the_commands_that_may_migrate_do(
    argv: list[str], at_revision: Callable[[str | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = at_revision("0001")
    assert main(argv) == 0, capsys.readouterr()
    assert _picture(url)[1] == HEAD
    assert main(["routes", "list"]) == 0  # and then every command works


def test_a_current_schema_is_not_touched_by_reads(
    at_revision: Callable[[str | None], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at_revision(HEAD)
    called: list[Any] = []
    monkeypatch.setattr(migrate, "upgrade", lambda *a, **k: called.append(a))
    for argv in READ_ONLY:
        code = main(argv)
        assert code in (0, 1, 2, 3), (argv, capsys.readouterr())
    assert called == []
