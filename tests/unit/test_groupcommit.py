"""Group commit and prepared statements: batching, isolation of a failing unit, both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from contracts.statements import Prepared, PreparedRows
from gateway.cases.groupcommit import GroupCommit
from gateway.db import WriterLock, make_engine

meta = MetaData()
item = Table(
    "gc_item",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=True),
)
_INSERT = Prepared(insert(item).returning(item.c.id), column_keys=["key", "at"])
# columns named out of the table's order on purpose: rows are bound in the table's order
_ROWS = PreparedRows(
    item, ["at", "key"], lambda _dialect, values: insert(item).values(values).returning(item.c.key)
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=4)
    meta.create_all(engine)
    yield engine
    engine.dispose()


def keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(item.c.key)).scalars())


def test_prepared_insert_returns_id_and_applies_bind_processors(engine: Engine) -> None:
    when = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    with engine.begin() as conn:
        first = _INSERT.scalar(conn, {"key": "a", "at": when})
        second = _INSERT.scalar(conn, {"key": "b", "at": None})
    assert second == first + 1
    with engine.connect() as conn:
        stored = conn.execute(select(item.c.at).where(item.c.key == "a")).scalar_one()
    # read back through SQLAlchemy: the raw path wrote what the ORM layer would have written
    assert stored.replace(tzinfo=None) == when.replace(tzinfo=None)


def test_prepared_maps_driver_errors_without_parameters(engine: Engine) -> None:
    with engine.begin() as conn:
        _INSERT.execute(conn, {"key": "secret-value", "at": None}).close()
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        _INSERT.execute(conn, {"key": "secret-value", "at": None})
    # the statement's parameters are not repeated in the message (PostgreSQL's own detail may name the key)
    assert "[parameters:" not in str(caught.value)


def test_prepared_rows_insert_many_rows_in_one_statement(engine: Engine) -> None:
    when = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert _ROWS.columns == ("key", "at") and _ROWS.index("at") == 1  # noqa: PT018
    rows = [_ROWS.bind(engine.dialect, {"key": f"r{n}", "at": when if n % 2 else None}) for n in range(5)]
    with engine.begin() as conn:
        cursor = _ROWS.execute(conn, rows)
        assert sorted(key for (key,) in cursor.fetchall()) == [f"r{n}" for n in range(5)]
        cursor.close()
        _ROWS.execute(conn, [_ROWS.bind(engine.dialect, {"key": "single", "at": None})]).close()
    assert keys(engine) == ["r0", "r1", "r2", "r3", "r4", "single"]
    with engine.connect() as conn:
        stored = conn.execute(select(item.c.at).where(item.c.key == "r1")).scalar_one()
    assert stored.replace(tzinfo=None) == when.replace(tzinfo=None)
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        _ROWS.execute(conn, [_ROWS.bind(engine.dialect, {"key": "secret-key", "at": None})] * 2)
    assert "[parameters:" not in str(caught.value)


def _queue_behind_a_blocker(commits: GroupCommit, submits: list[threading.Thread]) -> list[threading.Thread]:
    """Start ``submits`` while a leader holds its transaction open, so that they form one batch."""
    ready, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        ready.set()
        release.wait(10)

    leader = threading.Thread(target=commits.run, args=(blocker,))
    leader.start()
    ready.wait(10)
    for t in submits:
        t.start()
    while len(commits._queue) < len(submits):
        threading.Event().wait(0.01)
    release.set()
    return [leader, *submits]


def test_shared_units_of_a_batch_are_stored_by_one_call(engine: Engine) -> None:
    commits = GroupCommit(engine)
    calls: list[list[str]] = []

    def store(conn: Connection, items: list[str]) -> list[str]:
        calls.append(list(items))
        cursor = _ROWS.execute(conn, [_ROWS.bind(engine.dialect, {"key": key, "at": None}) for key in items])
        cursor.close()
        return [f"stored {key}" for key in items]

    results: dict[str, object] = {}
    submits = [
        threading.Thread(target=lambda k=f"s{n}": results.setdefault(k, commits.run_shared(store, k)))
        for n in range(6)
    ]
    submits.append(
        threading.Thread(
            target=lambda: results.setdefault(
                "plain", commits.run(lambda c: _INSERT.scalar(c, {"key": "p", "at": None}))
            )
        )
    )
    for t in _queue_behind_a_blocker(commits, submits):
        t.join(10)
    assert len(calls) == 1 and sorted(calls[0]) == [f"s{n}" for n in range(6)]  # noqa: PT018
    assert all(results[f"s{n}"] == f"stored s{n}" for n in range(6))  # each caller gets its own result
    assert isinstance(results["plain"], int)
    assert keys(engine) == ["p", *(f"s{n}" for n in range(6))]
    assert commits.batches == 2  # the blocker's, then all seven together
    commits.close()


def test_a_failing_shared_batch_is_stored_again_item_by_item(engine: Engine) -> None:
    commits = GroupCommit(engine)
    with engine.begin() as conn:
        _INSERT.execute(conn, {"key": "taken", "at": None}).close()

    def store(conn: Connection, items: list[str]) -> list[str]:
        _ROWS.execute(conn, [_ROWS.bind(engine.dialect, {"key": key, "at": None}) for key in items]).close()
        return items

    outcomes: dict[str, object] = {}

    def submit(key: str) -> None:
        try:
            outcomes[key] = commits.run_shared(store, key)
        except IntegrityError as exc:
            outcomes[key] = exc

    submits = [threading.Thread(target=submit, args=(k,)) for k in ("ok-1", "taken", "ok-2")]
    for t in _queue_behind_a_blocker(commits, submits):
        t.join(10)
    assert isinstance(outcomes["taken"], IntegrityError)
    assert (outcomes["ok-1"], outcomes["ok-2"]) == ("ok-1", "ok-2")
    assert keys(engine) == ["ok-1", "ok-2", "taken"]
    commits.close()


def test_one_unit_at_a_time_is_one_transaction_each(engine: Engine) -> None:
    commits = GroupCommit(engine)
    for n in range(3):
        assert commits.run(lambda conn, n=n: _INSERT.scalar(conn, {"key": f"k{n}", "at": None})) > 0
    assert (commits.batches, commits.units) == (3, 3)
    assert keys(engine) == ["k0", "k1", "k2"]


def test_concurrent_units_share_commits_and_all_land(engine: Engine) -> None:
    commits = GroupCommit(engine)
    gate = threading.Barrier(16)
    results: dict[int, int] = {}

    def submit(n: int) -> None:
        gate.wait()
        for i in range(10):
            results[n * 100 + i] = commits.run(
                lambda conn, key=f"t{n}-{i}": _INSERT.scalar(conn, {"key": key, "at": None})
            )

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys(engine)) == 160
    assert len(set(results.values())) == 160  # every caller got its own row id back
    assert commits.units == 160
    assert commits.batches < 160  # some transactions carried several units


def test_a_failing_unit_fails_alone_and_the_rest_commit(engine: Engine) -> None:
    commits = GroupCommit(engine)
    with engine.begin() as conn:
        _INSERT.execute(conn, {"key": "taken", "at": None}).close()
    ready = threading.Event()
    release = threading.Event()
    outcomes: dict[str, object] = {}

    def blocker(conn: Connection) -> int:
        # holds the leader's transaction open until the others have queued behind it
        ready.set()
        release.wait(10)
        return int(_INSERT.scalar(conn, {"key": "first", "at": None}))

    def submit(key: str) -> None:
        try:
            outcomes[key] = commits.run(lambda conn: _INSERT.scalar(conn, {"key": key, "at": None}))
        except IntegrityError as exc:
            outcomes[key] = exc

    leader = threading.Thread(target=lambda: outcomes.setdefault("first", commits.run(blocker)))
    leader.start()
    ready.wait(10)
    followers = [threading.Thread(target=submit, args=(k,)) for k in ("ok-1", "taken", "ok-2")]
    for t in followers:
        t.start()
    while len(commits._queue) < 3:
        threading.Event().wait(0.01)
    release.set()
    for t in [leader, *followers]:
        t.join(10)
    assert isinstance(outcomes["taken"], IntegrityError)
    assert isinstance(outcomes["ok-1"], int) and isinstance(outcomes["ok-2"], int)  # noqa: PT018
    assert keys(engine) == ["first", "ok-1", "ok-2", "taken"]


def test_refusal_is_a_return_value_and_writes_nothing(engine: Engine) -> None:
    commits = GroupCommit(engine)
    assert commits.run(lambda conn: "refused") == "refused"
    assert keys(engine) == []


def test_writer_lock_queues_sqlite_writers_and_is_a_no_op_elsewhere(tmp_path: Path) -> None:
    file_engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    first, second = WriterLock(file_engine), WriterLock(file_engine)  # two open files, as two processes
    assert first.path == f"{tmp_path / 'w.db'}-writers.lock"
    order: list[str] = []
    with first:
        waiter = threading.Thread(
            target=lambda: (second.__enter__(), order.append("second"), second.__exit__())
        )
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # blocked in the kernel until the first writer is done
        order.append("first")
    waiter.join(5)
    assert order == ["first", "second"]
    assert WriterLock(create_engine("sqlite://")).path is None
    assert WriterLock(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")).path is None
    file_engine.dispose()


def test_a_connection_broken_while_idle_costs_no_request(engine: Engine) -> None:
    commits = GroupCommit(engine)
    assert commits.run(lambda conn: _INSERT.scalar(conn, {"key": "before", "at": None})) > 0
    held = commits._conn  # the leaders' connection, broken behind its back below
    assert held is not None
    if engine.dialect.name == "postgresql":
        pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        held.rollback()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    else:
        held.connection.driver_connection.close()  # type: ignore[union-attr]
    assert commits.run(lambda conn: _INSERT.scalar(conn, {"key": "after", "at": None})) > 0
    assert keys(engine) == ["after", "before"]
    commits.close()


def test_a_writers_lock_that_cannot_be_taken_fails_the_batch_and_blocks_nobody(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = GroupCommit(engine)
    failures = iter([OSError("no lock file")])

    def try_acquire() -> bool:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return True

    monkeypatch.setattr(commits.writer_lock, "try_acquire", try_acquire)
    with pytest.raises(OSError, match="no lock file"):
        commits.run(lambda conn: _INSERT.scalar(conn, {"key": "refused", "at": None}))
    # the failed leader left nothing behind: the next request leads and lands
    assert commits.run(lambda conn: _INSERT.scalar(conn, {"key": "after", "at": None})) > 0
    assert keys(engine) == ["after"]
    commits.close()
