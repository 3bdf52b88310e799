"""Bounded waits for write locks: a request held up by another process fails in time and stores nothing.

The bound here is short (0.5 s) so the tests stay quick; the integration tests prove the same through a
real gateway with the configured default. Deadlines are generous: the machine is shared.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from contracts.statements import Prepared
from gateway.cases.groupcommit import GroupCommit
from gateway.db import WriterLock, is_lock_timeout, make_engine
from gateway.errors import DatabaseBusyError
from tests.conftest import POSTGRES_SKIP, POSTGRES_URL, _postgres_schema_url

BOUND_MS = 500
#: what a failed request may take beyond the bound on a busy 2-core machine
SLACK_S = 3.0

meta = MetaData()
item = Table(
    "lw_item",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(32), nullable=False, unique=True),
)
_INSERT = Prepared(insert(item).returning(item.c.id), column_keys=["key"])


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=4, lock_timeout_ms=BOUND_MS)
    meta.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lw.db'}", pool_size=4, lock_timeout_ms=BOUND_MS)
    meta.create_all(engine)
    yield engine
    engine.dispose()


def keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(item.c.key)).scalars())


def _insert(key: str) -> object:
    return lambda conn: _INSERT.scalar(conn, {"key": key})


def _run_concurrently(commits: GroupCommit, count: int) -> tuple[list[BaseException | object], float]:
    """``count`` requests at once; their outcomes and the longest time one of them took."""
    outcomes: list[BaseException | object] = [None] * count
    took = [0.0] * count

    def one(n: int) -> None:
        started = time.monotonic()
        try:
            outcomes[n] = commits.run(_insert(f"k{n}"))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            outcomes[n] = exc
        took[n] = time.monotonic() - started

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes, max(took)


def test_writer_lock_try_acquire_never_waits(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    holder, other = WriterLock(engine), WriterLock(engine)  # two open files, as two processes
    assert holder.try_acquire()
    assert other.try_acquire() is False
    holder.release()
    assert other.try_acquire()
    other.release()
    engine.dispose()


def test_a_held_writers_flock_fails_each_request_within_the_bound(sqlite_engine: Engine) -> None:
    commits = GroupCommit(sqlite_engine, lock_timeout_ms=BOUND_MS)
    other = WriterLock(sqlite_engine)  # another process writing the same file
    assert other.try_acquire()
    try:
        outcomes, longest = _run_concurrently(commits, 6)
    finally:
        other.release()
    assert all(isinstance(o, DatabaseBusyError) for o in outcomes), outcomes
    assert longest < BOUND_MS / 1000 + SLACK_S
    fault = outcomes[0]
    assert isinstance(fault, DatabaseBusyError)
    assert (fault.platform_code, fault.faultcode, fault.retryable) == ("VP009", "Server", True)
    assert "nothing was stored" in fault.message
    assert keys(sqlite_engine) == []
    # once the lock is free, requests land again
    assert isinstance(commits.run(_insert("after")), int)
    assert keys(sqlite_engine) == ["after"]
    commits.close()


def test_a_sqlite_write_transaction_of_another_connection_is_waited_for_once(sqlite_engine: Engine) -> None:
    """``sqlite3 gateway.db`` inside BEGIN IMMEDIATE: the batch fails once, it is not run unit by unit."""
    database = sqlite_engine.url.database
    assert database is not None
    shell = sqlite3.connect(database, isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    commits = GroupCommit(sqlite_engine, lock_timeout_ms=BOUND_MS)
    try:
        outcomes, longest = _run_concurrently(commits, 6)
    finally:
        shell.execute("ROLLBACK")
        shell.close()
    assert all(isinstance(o, DatabaseBusyError) for o in outcomes), outcomes
    # six units in at most a few batches: each request waited about one bound, never six of them
    assert longest < 2 * BOUND_MS / 1000 + SLACK_S
    assert keys(sqlite_engine) == []
    assert isinstance(commits.run(_insert("after")), int)
    commits.close()


def test_the_database_wait_gets_only_what_the_writers_lock_left(sqlite_engine: Engine) -> None:
    """The writers' lock held for most of the bound, then the database itself: still one bound in all."""
    database = sqlite_engine.url.database
    assert database is not None
    other = WriterLock(sqlite_engine)
    assert other.try_acquire()
    shell = sqlite3.connect(database, isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    threading.Timer(0.4, other.release).start()  # 400 of the 500 ms go to the writers' lock
    commits = GroupCommit(sqlite_engine, lock_timeout_ms=BOUND_MS)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseBusyError):
            commits.run(_insert("late"))
        took = time.monotonic() - started
    finally:
        shell.execute("ROLLBACK")
        shell.close()
    assert took < BOUND_MS / 1000 + SLACK_S
    # the leaders' connection got its full wait back for the next request
    assert isinstance(commits.run(_insert("after")), int)
    assert keys(sqlite_engine) == ["after"]
    commits.close()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    for url in _postgres_schema_url(POSTGRES_URL):
        engine = make_engine(url, pool_size=4, lock_timeout_ms=BOUND_MS)
        meta.create_all(engine)
        yield engine
        engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_table_lock_of_another_session_fails_in_time(postgres_engine: Engine) -> None:
    engine = postgres_engine
    commits = GroupCommit(engine, lock_timeout_ms=BOUND_MS)
    with engine.connect() as other:
        other.execute(text("LOCK TABLE lw_item IN ACCESS EXCLUSIVE MODE"))
        outcomes, longest = _run_concurrently(commits, 4)
        other.rollback()
    assert all(isinstance(o, DatabaseBusyError) for o in outcomes), outcomes
    assert longest < 2 * BOUND_MS / 1000 + SLACK_S
    assert keys(engine) == []
    assert isinstance(commits.run(_insert("after")), int)
    commits.close()


def test_lock_timeouts_are_told_from_other_errors(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        assert database is not None
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            # BEGIN IMMEDIATE runs on the driver connection (gateway.db), so its error is the driver's
            with (
                pytest.raises((OperationalError, sqlite3.OperationalError)) as caught,
                engine.begin() as conn,
            ):
                conn.execute(select(1))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with engine.connect() as other:
            other.execute(text("LOCK TABLE lw_item IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(OperationalError) as caught, engine.begin() as conn:
                conn.execute(select(item.c.id))
            other.rollback()
    assert is_lock_timeout(caught.value)
    assert not is_lock_timeout(ValueError("database is locked"))
    with pytest.raises(DBAPIError) as other_error, engine.begin() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_lock_timeout(other_error.value)
