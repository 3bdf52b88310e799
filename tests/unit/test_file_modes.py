"""Files the gateway writes are readable by its user alone, whatever the umask; wider ones are tightened.

Run with umask 022 (what a shell gives), so only the gateway's explicit modes can make the files private.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.db import WriterLock, make_engine
from routing.holder import RoutingHolder
from routing.model import Catalogue


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def shell_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_sqlite_database_and_its_files_are_private(shell_umask: None, tmp_path: Path) -> None:
    database = tmp_path / "var" / "sub" / "gateway.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with WriterLock(engine):
        pass
    modes = {
        p.name: f"{_mode(p):04o}"
        for p in (database, *database.parent.glob("gateway.db-*"), database.parent, database.parent.parent)
    }
    engine.dispose()
    assert modes == {
        "gateway.db": "0600",
        "gateway.db-wal": "0600",
        "gateway.db-shm": "0600",
        "gateway.db-writers.lock": "0600",
        "sub": "0700",
        "var": "0700",
    }


def test_existing_wider_database_is_tightened_with_a_warning(
    shell_umask: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "gateway.db"
    old = create_engine(f"sqlite:///{database}")  # as an older version made it: 0644
    with old.begin() as conn:
        conn.execute(text("CREATE TABLE t (a)"))
    old.dispose()
    assert _mode(database) == 0o644
    with caplog.at_level(logging.WARNING, logger="gateway.db"):
        make_engine(f"sqlite:///{database}").dispose()
    assert _mode(database) == 0o600
    assert [r.getMessage() for r in caplog.records] == [
        f"{database} was readable by others (mode 0644); now by its owner only (0600)"
    ]
    caplog.clear()
    make_engine(f"sqlite:///{database}").dispose()  # already private: nothing to say
    assert not caplog.records


def test_routing_snapshot_is_private_and_an_old_one_is_tightened(
    shell_umask: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = tmp_path / "var" / "routing-snapshot.json"
    holder = RoutingHolder(create_engine("sqlite://"), snapshot)
    holder._write_file(Catalogue(), 1, "abc")
    assert _mode(snapshot) == 0o600
    assert _mode(snapshot.parent) == 0o700
    snapshot.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="routing.holder"):
        holder.load()  # the database has no catalogue tables: served from the snapshot
    assert _mode(snapshot) == 0o600
    assert any("was readable by others (mode 0644)" in r.getMessage() for r in caplog.records)
