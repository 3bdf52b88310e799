"""Database engines for SQLite (embedded default) and PostgreSQL, configured for durability.

SQLite runs in WAL mode with ``synchronous=FULL`` so a commit survives power loss, and every transaction
starts with ``BEGIN IMMEDIATE`` so read-then-write sequences cannot interleave between processes (pysqlite
would otherwise defer the write lock). Engines are created from configuration, never at import time.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

__all__ = ["WriterLock", "make_engine", "ping", "private_directory", "tighten"]

log = logging.getLogger("gateway.db")


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    wait_for_flush: bool = True,
    read_only: bool = False,
) -> Engine:
    """An engine for ``url``; every commit waits for its flush to disk unless ``wait_for_flush`` is False.

    ``read_only`` is for probes and reports that must answer while a writer holds the database (health,
    status, metrics): on SQLite its transactions never ask for the write lock (no ``BEGIN IMMEDIATE``;
    ``PRAGMA query_only``), so a long write elsewhere cannot stall them; on PostgreSQL its sessions are
    read-only (``default_transaction_read_only``).

    ``wait_for_flush=False`` is for bookkeeping whose loss only repeats work (the delivery worker's leases
    and outcomes, see docs/adr/0003-outbox-bookkeeping-commits.md): on PostgreSQL its commits return before
    the WAL flush (``synchronous_commit=off``; a server crash can lose the last few hundred milliseconds of
    them, never corrupt anything, and a crash of our process loses nothing). SQLite keeps
    ``synchronous=FULL`` either way (ADR 0003 says why).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_database_file(Path(database))
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        _sqlite_durability(engine, read_only=read_only)
        return engine
    # A transaction left open (a crashed handler) must not hold locks or bloat the queue tables.
    options = "-c idle_in_transaction_session_timeout=60000 -c lock_timeout=10000"
    if not wait_for_flush:
        options += " -c synchronous_commit=off"
    if read_only:
        options += " -c default_transaction_read_only=on"
    given = parsed.query.get("options")
    if given:
        options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
        parsed = parsed.difference_update_query(["options"])
    connect_args: dict[str, Any] = {"options": options, "connect_timeout": 5}
    return create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


#: what SQLite keeps beside a database file; it creates them with the database file's own mode
_SIDE_FILES = ("-wal", "-shm", "-journal", "-writers.lock")


def _private_database_file(path: Path) -> None:
    """Make sure the database file exists readable by its owner alone before SQLite opens it.

    The cases in it are health data. SQLite creates a new file with mode 0644 less the umask, and gives
    its -wal and -shm files the mode of the database file, so the file is created here with 0600 and
    SQLite's own files follow it. A directory made for it is 0700; an existing file that others may read
    is tightened, with a warning.
    """
    private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # not creatable here: SQLite reports the cause when it opens the file
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SIDE_FILES)):
        tighten(candidate)


def private_directory(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700 (``mkdir -p`` would use the umask)."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def tighten(path: Path) -> None:
    """Make an existing file readable by its owner alone (with a warning when others could read it)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning(
                "%s was readable by others (mode %04o); now by its owner only (%04o)",
                path,
                mode,
                mode & 0o700,
                extra={"fields": {"file": str(path)}},
            )
    except FileNotFoundError:
        return
    except OSError as exc:  # e.g. owned by another user; said in one line (commands may not set up logging)
        log.warning(
            "could not make %s private: %s", path, exc.strerror, extra={"fields": {"file": str(path)}}
        )


def _sqlite_durability(engine: Engine, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's begin event below (the documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if read_only:
        return  # reads run in autocommit: in WAL mode they never wait for a writer

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # straight on the driver connection: every write transaction starts here, and SQLAlchemy's
        # statement execution around it costs more than the statement itself
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")


class WriterLock:
    """A queue for the write lock of a SQLite database file, shared by every process that writes to it.

    SQLite lets one transaction write at a time. A process that finds the database locked sleeps in
    SQLite's busy handler, in growing steps up to 100 ms, whether the lock is freed after 1 ms or not:
    under load that sleep, not the work, is the tail latency. Writers that take this ``flock`` first wait
    in the kernel instead, and are woken the moment the holder is done. On PostgreSQL (row locks, no
    database-wide write lock) and for in-memory databases it is a no-op.
    """

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.path = f"{database}-writers.lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # flock belongs to the open file: a descriptor inherited across fork would be one lock for both
        # processes, so each process opens its own
        if self._fd is None or self._pid != os.getpid():
            assert self.path is not None
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> None:
        if self.path is not None:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            fcntl.flock(self._descriptor(), fcntl.LOCK_UN)


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any driver failure means "not reachable"
        return False
