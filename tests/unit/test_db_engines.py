"""Read-only engines answer while a writer holds the database, and cannot write."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import make_engine


def test_a_read_only_engine_does_not_wait_for_the_sqlite_write_lock(sqlite_url: str) -> None:
    writer = make_engine(sqlite_url, pool_size=1)
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    writer.dispose()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (2)")
    reads = make_engine(sqlite_url, pool_size=1, read_only=True)
    try:
        started = time.monotonic()
        with reads.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        assert time.monotonic() - started < 1.0
        with pytest.raises(DBAPIError), reads.connect() as conn:
            conn.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        reads.dispose()


def test_a_read_only_engine_cannot_write(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    reads = make_engine(db_url, pool_size=1, read_only=True)
    try:
        with pytest.raises(DBAPIError), reads.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        reads.dispose()
